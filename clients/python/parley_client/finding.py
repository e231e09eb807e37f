"""Finding what was said, the client's calls: history (a page before a seq, or around one, to
open a search result at its place), search, and the inbox filtered by title or name."""

from __future__ import annotations

from typing import Any

from parley_client.events import Frame


class FindingCalls:
    """ParleyClient's finding calls (a mixin: it needs the client's request and view)."""

    async def request(self, frame: Frame) -> Any:
        raise NotImplementedError

    def _learn(self, conversation: Frame) -> None:
        raise NotImplementedError

    async def history(
        self,
        conversation_id: int,
        before_seq: int | None = None,
        limit: int = 50,
        around_seq: int | None = None,
    ) -> list[Frame]:
        """Messages before ``before_seq`` (the newest if None), oldest first; or, with
        ``around_seq``, a page with that message in it, about half the page before it."""
        frame: Frame = {"type": "message.history", "conversation_id": conversation_id}
        frame["limit"] = limit
        if before_seq is not None:
            frame["before_seq"] = before_seq
        if around_seq is not None:
            frame["around_seq"] = around_seq
        return list((await self.request(frame))["messages"])

    async def search(
        self,
        query: str,
        conversation_id: int | None = None,
        before: int | None = None,
        limit: int = 20,
    ) -> Frame:
        """The user's messages holding every word of ``query`` (the last as a prefix; case
        and accents aside), newest first: ``{"results": [{"conversation_id", "message",
        "highlights": [[start, end], ...]}], "next"}``. Offsets are in code points, so they
        cut the content as Python indexes it. Pass ``next`` back as ``before``."""
        frame: Frame = {"type": "message.search", "query": query, "limit": limit}
        if conversation_id is not None:
            frame["conversation_id"] = conversation_id
        if before is not None:
            frame["before"] = before
        page: Frame = await self.request(frame)
        return page

    async def inbox(
        self,
        cursor: str | None = None,
        limit: int = 20,
        archived: bool = False,
        query: str | None = None,
    ) -> Frame:
        """The inbox, newest first; ``archived`` for the archive; ``query`` keeps the
        conversations whose product title or other party's name holds it."""
        frame: Frame = {"type": "conversation.list", "cursor": cursor, "limit": limit}
        frame["archived"] = archived
        if query:
            frame["query"] = query
        data: Frame = await self.request(frame)
        for conversation in data["conversations"]:
            self._learn(conversation)
        return data

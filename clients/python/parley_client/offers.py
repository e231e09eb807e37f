"""Offers as a deal, the client's calls: make one, and accept, decline, counter or withdraw
it. An answer's changed offer and new messages go through the client like any event."""

from __future__ import annotations

from typing import Any

from parley_client.events import Event, Frame, MessageUpdatedEvent


class OfferCalls:
    """ParleyClient's offer calls (a mixin: it needs the client's send, request and view)."""

    async def send(
        self,
        conversation_id: int,
        content: str,
        type: str = "text",
        metadata: Frame | None = None,
        client_msg_id: str | None = None,
    ) -> Frame:
        raise NotImplementedError

    async def request(self, frame: Frame) -> Any:
        raise NotImplementedError

    def _emit(self, event: Event) -> None:
        raise NotImplementedError

    def _accept(self, message: Frame) -> None:
        raise NotImplementedError

    async def offer(
        self, conversation_id: int, amount_cents: int, currency: str, content: str = ""
    ) -> Frame:
        """Make an offer on the listing; the conversation's open offer is superseded."""
        metadata = {"amount_cents": amount_cents, "currency": currency}
        return await self.send(conversation_id, content, type="offer", metadata=metadata)

    async def accept_offer(self, message_id: int) -> Frame:
        """Accept the other side's open offer: {"offer", "messages"}."""
        return await self._answer_offer({"type": "offer.accept", "message_id": message_id})

    async def decline_offer(self, message_id: int) -> Frame:
        return await self._answer_offer({"type": "offer.decline", "message_id": message_id})

    async def counter_offer(self, message_id: int, amount_cents: int) -> Frame:
        """Counter the other side's open offer with one's own; messages[1] is the counter."""
        return await self._answer_offer(
            {"type": "offer.counter", "message_id": message_id, "amount_cents": amount_cents}
        )

    async def withdraw_offer(self, message_id: int) -> Frame:
        return await self._answer_offer({"type": "offer.withdraw", "message_id": message_id})

    async def _answer_offer(self, frame: Frame) -> Frame:
        data: Frame = await self.request(frame)
        self._emit(MessageUpdatedEvent(data["offer"]))
        for message in data["messages"]:
            self._accept(message)
        return data

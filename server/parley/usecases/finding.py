"""Use cases that find what was said: a conversation's history (a page before a seq, or
around one, to open it at a found message) and search in one's own conversations. They
only read, so they publish nothing."""

from __future__ import annotations

import asyncpg

from parley import store
from parley.models import Message
from parley.store import search
from parley.usecases.base import use_case


class Finder:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @use_case
    async def history(
        self,
        user_id: int,
        conversation_id: int,
        before_seq: int | None,
        limit: int,
        around_seq: int | None = None,
    ) -> list[Message]:
        if around_seq is not None:
            return await search.history_around(
                self.pool, conversation_id, user_id, around_seq, limit
            )
        return await store.history(self.pool, conversation_id, user_id, before_seq, limit)

    @use_case
    async def search(
        self,
        user_id: int,
        query: str,
        conversation_id: int | None = None,
        before: int | None = None,
        limit: int = 20,
    ) -> search.SearchPage:
        return await search.search(self.pool, user_id, query, conversation_id, before, limit)

"""Test data and small helpers shared by the store tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import asyncpg

from parley import store
from parley.models import Conversation, Product, SentMessage, User

_client_ids = itertools.count(1)


def client_msg_id() -> str:
    return f"c{next(_client_ids)}"


@dataclass
class World:
    pool: asyncpg.Pool
    john: User
    mary: User
    eve: User
    iphone: Product

    async def open(self) -> Conversation:
        conversation, _ = await store.open_conversation(self.pool, self.john.id, self.iphone.id)
        return conversation

    async def send(
        self, conversation_id: int, sender: User, content: str = "hello", **fields: Any
    ) -> SentMessage:
        fields.setdefault("client_msg_id", client_msg_id())
        return await store.send_message(
            self.pool,
            conversation_id=conversation_id,
            sender_id=sender.id,
            content=content,
            **fields,
        )


async def table_snapshot(pool: asyncpg.Pool) -> dict[str, Any]:
    """Everything a write could change: row counts and each conversation's full row."""
    counts = {
        table: await pool.fetchval(f"SELECT count(*) FROM {table}")
        for table in ("users", "products", "conversations", "messages")
    }
    conversations = [dict(r) for r in await pool.fetch("SELECT * FROM conversations ORDER BY id")]
    return {"counts": counts, "conversations": conversations}


async def conversation_row(pool: asyncpg.Pool, conversation_id: int) -> asyncpg.Record:
    return await _row(pool, "SELECT * FROM conversations WHERE id = $1", conversation_id)


async def message_row(pool: asyncpg.Pool, message_id: int) -> asyncpg.Record:
    return await _row(pool, "SELECT * FROM messages WHERE id = $1", message_id)


async def product_row(pool: asyncpg.Pool, product_id: int) -> asyncpg.Record:
    return await _row(pool, "SELECT * FROM products WHERE id = $1", product_id)


async def _row(pool: asyncpg.Pool, query: str, row_id: int) -> asyncpg.Record:
    row = await pool.fetchrow(query, row_id)
    assert row is not None, f"no row for {row_id}"
    return row

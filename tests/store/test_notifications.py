"""The notification outbox's rules in SQL (sql/011): one open window per recipient, opened in
the message's own transaction, and a window that closes sees every message that joined it."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from parley import store
from parley.errors import Blocked
from parley.store import notifications
from parley.store.notifications import Window
from tests.world import World, client_msg_id


async def test_messages_to_an_offline_recipient_share_one_window(world: World) -> None:
    conversation = await world.open()
    for _ in range(3):
        await world.send(conversation.id, world.john)
    rows = await world.pool.fetch("SELECT user_id, status, built_at FROM notifications")
    assert [tuple(row) for row in rows] == [(world.mary.id, "pending", None)]


async def test_a_refused_message_schedules_nothing(world: World) -> None:
    conversation = await world.open()
    await store.block(world.pool, world.mary.id, world.john.id)
    with pytest.raises(Blocked):
        await world.send(conversation.id, world.john)
    assert await world.pool.fetchval("SELECT count(*) FROM notifications") == 0


async def test_no_message_is_left_outside_every_window(world: World) -> None:
    """Senders and a dispatcher race. However the closes fall, once the senders stop and the
    open window (if any) is closed, the last window closed has seen every message: none found
    a window open that then closed without it."""
    conversation = await world.open()
    closed: list[int] = []  # the unread count each close saw, in order

    async def send(count: int) -> None:
        async with world.pool.acquire() as conn:
            for _ in range(count):
                await store.send_message(
                    conn,
                    conversation_id=conversation.id,
                    sender_id=world.john.id,
                    client_msg_id=client_msg_id(),
                    content="race",
                )

    async def close_due() -> None:
        for claim in await notifications.claim_due(world.pool, 0, 30, 1):

            def build(window: Window) -> str:
                [row] = window.conversations
                closed.append(row["unread_count"])
                return "{}"

            await notifications.close_window(world.pool, claim, build)
            await notifications.delivered(world.pool, claim)

    async def keep_closing(senders: asyncio.Future[Any]) -> None:
        while not senders.done():
            await close_due()
            await asyncio.sleep(0)

    sent = 0
    for _ in range(15):
        senders = asyncio.gather(*(send(3) for _ in range(4)))
        await asyncio.gather(senders, keep_closing(senders))
        sent += 12
        await close_due()  # the window the last messages opened, if they opened one
        open_windows = await world.pool.fetchval(
            "SELECT count(*) FROM notifications WHERE status = 'pending'"
        )
        assert (open_windows, closed[-1]) == (0, sent)
    assert len(closed) > 15  # windows closed while messages arrived: the race was run


async def test_a_lost_lease_changes_nothing(world: World, pool: asyncpg.Pool) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john)
    [first] = await notifications.claim_due(pool, 0, 0, 10)  # a lease that is over at once
    [second] = await notifications.claim_due(pool, 0, 30, 10)
    assert (first.id, first.lease_token) != (second.id, second.lease_token)
    assert not await notifications.delivered(pool, first)
    assert await notifications.close_window(pool, first, lambda window: "{}") is None
    assert await notifications.delivered(pool, second)
    assert await pool.fetchval("SELECT status FROM notifications") == "delivered"

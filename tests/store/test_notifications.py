"""The notification outbox's rules in SQL (sql/011): a recipient's window opens in the
message's own transaction, and no message is left outside every window."""

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


async def no_skip(user_id: int) -> str | None:
    return None


async def test_messages_to_an_offline_recipient_share_one_window(world: World) -> None:
    conversation = await world.open()
    for _ in range(3):
        await world.send(conversation.id, world.john)
    windows = await world.pool.fetch(
        "SELECT user_id FROM badges WHERE unread_since IS NOT NULL ORDER BY user_id"
    )
    assert [row["user_id"] for row in windows] == [world.mary.id]
    first = await world.pool.fetchval(
        "SELECT min(created_at) FROM messages WHERE recipient_id = $1", world.mary.id
    )
    opened = await world.pool.fetchval(
        "SELECT unread_since FROM badges WHERE user_id = $1", world.mary.id
    )
    assert opened == first  # the window opened with the first message, and stayed
    assert await world.pool.fetchval("SELECT count(*) FROM notifications") == 0


async def test_a_refused_message_schedules_nothing(world: World) -> None:
    conversation = await world.open()
    await store.block(world.pool, world.mary.id, world.john.id)
    with pytest.raises(Blocked):
        await world.send(conversation.id, world.john)
    assert (
        await world.pool.fetchval("SELECT count(*) FROM badges WHERE unread_since IS NOT NULL") == 0
    )


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

    def build(window: Window) -> str:
        [row] = window.conversations
        closed.append(row["unread_count"])
        return "{}"

    async def close_due() -> None:
        while await notifications.close_next_window(world.pool, 0, 30, no_skip, build):
            pass

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
            "SELECT count(*) FROM badges WHERE unread_since IS NOT NULL"
        )
        assert (open_windows, closed[-1]) == (0, sent)
    assert len(closed) > 15  # windows closed while messages arrived: the race was run


async def test_a_lost_lease_changes_nothing(world: World, pool: asyncpg.Pool) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john)
    closed = await notifications.close_next_window(pool, 0, 0, no_skip, lambda _: "{}")
    assert closed is not None
    assert closed.claim is not None  # held for no time at all
    [taken_over] = await notifications.claim_due(pool, 30, 10)
    assert taken_over.id == closed.notification_id
    assert taken_over.lease_token != closed.claim.lease_token
    assert not await notifications.delivered(pool, closed.claim)
    assert await notifications.delivered(pool, taken_over)
    assert await pool.fetchval("SELECT status FROM notifications") == "delivered"

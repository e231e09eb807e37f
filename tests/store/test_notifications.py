"""The notification outbox's rules in SQL (sql/011): one open window per recipient, opened in
the message's own transaction, and a window that closes sees every message that joined it."""

from __future__ import annotations

import asyncio

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
    rows = await world.pool.fetch("SELECT user_id, messages, conversation_ids FROM notifications")
    assert [tuple(row) for row in rows] == [(world.mary.id, 3, [conversation.id])]


async def test_a_refused_message_schedules_nothing(world: World) -> None:
    conversation = await world.open()
    await store.block(world.pool, world.mary.id, world.john.id)
    with pytest.raises(Blocked):
        await world.send(conversation.id, world.john)
    assert await world.pool.fetchval("SELECT count(*) FROM notifications") == 0


async def test_a_closed_window_sees_every_message_that_joined_it(world: World) -> None:
    """Senders and a dispatcher race; each closed window's unread count must equal the
    messages that joined it and every window before it: none joined unseen, none was seen
    before it joined."""
    conversation = await world.open()
    seen: dict[int, int] = {}
    sending = True

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

    async def close() -> None:
        while True:
            still_sending = sending
            for claim in await notifications.claim_due(world.pool, 0, 30, 1):

                def build(window: Window, claim_id: int = claim.id) -> str:
                    [row] = window.conversations
                    seen[claim_id] = row["unread_count"]
                    return "{}"

                await notifications.close_window(world.pool, claim, build)
            if not still_sending:
                return
            await asyncio.sleep(0)

    closer = asyncio.create_task(close())
    await asyncio.gather(*(send(50) for _ in range(4)))
    sending = False
    await closer

    rows = await world.pool.fetch(
        "SELECT id, messages, built_at IS NOT NULL AS built FROM notifications ORDER BY id"
    )
    assert sum(row["messages"] for row in rows) == 200
    assert all(row["built"] for row in rows)
    assert len(rows) > 1  # the race happened: windows closed while messages arrived
    joined = 0
    for row in rows:
        joined += row["messages"]
        assert seen[row["id"]] == joined, f"window {row['id']}"


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

"""store/reads.py: read receipts, unread counters and badges.

One behaviour per test, against a real Postgres."""

from __future__ import annotations

import pytest

from parley import store
from parley.errors import (
    InvalidArgument,
)
from tests.world import (
    World,
    conversation_row,
    table_snapshot,
)


async def test_each_side_counts_only_what_the_other_sent(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "one")
    await world.send(conversation.id, world.john, "two")
    await world.send(conversation.id, world.mary, "reply")
    row = await conversation_row(world.pool, conversation.id)
    assert (row["buyer_unread_count"], row["seller_unread_count"]) == (1, 2)
    assert row["last_message_text"] == "reply"
    assert row["last_message_sender_id"] == world.mary.id


async def test_counters_follow_any_update_of_is_read_not_just_the_stores(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "hidden soon")
    await world.send(conversation.id, world.john, "hidden soon too")
    await store.delete_for(world.pool, world.mary.id, conversation.id)
    await world.send(conversation.id, world.john, "visible")

    await world.pool.execute("UPDATE messages SET is_read = true, read_at = now()")
    row = await conversation_row(world.pool, conversation.id)
    assert row["seller_unread_count"] == 0
    await world.pool.execute("UPDATE messages SET is_read = false, read_at = NULL")
    row = await conversation_row(world.pool, conversation.id)
    assert row["seller_unread_count"] == 1, "the two cleared messages stay out of the count"
    assert await store.recount_counters(world.pool) == []


async def test_reading_moves_only_forward(world: World) -> None:
    conversation = await world.open()
    for _ in range(3):
        await world.send(conversation.id, world.john)
    await store.mark_read(world.pool, conversation.id, world.mary.id, 2)
    before = await table_snapshot(world.pool)

    backwards = await store.mark_read(world.pool, conversation.id, world.mary.id, 1)

    assert (backwards.advanced, backwards.up_to_seq, backwards.unread_count) == (False, 2, 1)
    assert await table_snapshot(world.pool) == before


async def test_reading_past_the_end_stops_at_the_last_message(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john)
    receipt = await store.mark_read(world.pool, conversation.id, world.mary.id, 1000)
    assert receipt.up_to_seq == 1
    # a later message is still unread
    await world.send(conversation.id, world.john)
    assert await store.unread_total(world.pool, world.mary.id) == 1


async def test_reading_a_conversation_clears_only_my_badge(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "hi")
    await world.send(conversation.id, world.mary, "hello")
    await store.mark_read(world.pool, conversation.id, world.mary.id, 2)
    row = await conversation_row(world.pool, conversation.id)
    assert (row["seller_unread_count"], row["buyer_unread_count"]) == (0, 1)
    mine = await world.pool.fetchval("SELECT is_read FROM messages WHERE seq = 2")
    assert mine is False


async def test_negative_seq_is_an_invalid_argument(world: World) -> None:
    conversation = await world.open()
    with pytest.raises(InvalidArgument):
        await store.mark_read(world.pool, conversation.id, world.mary.id, -1)


async def test_unread_total_adds_both_roles(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "to mary")
    theirs, _ = await store.upsert_product(world.pool, 9200, world.john.id, "John's bike")
    other, _ = await store.open_conversation(world.pool, world.mary.id, theirs.id)
    await world.send(other.id, world.john, "to mary as buyer")
    assert await store.unread_total(world.pool, world.mary.id) == 2

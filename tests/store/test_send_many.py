"""send_many: many sends in one statement, with every rule of send_message per message."""

from __future__ import annotations

import asyncio
import random

import asyncpg

from parley import store
from parley.errors import Blocked, ClientMsgIdConflict, EmptyContent, Forbidden, NotFound
from parley.models import Badge, SentMessage
from parley.store import SendRequest, chain
from tests.world import World, conversation_row


async def test_one_batch_answers_each_send_as_send_message_would(world: World) -> None:
    conversation = await world.open()
    other_product, _ = await store.upsert_product(world.pool, 7020, world.eve.id, "Eve's bike")
    with_eve, _ = await store.open_conversation(world.pool, world.john.id, other_product.id)
    earlier = await world.send(conversation.id, world.john, "earlier", client_msg_id="old")

    def ask(conversation_id: int, sender: int, client_msg_id: str, content: str) -> SendRequest:
        return SendRequest(conversation_id, sender, client_msg_id, content)

    results, badges = await store.send_many(
        world.pool,
        [
            ask(conversation.id, world.john.id, "a", "one"),
            ask(with_eve.id, world.john.id, "b", "to Eve"),
            ask(conversation.id, world.mary.id, "c", "reply"),
            ask(conversation.id, world.john.id, "a", "one"),  # the same send twice in a batch
            ask(conversation.id, world.john.id, "old", "earlier"),  # a retry of a stored one
            ask(conversation.id, world.john.id, "old", "something else"),  # id reused
            ask(conversation.id, world.eve.id, "e", "let me in"),  # not a participant
            ask(conversation.id, world.john.id, "f", "   "),  # invalid
            SendRequest(conversation.id, world.john.id, "g", "sys", message_type="system"),
            ask(conversation.id, world.john.id, "h", "two"),
        ],
    )

    first, to_eve, reply, twice, retry, reused, outsider, blank, system, second = results
    assert isinstance(first, SentMessage)
    assert isinstance(second, SentMessage)
    assert isinstance(reply, SentMessage)
    assert isinstance(to_eve, SentMessage)
    assert [first.message.seq, reply.message.seq, second.message.seq] == [2, 3, 4], "in order"
    assert to_eve.message.seq == 1
    assert isinstance(twice, SentMessage)
    assert twice.replayed
    assert twice.message == first.message
    assert isinstance(retry, SentMessage)
    assert retry.replayed
    assert retry.message == earlier.message
    assert isinstance(reused, ClientMsgIdConflict)
    assert isinstance(outsider, NotFound)
    assert isinstance(blank, EmptyContent)
    assert isinstance(system, Forbidden)
    row = await conversation_row(world.pool, conversation.id)
    assert (row["last_seq"], row["seller_unread_count"], row["buyer_unread_count"]) == (4, 3, 1)
    assert row["last_message_text"] == "two"
    assert await store.recount_counters(world.pool) == []
    # Each recipient's badge comes back with the write, as a read after the commit sees it.
    pairs = [(world.mary.id, conversation.id), (world.eve.id, with_eve.id)]
    pairs.append((world.john.id, conversation.id))
    assert set(badges.values()) == set(await store.badges(world.pool, pairs))


async def test_badges_for_many_recipients_in_one_query(world: World) -> None:
    conversation = await world.open()
    _, badges = await store.send_many(
        world.pool, [SendRequest(conversation.id, world.john.id, f"x{n}", "hi") for n in range(3)]
    )
    # One statement, one transaction: Mary's badge moved once, by three.
    expected = Badge(world.mary.id, conversation.id, count=3, total=3, version=1)
    assert await store.badges(world.pool, [(world.mary.id, conversation.id)]) == [expected]
    assert badges == {(world.mary.id, conversation.id): expected}


async def test_returned_badges_leave_out_what_the_recipient_silenced(world: World) -> None:
    """The write's own badge read (sql/010) counts as store.badges does: a muted
    conversation's and a blocked one's unread stay in their counts, not in the total."""
    conversation = await world.open()
    other_product, _ = await store.upsert_product(world.pool, 7021, world.mary.id, "Lamp")
    muted, _ = await store.open_conversation(world.pool, world.john.id, other_product.id)
    blocker, _ = await store.upsert_product(world.pool, 7022, world.eve.id, "Desk")
    blocked, _ = await store.open_conversation(world.pool, world.mary.id, blocker.id)
    await world.send(muted.id, world.john, "before the mute")
    await world.send(blocked.id, world.eve, "before the block")
    await store.mute(world.pool, world.mary.id, muted.id, None)
    await store.block(world.pool, world.mary.id, world.eve.id)
    _, badges = await store.send_many(
        world.pool,
        [SendRequest(conversation.id, world.john.id, f"s{n}", "hi") for n in range(2)]
        + [SendRequest(muted.id, world.john.id, "s-muted", "and one more")],
    )
    read = await store.badges(
        world.pool, [(world.mary.id, conversation.id), (world.mary.id, muted.id)]
    )
    assert set(badges.values()) == set(read)
    assert {badge.total for badge in read} == {2}, "the muted and blocked counts left out"
    assert {badge.count for badge in read} == {2}


async def test_concurrent_batches_single_sends_and_reads_stay_exact(
    world: World, database_url: str
) -> None:
    from parley.store.pool import create_pool

    pool: asyncpg.Pool = await create_pool(database_url, min_size=10, max_size=10)
    try:
        buyers = [await store.upsert_user(world.pool, 1000 + n, f"b{n}") for n in range(6)]
        conversations = [
            (await store.open_conversation(world.pool, buyer.id, world.iphone.id))[0]
            for buyer in buyers
        ]
        rng = random.Random(7)

        async def batches(worker: int) -> None:
            for round_ in range(20):
                picks = rng.sample(range(len(buyers)), 4)  # conversations in random order
                await store.send_many(
                    pool,
                    [
                        SendRequest(
                            conversations[i].id, buyers[i].id, f"w{worker}-{round_}-{i}", "x"
                        )
                        for i in picks
                    ],
                )

        async def reads() -> None:
            for _ in range(40):
                for conversation in conversations:
                    await store.mark_read(pool, conversation.id, world.mary.id, 10**6)

        async with asyncio.timeout(60):
            await asyncio.gather(*(batches(w) for w in range(4)), reads())
        assert await store.recount_counters(world.pool) == []
        total = await world.pool.fetchval("SELECT count(*) FROM messages")
        assert total == 4 * 20 * 4
        links = 0
        async with world.pool.acquire() as conn:
            for conversation in conversations:
                verdict = await chain.verify(conn, conversation.id)
                assert verdict.ok, verdict.broken
                links += verdict.links
        assert links == total
    finally:
        await pool.close()


WAIT_UNTIL_SOMEONE_WAITS_FOR_ME = """
    DO $$
    BEGIN
        WHILE NOT EXISTS (SELECT 1 FROM pg_stat_activity
                           WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))) LOOP
            PERFORM pg_stat_clear_snapshot(), pg_sleep(0.005);
        END LOOP;
    END
    $$
"""


async def test_a_batch_that_waited_for_a_block_leaves_that_conversation_out(
    world: World, database_url: str
) -> None:
    """send_many reads the block flags on the rows it has locked (sql/021): a batch that
    waited for a block's transaction stores nothing across it, and the rest of the batch."""
    conversation = await world.open()
    other_product, _ = await store.upsert_product(world.pool, 7023, world.eve.id, "Chair")
    with_eve, _ = await store.open_conversation(world.pool, world.john.id, other_product.id)
    blocker = await asyncpg.connect(database_url)
    try:
        blocking = blocker.transaction()
        await blocking.start()
        # What store.block does to the conversation row, held open until the batch waits.
        await blocker.execute(
            "UPDATE conversations SET blocked_by_seller = true WHERE id = $1", conversation.id
        )
        batch = asyncio.create_task(
            store.send_many(
                world.pool,
                [
                    SendRequest(conversation.id, world.john.id, "across", "hello Mary"),
                    SendRequest(with_eve.id, world.john.id, "aside", "hello Eve"),
                ],
            )
        )
        # The block commits once the batch waits for its lock (Postgres has no event for it).
        await blocker.execute(WAIT_UNTIL_SOMEONE_WAITS_FOR_ME, timeout=10)
        await blocking.commit()
        async with asyncio.timeout(10):
            (across, aside), _ = await batch
    finally:
        await blocker.close()
    assert isinstance(across, Blocked)
    assert isinstance(aside, SentMessage)
    assert aside.message.seq == 1
    assert (await conversation_row(world.pool, conversation.id))["last_seq"] == 0
    assert await store.recount_counters(world.pool) == []

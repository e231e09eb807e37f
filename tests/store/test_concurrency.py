"""The store under real concurrency: many connections racing on the same rows."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from parley import store
from parley.store.pool import create_pool
from tests.world import World, conversation_row

SENDERS = 50
MESSAGES_PER_SENDER = 10


@pytest.fixture
async def wide_pool(database_url: str, pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    """Enough connections that every concurrent caller really runs at once."""
    wide = await create_pool(database_url, min_size=SENDERS + 4, max_size=SENDERS + 4)
    try:
        yield wide
    finally:
        await wide.close()


async def test_fifty_senders_and_both_readers_keep_seqs_and_counters_exact(
    world: World, wide_pool: asyncpg.Pool
) -> None:
    conversation = await world.open()
    parties = (world.john, world.mary)
    sending = True

    async def sender(n: int) -> list[int]:
        me = parties[n % 2]
        seqs = []
        for k in range(MESSAGES_PER_SENDER):
            sent = await store.send_message(
                wide_pool,
                conversation_id=conversation.id,
                sender_id=me.id,
                client_msg_id=f"s{n}-{k}",
                content=f"message {k} from sender {n}",
            )
            seqs.append(sent.message.seq)
        return seqs

    async def reader(user_id: int, seed: int) -> int:
        rng, reads = random.Random(seed), 0
        while sending:
            last = (await conversation_row(wide_pool, conversation.id))["last_seq"]
            await store.mark_read(wide_pool, conversation.id, user_id, rng.randint(0, last))
            reads += 1
        return reads

    async def deleter() -> None:
        # Deleting clears one side's badge; counters must stay exact through it.
        while sending:
            await store.delete_for(wide_pool, world.mary.id, conversation.id)

    started = time.perf_counter()
    readers = [
        asyncio.create_task(reader(user.id, seed))
        for seed, user in enumerate([world.john, world.mary] * 2)
    ]
    deleting = asyncio.create_task(deleter())
    try:
        async with asyncio.timeout(60):
            sent_seqs = await asyncio.gather(*(sender(n) for n in range(SENDERS)))
    except TimeoutError:
        activity = await world.pool.fetch(
            "SELECT pid, state, wait_event_type, wait_event, left(query, 80) AS query"
            " FROM pg_stat_activity WHERE datname = current_database()"
        )
        pytest.fail("senders stuck; sessions: " + "; ".join(str(dict(r)) for r in activity))
    finally:
        sending = False
        reads = await asyncio.gather(*readers)
        await deleting
    elapsed = time.perf_counter() - started

    all_seqs = sorted(seq for seqs in sent_seqs for seq in seqs)
    total = SENDERS * MESSAGES_PER_SENDER
    assert all_seqs == list(range(1, total + 1)), "seqs are unique and gapless"
    for seqs in sent_seqs:
        assert seqs == sorted(seqs), "one sender's messages keep their order"
    drift = await store.recount_counters(world.pool)
    assert drift == []

    for user in parties:
        await store.mark_read(world.pool, conversation.id, user.id, total)
    row = await conversation_row(world.pool, conversation.id)
    assert (row["buyer_unread_count"], row["seller_unread_count"]) == (0, 0)
    assert row["last_seq"] == total
    print(
        f"\n{total} messages from {SENDERS} senders with {sum(reads)} concurrent mark-reads: "
        f"{elapsed:.2f} s, seq gaps 0, duplicates 0, counter drift {len(drift)}"
    )


async def test_twenty_concurrent_opens_make_one_conversation(
    world: World, wide_pool: asyncpg.Pool
) -> None:
    results = await asyncio.gather(
        *(store.open_conversation(wide_pool, world.john.id, world.iphone.id) for _ in range(20))
    )
    assert len({conversation.id for conversation, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert await world.pool.fetchval("SELECT count(*) FROM conversations") == 1


async def test_racing_retries_of_one_client_msg_id_store_one_message(
    world: World, wide_pool: asyncpg.Pool
) -> None:
    conversation = await world.open()
    results = await asyncio.gather(
        *(
            store.send_message(
                wide_pool,
                conversation_id=conversation.id,
                sender_id=world.john.id,
                client_msg_id="tap-tap-tap",
                content="Is this still available?",
            )
            for _ in range(20)
        )
    )
    assert len({sent.message.id for sent in results}) == 1
    assert sum(not sent.replayed for sent in results) == 1
    row = await conversation_row(world.pool, conversation.id)
    assert (row["last_seq"], row["seller_unread_count"]) == (1, 1)
    assert await world.pool.fetchval("SELECT count(*) FROM messages") == 1


async def test_sends_across_conversations_and_reads_do_not_deadlock(
    world: World, wide_pool: asyncpg.Pool
) -> None:
    # Many buyers, one seller who reads everything at once: conversations are locked in
    # different orders by senders, and mark_read always takes the conversation first.
    buyers = [await store.upsert_user(world.pool, 1000 + n, f"buyer {n}") for n in range(8)]
    conversations = [
        (await store.open_conversation(world.pool, buyer.id, world.iphone.id))[0]
        for buyer in buyers
    ]

    async def buyer_sends(index: int) -> None:
        for k in range(15):
            await store.send_message(
                wide_pool,
                conversation_id=conversations[index].id,
                sender_id=buyers[index].id,
                client_msg_id=f"b{index}-{k}",
                content="ping",
            )

    async def seller_reads() -> None:
        for _ in range(30):
            for conversation in conversations:
                await store.mark_read(wide_pool, conversation.id, world.mary.id, 10**6)

    async with asyncio.timeout(60):
        await asyncio.gather(*(buyer_sends(i) for i in range(len(buyers))), seller_reads())
    assert await store.recount_counters(world.pool) == []

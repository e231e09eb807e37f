"""A backend keeps the plans of the triggers and functions it runs for the whole session. Plans
made while the tables were empty, as on a fresh deployment's pooled connections, must still be
right once the tables are large. The chain trigger's look-up of the previous link was such a
plan once: a sequential scan of chain_links on every send, half of bench S1's throughput."""

from __future__ import annotations

import asyncpg

from parley import store
from parley.models import SentMessage
from parley.store import SendRequest
from tests.world import World

GROWN = 3_000  # rows added behind the sending connection's back


async def tuples_read_by_scans(pool: asyncpg.Pool, tables: tuple[str, ...]) -> dict[str, int]:
    await pool.execute("SELECT pg_stat_clear_snapshot()")
    rows = await pool.fetch(
        "SELECT relname, seq_tup_read FROM pg_stat_user_tables WHERE relname = ANY($1::text[])",
        list(tables),
    )
    return {row["relname"]: row["seq_tup_read"] for row in rows}


async def test_a_send_reads_no_grown_table_whole_with_plans_made_when_it_was_empty(
    world: World, database_url: str
) -> None:
    conversation = await world.open()
    # As a fresh database: what the planner knows says the tables are empty.
    await world.pool.execute("VACUUM ANALYZE messages, chain_links, conversations")
    sender = await asyncpg.connect(database_url)  # one backend, whose plans are kept
    try:

        async def send(n: int) -> None:
            request = SendRequest(conversation.id, world.john.id, f"kept-{n}", f"hello {n}")
            [sent] = (await store.send_many(sender, [request])).results
            assert isinstance(sent, SentMessage)

        for n in range(12):  # past the 5 custom plans, to the generic plan it keeps
            await send(n)
        # The tables grow, with every trigger, and nothing makes the backend plan again.
        await world.pool.execute(
            "INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type,"
            " content, client_msg_id)"
            " SELECT $1, 702, 701, 'text', 'm' || g, 'grown-' || g"
            " FROM generate_series(1, $2) g",
            conversation.id,
            GROWN,
        )
        tables = ("messages", "chain_links")
        before = await tuples_read_by_scans(world.pool, tables)
        for n in range(12, 24):
            await send(n)
        # Flushed as the backend goes idle, before it answers: the next read sees the counts.
        await sender.execute("SELECT pg_stat_force_next_flush()")
        after = await tuples_read_by_scans(world.pool, tables)
        assert {table: after[table] - before[table] for table in tables} == {
            "messages": 0,
            "chain_links": 0,
        }
    finally:
        await sender.close()

"""A backend keeps the plans of the triggers and functions it runs for the whole session. The
chain trigger once found the previous link by a look-up whose plan, made while chain_links
was empty, stayed a sequential scan as the table grew: half of bench S1's throughput. The
link is now appended from the conversation row's head, so a send reads no link at all."""

from __future__ import annotations

import asyncpg

from parley import store
from parley.models import SentMessage
from parley.store import SendRequest
from tests.world import World

GROWN = 3_000  # rows added behind the sending connection's back


async def links_read(pool: asyncpg.Pool) -> int:
    """Rows of chain_links read so far, by sequential and by index scans."""
    await pool.execute("SELECT pg_stat_clear_snapshot()")
    read: int = await pool.fetchval(
        "SELECT seq_tup_read + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables"
        " WHERE relname = 'chain_links'"
    )
    return read


async def test_a_send_reads_no_link_however_its_plans_were_made(
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
        before = await links_read(world.pool)
        for n in range(12, 24):
            await send(n)
        # Flushed as the backend goes idle, before it answers: the next read sees the counts.
        await sender.execute("SELECT pg_stat_force_next_flush()")
        assert await links_read(world.pool) == before
    finally:
        await sender.close()

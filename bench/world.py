"""The benchmark's data: a database of its own, seeded with buyer/seller pairs.

Pair i is buyer i and seller i; the conversations are dealt round-robin over the pairs, one
product each. S1 uses as many pairs as senders over 1,000 conversations; S2 one pair and one
conversation, with every sender a device of the same buyer.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import asyncpg.pool

from parley import store
from parley.store.migrate import migrate
from parley.store.pool import create_pool, drop_database, ensure_database

BUYER_BASE, SELLER_BASE, PRODUCT_BASE = 100_000, 200_000, 300_000


@dataclass(frozen=True)
class Pair:
    """A sender (buyer) and the recipient (seller) of a set of conversations."""

    buyer: int
    seller: int
    conversations: tuple[int, ...]


# Messages each conversation holds before a run starts.
EARLIER_MESSAGES = 10


async def settle(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, earlier: int = EARLIER_MESSAGES
) -> None:
    """Give every conversation ``earlier`` messages, then VACUUM ANALYZE: a run starts with the
    tables and statistics of a deployment in service. A backend keeps its plans for the
    session; planned while the statistics said messages or chain_links was empty (as they did
    when a run started on empty tables), a look-up became a sequential scan and stayed one
    while the run filled the table, for no autovacuum ANALYZE comes within a 10-second run.
    Some runs then scanned all of messages on every send and others did not."""
    await conn.execute(
        """
        INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type, content,
                              client_msg_id)
        SELECT c.id, c.buyer_id, c.seller_id, 'text', 'earlier ' || g,
               'earlier-' || c.id || '-' || g
          FROM conversations c, generate_series(1, $1) g
         ORDER BY c.id, g
        """,
        earlier,
    )
    await conn.execute("VACUUM ANALYZE")


async def fresh_database(admin_dsn: str, name: str) -> str:
    """Drop and create ``name`` on the server of ``admin_dsn``, migrated; return its DSN."""
    await drop_database(admin_dsn, name)
    dsn = await ensure_database(admin_dsn, name)
    await migrate(dsn)
    return dsn


async def seed(
    dsn: str, pairs: int, conversations: int, earlier: int = EARLIER_MESSAGES
) -> list[Pair]:
    """``pairs`` buyer/seller pairs sharing ``conversations`` conversations between them,
    each holding ``earlier`` messages."""
    pool = await create_pool(dsn, min_size=1, max_size=4)
    try:
        async with pool.acquire() as conn:
            await conn.execute(
                """
                INSERT INTO users (id, display_name)
                SELECT u, 'bench ' || u FROM (
                    SELECT $1 + g AS u FROM generate_series(0, $3 - 1) g
                    UNION ALL SELECT $2 + g FROM generate_series(0, $3 - 1) g) users
                ON CONFLICT DO NOTHING
                """,
                BUYER_BASE,
                SELLER_BASE,
                pairs,
            )
            await conn.execute(
                """
                INSERT INTO products (id, seller_id, title)
                SELECT $1 + g, $2 + g % $3, 'bench product ' || g
                  FROM generate_series(0, $4 - 1) g
                ON CONFLICT DO NOTHING
                """,
                PRODUCT_BASE,
                SELLER_BASE,
                pairs,
                conversations,
            )
        results: list[list[int]] = [[] for _ in range(pairs)]
        for n in range(conversations):
            conversation, _ = await store.open_conversation(
                pool, BUYER_BASE + n % pairs, PRODUCT_BASE + n
            )
            results[n % pairs].append(conversation.id)
        async with pool.acquire() as conn:
            await settle(conn, earlier)
    finally:
        await pool.close()
    return [Pair(BUYER_BASE + n, SELLER_BASE + n, tuple(ids)) for n, ids in enumerate(results)]

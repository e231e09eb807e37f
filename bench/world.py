"""The benchmark's data: a database of its own, seeded with buyer/seller pairs.

Pair i is buyer i and seller i; the conversations are dealt round-robin over the pairs, one
product each. S1 uses as many pairs as senders over 1,000 conversations; S2 one pair and one
conversation, with every sender a device of the same buyer.
"""

from __future__ import annotations

from dataclasses import dataclass

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


async def fresh_database(admin_dsn: str, name: str) -> str:
    """Drop and create ``name`` on the server of ``admin_dsn``, migrated; return its DSN."""
    await drop_database(admin_dsn, name)
    dsn = await ensure_database(admin_dsn, name)
    await migrate(dsn)
    return dsn


async def seed(dsn: str, pairs: int, conversations: int) -> list[Pair]:
    """``pairs`` buyer/seller pairs sharing ``conversations`` conversations between them."""
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
            await conn.execute("VACUUM ANALYZE")
    finally:
        await pool.close()
    return [Pair(BUYER_BASE + n, SELLER_BASE + n, tuple(ids)) for n, ids in enumerate(results)]

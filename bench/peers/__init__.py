"""Python peers: the same persist-and-deliver work on the stacks users would pick instead.

Each peer is set up as well as its libraries document, with the settings Parley itself runs
with where the same knob exists, so a ratio measures the stacks and not their configuration.
"""

from __future__ import annotations

import asyncpg


async def rollback_if_in_transaction(conn: asyncpg.Connection) -> None:
    """asyncpg's documented `reset=` hook for a pool: by default each release runs
    `RESET ALL; UNLISTEN *; ...`, one more round trip per query. The peers keep no session
    state, so, like Parley's pool, they only roll back a transaction left open."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")

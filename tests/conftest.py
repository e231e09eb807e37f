"""Real services for the tests.

Postgres: PARLEY_TEST_DATABASE_URL when set, else an embedded server in a temporary directory.
Either way each run gets a fresh, migrated database of its own (dropped at the end), and each
test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from server import store
from server.db import EmbeddedPostgres, create_pool, ensure_database, with_database
from server.migrate import migrate
from tests.world import World


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> Iterator[str]:
    """A DSN with the right to create databases on the Postgres under test."""
    url = os.environ.get("PARLEY_TEST_DATABASE_URL")
    if url:
        yield url
        return
    directory = Path(tempfile.mkdtemp(prefix="parley-test-pg-"))
    embedded = EmbeddedPostgres(directory / "pgdata")
    try:
        yield embedded.start()
    finally:
        embedded.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(postgres_admin_dsn: str) -> Iterator[str]:
    """A fresh database for this test run, migrated, dropped afterwards."""
    name = f"parley_test_{os.getpid()}_{secrets.token_hex(4)}"

    async def create() -> str:
        dsn = await ensure_database(postgres_admin_dsn, name)
        await migrate(dsn)
        return dsn

    dsn = asyncio.run(create())
    yield dsn
    asyncio.run(drop_database(postgres_admin_dsn, name))


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(with_database(admin_dsn, "postgres"))
    try:
        quoted = await conn.fetchval("SELECT quote_ident($1)", name)
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await conn.close()


TABLES = ("messages", "conversations", "products", "users")


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on empty tables."""
    pool = await create_pool(database_url, min_size=1, max_size=20)
    await pool.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def world(pool: asyncpg.Pool) -> World:
    """The seed's cast: John (buyer), Mary (seller) and her iPhone, plus an outsider, Eve."""
    john = await store.upsert_user(pool, 701, "John")
    mary = await store.upsert_user(pool, 702, "Mary")
    eve = await store.upsert_user(pool, 703, "Eve")
    iphone, _ = await store.upsert_product(
        pool, 7010, mary.id, "iPhone 13, 128 GB", price_cents=45000, currency="EUR"
    )
    return World(pool=pool, john=john, mary=mary, eve=eve, iphone=iphone)

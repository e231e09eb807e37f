"""Real services for the tests.

Postgres: PARLEY_TEST_DATABASE_URL when set, else an embedded server in a temporary directory.
Either way each run gets a fresh, migrated database of its own (dropped at the end), and each
test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from parley import store
from parley.app import create_app, uvicorn_options
from parley.config import Limits, Settings
from parley.store.migrate import migrate
from parley.store.pool import EmbeddedPostgres, create_pool, drop_database, ensure_database
from tests.clients import Gateway
from tests.redis_cluster import LocalCluster
from tests.servers import serve
from tests.services import RedisServer
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


TABLES = (
    "demo_seed",
    "chain_links",
    "reports",
    "message_versions",
    "messages",
    "conversations",
    "products",
    "badges",
    "notifications",
    "users",
)


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


JWT_SECRET = "parley-tests-only-secret-0123456789abcdef"


def gateway_settings(database_url: str, **limits: Any) -> Settings:
    return Settings(
        database_url=database_url,
        jwt_secret=JWT_SECRET,
        limits=dataclasses.replace(Limits(), **limits),
    )


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    """A real uvicorn serving Parley on a free port, with helpers to connect as a user."""
    app = create_app(settings)
    async with serve(app, **uvicorn_options(settings)) as running:
        yield Gateway(running, settings)


@pytest.fixture
async def gateway(database_url: str, pool: asyncpg.Pool) -> AsyncIterator[Gateway]:
    async with running_gateway(gateway_settings(database_url)) as running:
        yield running


@pytest.fixture
async def roomy_gateway(database_url: str, pool: asyncpg.Pool) -> AsyncIterator[Gateway]:
    """Rate limits out of the way, for tests that send hundreds of messages in a burst."""
    settings = gateway_settings(
        database_url,
        messages_per_second=10_000.0,
        message_burst=10_000,
        frames_per_second=10_000.0,
        frame_burst=10_000,
        send_queue=4096,
    )
    async with running_gateway(settings) as running:
        yield running


@pytest.fixture
async def cast(world: World, roomy_gateway: Gateway) -> World:
    """The seed's cast, on a roomy gateway."""
    return world


@pytest.fixture
async def demo_gateway(database_url: str, pool: asyncpg.Pool) -> AsyncIterator[Gateway]:
    """A demo-mode server, its seeded conversations all read: every badge starts at 0."""
    settings = dataclasses.replace(gateway_settings(database_url), demo=True)
    async with running_gateway(settings) as running:
        for row in await pool.fetch("SELECT id, buyer_id, seller_id, last_seq FROM conversations"):
            for user_id in (row["buyer_id"], row["seller_id"]):
                await store.mark_read(pool, row["id"], user_id, row["last_seq"])
        yield running


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """PARLEY_TEST_REDIS_URL when set, else a redis-server of our own for the session."""
    url = os.environ.get("PARLEY_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = RedisServer()

    async def start() -> None:
        await server.start()

    # Its own loop, idle between tests: redis-server prints next to nothing after start-up,
    # so its output pipe cannot fill while nobody drains it.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(start())
        yield server.url
        loop.run_until_complete(server.stop())
    finally:
        loop.close()
        shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """A Redis Cluster of our own for the session (3 masters, a replica each), as
    redis+cluster://; PARLEY_TEST_REDIS_CLUSTER_URL when set."""
    url = os.environ.get("PARLEY_TEST_REDIS_CLUSTER_URL")
    if url:
        yield url
        return
    cluster = LocalCluster()
    loop = asyncio.new_event_loop()  # as redis_url's: idle between tests
    try:
        loop.run_until_complete(cluster.start())
        yield cluster.url
    finally:
        loop.run_until_complete(cluster.stop())
        loop.close()


@pytest.fixture(params=["redis", "cluster"])
def broker_url(request: pytest.FixtureRequest) -> str:
    """Each broker test once through one Redis and once through a Redis Cluster."""
    name = "redis_url" if request.param == "redis" else "redis_cluster_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def channel_prefix() -> str:
    """Channels of this test only, even on a Redis shared with anything else."""
    return f"parley-test-{secrets.token_hex(4)}:"


SERVICE_TOKEN = "marketplace-backend-token"


@pytest.fixture
async def backend(
    database_url: str, world: World
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    """A gateway with the internal API on, and the marketplace's client of it."""
    settings = dataclasses.replace(gateway_settings(database_url), service_token=SERVICE_TOKEN)
    async with (
        running_gateway(settings) as gateway,
        httpx.AsyncClient(
            base_url=gateway.server.http_url,
            headers={"authorization": f"Bearer {SERVICE_TOKEN}"},
        ) as client,
    ):
        yield gateway, client

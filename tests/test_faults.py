"""Faults: Postgres going away under load, and coming back, without restarting Parley."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator

import httpx
import pytest

from parley import store
from parley.store.migrate import migrate
from parley.store.pool import create_pool, ensure_database
from tests.clients import Client
from tests.conftest import gateway_settings, running_gateway
from tests.services import OwnPostgres

FAST = {
    "messages_per_second": 10_000.0,
    "message_burst": 10_000,
    "frames_per_second": 10_000.0,
    "frame_burst": 10_000,
}


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    postgres = OwnPostgres()
    try:
        yield postgres
    finally:
        postgres.destroy()


@pytest.fixture
async def own_database(own_postgres: OwnPostgres) -> str:
    dsn = await ensure_database(own_postgres.start_cluster(), "parley")
    await migrate(dsn)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        await store.upsert_user(pool, 701, "John")
        await store.upsert_user(pool, 702, "Mary")
        await store.upsert_product(pool, 7010, 702, "iPhone")
        await store.open_conversation(pool, 701, 7010)
    finally:
        await pool.close()
    return dsn


async def test_postgres_restart_under_load(own_postgres: OwnPostgres, own_database: str) -> None:
    settings = dataclasses.replace(gateway_settings(own_database, **FAST), db_pool_max=4)
    senders = 4
    acked: set[str] = set()
    unavailable: set[str] = set()
    other_errors: list[dict[str, object]] = []
    outage_seen = [asyncio.Event() for _ in range(senders)]
    warmed_up = asyncio.Event()
    restarted = asyncio.Event()
    done = asyncio.Event()

    async def send_until_done(client: Client, n: int) -> None:
        k = 0
        while not done.is_set():
            client_msg_id = f"p{n}-{k}"
            reply = await client.request(
                "message.send", conversation_id=1, client_msg_id=client_msg_id, content="ping"
            )
            k += 1
            if reply["type"] == "ok":
                acked.add(client_msg_id)
                if len(acked) >= 100:
                    warmed_up.set()
                if len(acked) >= 400:
                    done.set()
            elif reply["code"] == "unavailable" and reply["retryable"]:
                unavailable.add(client_msg_id)
                outage_seen[n].set()
                await restarted.wait()
            else:
                other_errors.append(reply)
                done.set()

    async with running_gateway(settings) as gateway, contextlib.AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(gateway.connect((701, 702)[n % 2]))
            for n in range(senders)
        ]
        tasks = [asyncio.create_task(send_until_done(s, n)) for n, s in enumerate(sockets)]
        step = "warming up"
        try:
            async with (
                asyncio.timeout(60),
                httpx.AsyncClient(base_url=gateway.server.http_url) as http,
            ):
                await warmed_up.wait()
                step = "stopping Postgres"
                await own_postgres.stop()
                step = "waiting for every sender to hear unavailable"
                await asyncio.gather(*(seen.wait() for seen in outage_seen))
                assert (await http.get("/readyz")).status_code == 503
                step = "starting Postgres"
                await own_postgres.start()
                restarted.set()
                step = "sending after the restart"
                await asyncio.gather(*tasks)
                assert (await http.get("/readyz")).status_code == 200
        except TimeoutError:
            pytest.fail(
                f"stuck {step}: acked {len(acked)}, unavailable {len(unavailable)}, "
                f"outage seen {[e.is_set() for e in outage_seen]}, other errors {other_errors}"
            )

    assert other_errors == [], "every request was answered ok or unavailable"
    assert len(acked) >= 400, "sending works again without restarting Parley"
    pool = await create_pool(own_database, min_size=1, max_size=2)
    try:
        rows = await pool.fetch("SELECT client_msg_id FROM messages")
        stored = {row["client_msg_id"] for row in rows}
        assert acked <= stored, "every acknowledged message is in the database"
        assert stored <= acked | unavailable, "nothing was stored that got neither answer"
        assert await store.recount_counters(pool) == []
    finally:
        await pool.close()
    print(
        f"\nPostgres restarted under load: {len(acked)} acknowledged, all stored; "
        f"{len(unavailable)} answered unavailable"
    )

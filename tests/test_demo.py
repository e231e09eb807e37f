"""Demo mode survives its visitors: what they did stays done across restarts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.store.pool import drop_database, ensure_database
from tests.clients import Client, open_client
from tests.conftest import JWT_SECRET
from tests.services import GatewayProcess

JOHN, MARY, EVE = 701, 702, 703
IPHONE, LAMP = 7010, 7030


@pytest.fixture
async def demo_database(postgres_admin_dsn: str) -> AsyncIterator[str]:
    """A database of its own: demo mode seeds it as on a first `dev.py run`."""
    name = f"parley_demo_{secrets.token_hex(4)}"
    dsn = await ensure_database(postgres_admin_dsn, name)
    try:
        yield dsn
    finally:
        await drop_database(postgres_admin_dsn, name)


@contextlib.asynccontextmanager
async def demo_server(database_url: str, data_dir: Path) -> AsyncIterator[GatewayProcess]:
    env = {
        "DATABASE_URL": database_url,
        "PARLEY_DEMO": "1",
        "PARLEY_DATA_DIR": str(data_dir),
        "PARLEY_JWT_SECRET": JWT_SECRET,
    }
    process = GatewayProcess("demo", env)
    try:
        await process.start()
        yield process
    finally:
        await process.stop()


@contextlib.asynccontextmanager
async def logged_in(server: GatewayProcess, user_id: int) -> AsyncIterator[Client]:
    """As the page logs in: a token from /demo/token, then hello."""
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        token = (await http.post("/demo/token", json={"user_id": user_id})).json()["token"]
    async with open_client(server.ws_url) as client:
        await client.ok("hello", token=token)
        yield client


async def internal(server: GatewayProcess, data_dir: Path, path: str) -> httpx.Response:
    """The internal API, with the development token demo mode keeps in its data dir."""
    token = (data_dir / "service-token").read_text().strip()
    async with httpx.AsyncClient(
        base_url=server.http_url, headers={"authorization": f"Bearer {token}"}
    ) as http:
        return await http.get(path)


async def conversation_about(client: Client, product_id: int) -> dict[str, Any]:
    listed = await client.ok("conversation.list", limit=50)
    [conversation] = [c for c in listed["conversations"] if c["product_id"] == product_id]
    return dict(conversation)


async def test_an_accepted_offer_and_a_block_survive_two_restarts(
    demo_database: str, tmp_path: Path
) -> None:
    async with demo_server(demo_database, tmp_path) as server, logged_in(server, MARY) as mary:
        phone = await conversation_about(mary, IPHONE)
        history = await mary.ok("message.history", conversation_id=phone["id"], limit=50)
        [offer] = [m for m in history["messages"] if m["message_type"] == "offer"]
        await mary.ok("offer.accept", message_id=offer["id"])
        await mary.ok("user.block", user_id=EVE)

    for _ in range(2):
        async with demo_server(demo_database, tmp_path) as server:
            answer = await internal(server, tmp_path, f"/internal/products/{IPHONE}")
            product = answer.json()["product"]
            assert (product["status"], product["reserved_for"]) == ("reserved", JOHN)
            async with logged_in(server, EVE) as eve:
                lamp = await conversation_about(eve, LAMP)
                refused = await eve.error(
                    "message.send",
                    conversation_id=lamp["id"],
                    client_msg_id=secrets.token_hex(8),
                    content="Still for sale?",
                )
                assert refused["code"] == "blocked"

    async with (
        demo_server(demo_database, tmp_path) as server,
        logged_in(server, MARY) as mary,
        logged_in(server, EVE) as eve,
    ):
        await mary.ok("user.unblock", user_id=EVE)
        lamp = await conversation_about(eve, LAMP)
        sent = await eve.send_message(lamp["id"], "Could you post the lamp after all?")
        assert (await mary.event("message.new"))["message"] == sent


async def test_dev_py_demo_prints_clients_after_a_block(demo_database: str, tmp_path: Path) -> None:
    async with demo_server(demo_database, tmp_path) as server, logged_in(server, JOHN) as john:
        await john.ok("user.block", user_id=MARY)
    env = os.environ | {
        "DATABASE_URL": demo_database,
        "PARLEY_DATA_DIR": str(tmp_path),
        "PARLEY_JWT_SECRET": JWT_SECRET,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "parley.cli", "demo",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert (process.returncode, stderr.decode()) == (0, "")
    assert stdout.decode().count("-m parley_client ws://") == 3

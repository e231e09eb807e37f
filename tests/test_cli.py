"""The `parley` command as a user runs it: real processes, real ports."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx

from tests.clients import Gateway, open_client
from tests.conftest import JWT_SECRET

PARLEY = [sys.executable, "-m", "parley.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_line(stream: asyncio.StreamReader, needle: str, seen: list[str]) -> None:
    while True:
        line = (await stream.readline()).decode(errors="replace")
        if not line:
            raise AssertionError(f"process ended before printing {needle!r}:\n{''.join(seen)}")
        seen.append(line)
        if needle in line:
            return


async def test_migrate_reports_what_it_applied(database_url: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *PARLEY,
        "migrate",
        env=os.environ | {"DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().strip() == "database is up to date"


async def test_serve_without_database_url_runs_on_an_embedded_postgres(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"PARLEY_DATA_DIR": str(tmp_path / "data"), "PORT": str(port)}
    process = await asyncio.create_subprocess_exec(
        *PARLEY, "serve", env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    seen: list[str] = []
    try:
        await asyncio.wait_for(wait_for_line(process.stderr, "Uvicorn running on", seen), 60)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 60)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
    assert process.returncode == -signal.SIGTERM, "".join(seen)
    assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists(), "Postgres stopped"


async def test_the_demo_walkthrough_works_as_printed(database_url: str, gateway: Gateway) -> None:
    process = await asyncio.create_subprocess_exec(
        *PARLEY,
        "demo",
        env=os.environ | {"DATABASE_URL": database_url, "PARLEY_JWT_SECRET": JWT_SECRET},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    steps = [
        [line.strip() for line in block.splitlines()[1:] if line.strip().startswith("{")]
        for block in stdout.decode().split("\n\n")
        if block[:2] in ("1.", "2.", "3.")
    ]
    mary_hello, (john_hello, john_send), (mary_read, mary_reply) = steps
    async with (
        open_client(gateway.server.ws_url) as mary,
        open_client(gateway.server.ws_url) as john,
    ):
        await mary.send_raw(mary_hello[0])
        assert (await mary.reply("1"))["type"] == "ok"
        await john.send_raw(john_hello)
        assert (await john.reply("1"))["type"] == "ok"
        await john.send_raw(john_send)
        assert (await john.reply("2"))["type"] == "ok"
        new = await mary.event("message.new")
        assert new["message"]["content"] == "Is this still available?"
        await mary.event("unread", total=1)
        await mary.send_raw(mary_read)
        assert (await mary.reply("2"))["type"] == "ok"
        await john.event("message.read", up_to_seq=1)
        await mary.send_raw(mary_reply)
        assert (await mary.reply("3"))["type"] == "ok"
        reply = await john.event("message.new")
        assert reply["message"]["sender_id"] == 702

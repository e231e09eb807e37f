"""`python -m bench compare REV_A REV_B`: what a change costs the send path, as ratios.

Each revision is built in a throw-away environment of its own (its source from git, a venv
with its lock, or today's lock for a revision from before the lock, and the package
installed from that source). Then S1 (one sender per pair over 1,000 conversations) runs
at each concurrency, A then B in one round and B then A in the next, each next to pgbench
doing the schema's own insert on a database that revision migrated. It prints every ratio
with its spread over the rounds, and writes bench/results/compare.json.

Per run it measures throughput, ack p50/p99, the server's CPU per message and Postgres's
CPU per message (the postmaster and its backends, from the server's own process table).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from bench.pieces import (
    CONVERSATIONS,
    load,
    parley,
    parley_target,
    pgbench,
    summary,
)
from bench.world import BUYER_BASE, PRODUCT_BASE, SELLER_BASE, Pair, settle
from parley.store.pool import drop_database, ensure_database
from tests.services import redis_server

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "parley_compare"


@dataclass(frozen=True)
class Build:
    """One revision, installed: its name as given, its commit, and its `parley` command
    (the console script: the import package was `server` before it was `parley`)."""

    label: str
    rev: str
    commit: str
    parley: str


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def build(label: str, rev: str, scratch: Path) -> Build:
    """Check ``rev`` out of git into ``scratch`` and install it into a venv of its own."""
    commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    source = scratch / f"{label}-{commit[:10]}"
    source.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    venv = source / ".venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    # The revision's own lock; one from before the lock runs on today's, which also holds
    # the build backend that --no-build-isolation needs.
    lock = source / "requirements" / "run.txt"
    if not lock.exists():
        lock = ROOT / "requirements" / "run.txt"
    # pip's notes (this machine's extra package indexes) would drown the progress bar.
    pip = [python, "-m", "pip", "--quiet", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--require-hashes", "--no-deps", "-r", str(lock)], check=True)
    subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", str(source)], check=True)
    return Build(label, rev, commit, str(venv / "bin" / "parley"))


async def fresh_database(admin_dsn: str, built: Build) -> str:
    """A database migrated by ``built``'s own `parley migrate`."""
    await drop_database(admin_dsn, DATABASE)
    dsn = await ensure_database(admin_dsn, DATABASE)
    env = os.environ | {"DATABASE_URL": dsn}
    migrate = await asyncio.create_subprocess_exec(
        built.parley, "migrate",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    said, _ = await migrate.communicate()
    if migrate.returncode != 0:
        raise RuntimeError(f"{built.label}: parley migrate failed:\n{said.decode()}")
    return dsn


async def seed(dsn: str, pairs: int) -> list[Pair]:
    """S1's world in plain SQL that every revision's schema takes: ``pairs`` buyer/seller
    pairs over CONVERSATIONS conversations, dealt round-robin."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """
            INSERT INTO users (id, display_name)
            SELECT u, 'bench ' || u FROM (
                SELECT $1 + g AS u FROM generate_series(0, $3 - 1) g
                UNION ALL SELECT $2 + g FROM generate_series(0, $3 - 1) g) users
            """,
            BUYER_BASE,
            SELLER_BASE,
            pairs,
        )
        rows = await conn.fetch(
            """
            WITH p AS (
                INSERT INTO products (id, seller_id, title)
                SELECT $1 + g, $2 + g % $3, 'bench product ' || g
                  FROM generate_series(0, $4 - 1) g
                RETURNING id, seller_id)
            INSERT INTO conversations (product_id, buyer_id, seller_id)
            SELECT p.id, $5 + (p.id - $1) % $3, p.seller_id FROM p ORDER BY p.id
            RETURNING id, buyer_id
            """,
            PRODUCT_BASE,
            SELLER_BASE,
            pairs,
            CONVERSATIONS,
            BUYER_BASE,
        )
        await settle(conn)
    finally:
        await conn.close()
    dealt: dict[int, list[int]] = {}
    for row in sorted(rows, key=lambda r: r["id"]):
        dealt.setdefault(row["buyer_id"], []).append(row["id"])
    return [
        Pair(buyer, SELLER_BASE + buyer - BUYER_BASE, tuple(ids))
        for buyer, ids in sorted(dealt.items())
    ]


async def postmaster(dsn: str) -> psutil.Process | None:
    """The server's postmaster, when it runs on this machine (a backend's parent)."""
    conn = await asyncpg.connect(dsn)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        # While the backend lives: once the connection closes, it is gone.
        with contextlib.suppress(psutil.Error):
            return psutil.Process(backend).parent()
        return None
    finally:
        await conn.close()


def postgres_cpu(server: psutil.Process | None) -> float | None:
    """Seconds of CPU the server has used: itself, its backends, and the ones that ended."""
    if server is None:
        return None
    times = server.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in server.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
    return total


@dataclass
class Runs:
    """One build's figures at one concurrency, a value per round."""

    throughput: list[float] = field(default_factory=list)
    pgbench_tps: list[float] = field(default_factory=list)
    ack_p50_ms: list[float] = field(default_factory=list)
    pgbench_p50_ms: list[float] = field(default_factory=list)
    server_cpu_us: list[float] = field(default_factory=list)
    postgres_cpu_us: list[float] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)


class Progress:
    """A line per step on stderr, with a bar: these runs take minutes."""

    def __init__(self, steps: int) -> None:
        self.steps, self.done = steps, 0

    def step(self, what: str) -> None:
        self.done += 1
        filled = round(30 * self.done / self.steps)
        bar = "#" * filled + "." * (30 - filled)
        print(f"[{bar}] {self.done}/{self.steps} {what}", file=sys.stderr, flush=True)


async def measure(
    admin_dsn: str,
    built: Build,
    clients: int,
    seconds: float,
    runs: Runs,
    redis_url: str | None,
    receipts: bool = False,
) -> None:
    """One S1 run of ``built`` at ``clients`` (its recipients confirming deliveries when
    ``receipts``), then pgbench on its schema."""
    dsn = await fresh_database(admin_dsn, built)
    pairs = await seed(dsn, clients)
    pg = await postmaster(dsn)
    async with parley(dsn, redis_url=redis_url, command=[built.parley]) as process:
        assert process.process is not None
        server = psutil.Process(process.process.pid)
        before, pg_before = server.cpu_times(), postgres_cpu(pg)
        m = await load(parley_target(process), pairs, 1, seconds, receipts=receipts)
        after, pg_after = server.cpu_times(), postgres_cpu(pg)
    m.server_cpu_seconds = after.user + after.system - before.user - before.system
    figures = summary(m)
    runs.summaries.append(figures)
    runs.throughput.append(m.throughput)
    runs.ack_p50_ms.append(figures["ack_ms"]["p50"])
    runs.server_cpu_us.append(figures["server_cpu_us_per_message"] or 0.0)
    if pg_before is not None and pg_after is not None and m.acked:
        runs.postgres_cpu_us.append((pg_after - pg_before) / m.acked * 1e6)
    dsn = await fresh_database(admin_dsn, built)
    await seed(dsn, clients)
    limit = await pgbench(dsn, clients, seconds, hot=False)
    runs.pgbench_tps.append(limit["tps"])
    runs.pgbench_p50_ms.append(limit["p50_ms"])


def spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.fmean(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def ratios(a: Runs, b: Runs) -> dict[str, Any]:
    """Each figure as a ratio, per round, then its mean and spread."""

    def over(xs: list[float], ys: list[float]) -> dict[str, float]:
        return spread([x / y for x, y in zip(xs, ys, strict=True) if y])

    result: dict[str, Any] = {
        "a_over_pgbench": over(a.throughput, a.pgbench_tps),
        "b_over_pgbench": over(b.throughput, b.pgbench_tps),
        "b_over_a": over(b.throughput, a.throughput),
        "a_ack_p50_ms": spread(a.ack_p50_ms),
        "b_ack_p50_ms": spread(b.ack_p50_ms),
        "pgbench_p50_ms": spread(a.pgbench_p50_ms + b.pgbench_p50_ms),
        "a_server_cpu_us_per_message": spread(a.server_cpu_us),
        "b_server_cpu_us_per_message": spread(b.server_cpu_us),
    }
    if a.postgres_cpu_us and b.postgres_cpu_us:
        result["a_postgres_cpu_us_per_message"] = spread(a.postgres_cpu_us)
        result["b_postgres_cpu_us_per_message"] = spread(b.postgres_cpu_us)
    return result


def show(clients: int, figures: dict[str, Any]) -> str:
    def r(name: str) -> str:
        value = figures[name]
        return f"{value['mean']:.2f} [{value['min']:.2f}-{value['max']:.2f}]"

    line = (
        f"S1 {clients:>4} clients: A/pgbench {r('a_over_pgbench')}, "
        f"B/pgbench {r('b_over_pgbench')}, B/A {r('b_over_a')}; "
        f"ack p50 A {r('a_ack_p50_ms')} ms, B {r('b_ack_p50_ms')} ms, "
        f"pgbench {r('pgbench_p50_ms')} ms; server CPU us/msg A {r('a_server_cpu_us_per_message')}"
        f", B {r('b_server_cpu_us_per_message')}"
    )
    if "a_postgres_cpu_us_per_message" in figures:
        line += (
            f"; Postgres CPU us/msg A {r('a_postgres_cpu_us_per_message')}, "
            f"B {r('b_postgres_cpu_us_per_message')}"
        )
    return line


@contextlib.asynccontextmanager
async def broker(use_redis: bool) -> AsyncIterator[str | None]:
    if not use_redis:
        yield None
        return
    async with redis_server() as redis:
        yield redis.url


@contextlib.contextmanager
def scratch_directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="parley-compare-") as directory:
        yield Path(directory)


async def compare(
    admin_dsn: str,
    rev_a: str,
    rev_b: str,
    concurrency: list[int],
    seconds: float,
    rounds: int,
    use_redis: bool = False,
    receipts_for: str = "",
) -> dict[str, Any]:
    """A against B; ``receipts_for``: the labels ("B", "AB") whose recipients confirm
    deliveries as the SDKs do (message.received, in the form A may not know: "B" alone
    shows what receipts cost)."""
    with scratch_directory() as scratch:
        print(f"building {rev_a} and {rev_b} in {scratch}", file=sys.stderr, flush=True)
        a, b = await asyncio.gather(
            asyncio.to_thread(build, "A", rev_a, scratch),
            asyncio.to_thread(build, "B", rev_b, scratch),
        )
        progress = Progress(len(concurrency) * rounds * 2)
        rows = []
        async with broker(use_redis) as redis_url:
            for clients in concurrency:
                runs = {a.label: Runs(), b.label: Runs()}
                for round_number in range(rounds):
                    # A/B, then B/A: a drift of the machine weighs on both alike.
                    for built in (a, b) if round_number % 2 == 0 else (b, a):
                        progress.step(f"{clients} clients, round {round_number + 1}, {built.label}")
                        await measure(
                            admin_dsn,
                            built,
                            clients,
                            seconds,
                            runs[built.label],
                            redis_url,
                            receipts=built.label in receipts_for,
                        )
                figures = ratios(runs["A"], runs["B"])
                print(show(clients, figures), flush=True)
                rows.append(
                    {
                        "clients": clients,
                        **figures,
                        "a_runs": runs["A"].summaries,
                        "b_runs": runs["B"].summaries,
                    }
                )
        await drop_database(admin_dsn, DATABASE)
    return {
        "a": {"rev": a.rev, "commit": a.commit},
        "b": {"rev": b.rev, "commit": b.commit},
        "broker": "redis" if use_redis else "memory",
        "sending_receipts": receipts_for,
        # Both builds are driven by this checkout's load generator and pgbench script.
        "measured_with": _git("rev-parse", "HEAD"),
        "rounds": rounds,
        "rows": rows,
    }

"""`python -m bench gateways`: S1 through Redis with one gateway, then with two (the buyers'
sockets on one, the sellers' on the other, so every message crosses Redis between them),
measuring the CPU each process spends per message: the gateways, Postgres (postmaster and
backends), Redis, and the load generator itself. bench/simulate.py is calibrated on the
first and predicts the second (`python -m bench.simulate --check`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import psutil

from bench import loadgen
from bench.compare import postgres_cpu, postmaster
from bench.pieces import CONVERSATIONS, DATABASE, load, parley, parley_target, summary
from bench.world import fresh_database, seed
from tests.services import GatewayProcess, redis_server


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


@contextlib.asynccontextmanager
async def _gateways(dsn: str, count: int, redis_url: str) -> AsyncIterator[list[GatewayProcess]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(parley(dsn, redis_url=redis_url)) for _ in range(count)
        ]


async def run(admin_dsn: str, clients: int, seconds: float, count: int) -> dict[str, Any]:
    dsn = await fresh_database(admin_dsn, DATABASE)
    pairs = await seed(dsn, pairs=clients, conversations=CONVERSATIONS)
    pg = await postmaster(dsn)
    async with redis_server() as redis, _gateways(dsn, count, redis.url) as processes:
        assert redis.process is not None
        redis_process = psutil.Process(redis.process.pid)
        servers = [psutil.Process(p.process.pid) for p in processes if p.process is not None]
        me = psutil.Process()
        before = [_cpu(s) for s in servers], postgres_cpu(pg), _cpu(redis_process), _cpu(me)
        started = time.perf_counter()
        m: loadgen.Measurements = await load(
            parley_target(processes[0]),
            pairs,
            1,
            seconds,
            recipients_at=parley_target(processes[-1]),
        )
        wall = time.perf_counter() - started
        after = [_cpu(s) for s in servers], postgres_cpu(pg), _cpu(redis_process), _cpu(me)
    per_message = 1e6 / max(m.acked, 1)
    pg_before, pg_after = before[1], after[1]
    row: dict[str, Any] = {
        "gateways": count,
        "clients": clients,
        "parley": summary(m),
        "wall_seconds": round(wall, 2),
        "cpu_us_per_message": {
            "gateways": round(sum(after[0]) - sum(before[0]), 4) * per_message,
            "postgres": (pg_after - pg_before) * per_message
            if pg_before is not None and pg_after is not None
            else None,
            "redis": (after[2] - before[2]) * per_message,
            "load_generator": (after[3] - before[3]) * per_message,
        },
    }
    cpu = row["cpu_us_per_message"]
    print(
        f"{count} gateway(s), {clients:>4} clients: {m.throughput:8.1f} msg/s, ack p50 "
        f"{row['parley']['ack_ms']['p50']} ms; CPU us/msg: gateways {cpu['gateways']:.0f}, "
        f"postgres {cpu['postgres'] or 0:.0f}, redis {cpu['redis']:.0f}, "
        f"load generator {cpu['load_generator']:.0f}",
        flush=True,
    )
    return row


async def gateways(admin_dsn: str, concurrency: list[int], seconds: float) -> list[Any]:
    return [
        await run(admin_dsn, clients, seconds, count) for clients in concurrency for count in (1, 2)
    ]

"""How many gateways, Redis shards and Postgres nodes a load needs, and the latency to expect,
from the costs measured on this machine (docs/scaling.md explains each figure).

    python -m bench.simulate --users 1000000 --messages 100000
    python -m bench.simulate --check          # against `python -m bench gateways`'s run

The model is deliberately plain: every resource is a pool of cores, each message costs each
resource the CPU measured per message here, a resource is planned to run at --utilisation
at most, and the ack latency is the unloaded chain stretched by the busiest resource's
queue (an M/M/1 factor, 1 / (1 - load)). `--check` calibrates the costs on the one-gateway
run of bench/results/gateways.json and predicts the two-gateway run on the same two cores.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Costs:
    """Per message unless named otherwise; each figure's source is in docs/scaling.md."""

    gateway_cpu_us: float = 103.0  # S1 through Redis, 128 clients (bench compare, d4389e3)
    postgres_cpu_us: float = 72.0  # the same runs: postmaster and backends
    redis_publishes: float = 3.0  # message.new to both users' channels, and the badge
    shard_publishes_per_second: float = 1_000_000.0  # one Redis 7 core, SPUBLISH, delivered
    socket_kib: float = 16.4  # S4: server RSS per idle authenticated socket
    unloaded_ack_ms: float = 2.0  # S1 at 8 clients, memory broker: ack p50


@dataclass(frozen=True)
class Plan:
    gateways: int
    gateway_reason: str
    redis_shards: int
    postgres_primaries: int
    busiest_load: float
    ack_p50_ms: float


def plan(
    users: float,
    messages_per_second: float,
    costs: Costs,
    *,
    devices_per_user: float = 1.5,
    gateway_cores: int = 8,
    gateway_memory_gib: float = 16.0,
    postgres_cores: int = 32,
    utilisation: float = 0.6,
) -> Plan:
    sockets = users * devices_per_user
    by_memory = sockets * costs.socket_kib / (gateway_memory_gib * 1024 * 1024 * utilisation)
    by_cpu = messages_per_second * costs.gateway_cpu_us / 1e6 / (gateway_cores * utilisation)
    gateways = max(1, math.ceil(max(by_memory, by_cpu)))
    publishes = messages_per_second * costs.redis_publishes
    shards = max(1, math.ceil(publishes / (costs.shard_publishes_per_second * utilisation)))
    pg_capacity = postgres_cores * utilisation * 1e6 / costs.postgres_cpu_us
    primaries = max(1, math.ceil(messages_per_second / pg_capacity))
    loads = [
        messages_per_second * costs.gateway_cpu_us / 1e6 / (gateways * gateway_cores),
        publishes / (shards * costs.shard_publishes_per_second),
        messages_per_second * costs.postgres_cpu_us / 1e6 / (primaries * postgres_cores),
    ]
    busiest = max(loads)
    return Plan(
        gateways=gateways,
        gateway_reason="memory" if by_memory >= by_cpu else "CPU",
        redis_shards=shards,
        postgres_primaries=primaries,
        busiest_load=round(busiest, 3),
        ack_p50_ms=round(costs.unloaded_ack_ms / (1 - busiest), 2),
    )


def shared_cores(cpu_us_per_message: dict[str, float], cores: float = 2.0) -> float:
    """Messages per second when every process shares ``cores``: CPU is the limit."""
    return cores * 1e6 / sum(cpu_us_per_message.values())


def check(results: Path) -> int:
    """Calibrate on each concurrency's one-gateway run; predict its two-gateway run from the
    CPU each process spent per message there."""
    rows = json.loads(results.read_text())["results"]
    for one in (r for r in rows if r["gateways"] == 1):
        two = next(r for r in rows if r["gateways"] == 2 and r["clients"] == one["clients"])
        # CPU alone, from the one-gateway run's costs, times that run's efficiency (how
        # much of the CPU bound it reached: waits for fsync and round trips, and work no
        # tracked process is charged for, such as the kernel's network stack).
        cpu_bound = shared_cores({k: v or 0.0 for k, v in one["cpu_us_per_message"].items()})
        efficiency = one["parley"]["messages_per_second"] / cpu_bound
        predicted = cpu_bound * efficiency
        # Closed loop: each client has one message in flight, so (Little) N = X * latency.
        predicted_ack_ms = one["clients"] / predicted * 1000
        measured = two["parley"]["messages_per_second"]
        print(
            f"{one['clients']:>4} clients, 2 gateways on 2 shared cores: CPU bound "
            f"{cpu_bound:7.0f} msg/s x efficiency {efficiency:.2f} = predicted {predicted:7.0f}"
            f" msg/s, ack {predicted_ack_ms:5.2f} ms mean; measured {measured:7.0f} msg/s "
            f"(x{measured / predicted:.2f}), ack p50 {two['parley']['ack_ms']['p50']} ms"
        )
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simulate", description=__doc__)
    parser.add_argument("--users", type=float, default=1_000_000, help="connected users")
    parser.add_argument("--messages", type=float, default=100_000, help="messages per second")
    parser.add_argument("--devices-per-user", type=float, default=1.5)
    parser.add_argument("--gateway-cores", type=int, default=8)
    parser.add_argument("--gateway-memory-gib", type=float, default=16.0)
    parser.add_argument("--postgres-cores", type=int, default=32)
    parser.add_argument("--utilisation", type=float, default=0.6)
    parser.add_argument("--check", action="store_true", help="predict the gateways bench run")
    args = parser.parse_args(argv)
    if args.check:
        return check(RESULTS / "gateways.json")
    result = plan(
        args.users,
        args.messages,
        Costs(),
        devices_per_user=args.devices_per_user,
        gateway_cores=args.gateway_cores,
        gateway_memory_gib=args.gateway_memory_gib,
        postgres_cores=args.postgres_cores,
        utilisation=args.utilisation,
    )
    print(
        f"{args.users:,.0f} users, {args.messages:,.0f} msg/s: {result.gateways} gateways "
        f"({args.gateway_cores} cores, {args.gateway_memory_gib:g} GiB; bound by "
        f"{result.gateway_reason}), {result.redis_shards} Redis shards, "
        f"{result.postgres_primaries} Postgres primaries ({args.postgres_cores} cores); "
        f"busiest resource at {result.busiest_load:.0%}, ack p50 ~{result.ack_p50_ms} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""python -m bench SCENARIO: measure Parley against Postgres's own limit (and peers).

    python -m bench s1 --concurrency 8,32,128 --seconds 10
    python -m bench s2 --concurrency 32
    python -m bench sdk --messages 2000 --rounds 5   # the Python SDK against a bare client
    python -m bench s7               # search at 1,000,000 messages: median and p95, the plan
    python -m bench export           # a dispute export of 100,000 messages: memory, time
    python -m bench smoke            # a few seconds of everything, for the test suite
    python -m bench compare 0ebd93d HEAD --rounds 2   # two revisions, interleaved, as ratios
    python -m bench charts [--docs]  # PNGs into bench/results/ (or docs/) from the results

Each run gets a fresh database on one Postgres (DATABASE_URL, or an embedded one kept in
.parley/bench), starts the server under test as a process of its own, and writes its figures
to bench/results/<scenario>.json as well as printing them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import psutil
import uvloop

from bench import compare, export, gateways, loadgen, notifications, sdk, search
from bench.pieces import (
    BENCH_SECRET,
    CONVERSATIONS,
    DATABASE,
    PeerProcess,
    bench_token,
    load,
    parley,
    parley_run,
    parley_target,
    pgbench,
    postgres,
    summary,
)
from bench.world import (
    BUYER_BASE,
    PRODUCT_BASE,
    SELLER_BASE,
    Pair,
    fresh_database,
    seed,
)
from parley.store.pool import drop_database
from tests.services import redis_server

# BENCH_RESULTS: somewhere else (the tests), so a short run never overwrites real figures.
RESULTS = Path(os.environ.get("BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
DOCS = Path(__file__).resolve().parent.parent / "docs"


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
        tps = (await pgbench(dsn, clients, seconds, hot))["tps"]
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
            f"(ack p50 {ack['p50']} ms, p99 {ack['p99']} ms; deliver p99 {deliver['p99']} ms; "
            f"server CPU {figures['server_cpu_us_per_message']} us/msg), "
            f"pgbench {tps:8.1f} tps, ratio {ratio}",
            flush=True,
        )
    return rows


async def peer_run(
    app: str,
    make_target: Callable[[int], loadgen.Target],
    dsn: str,
    redis_url: str,
    pairs: list[Pair],
    seconds: float,
) -> loadgen.Measurements:
    """Run the peer ``app`` under uvicorn and drive it through ``make_target(port)``."""
    env = {"DATABASE_URL": dsn, "REDIS_URL": redis_url, "PEER_JWT_SECRET": BENCH_SECRET}
    process = PeerProcess(app, env)
    await process.start()
    try:
        assert process.process is not None
        server = psutil.Process(process.process.pid)
        before = server.cpu_times()
        m = await load(make_target(process.port), pairs, 1, seconds)
        after = server.cpu_times()
        m.server_cpu_seconds = after.user + after.system - before.user - before.system
        return m
    finally:
        await process.stop()


PEERS: Final[dict[str, tuple[str, Callable[[int], loadgen.Target]]]] = {
    "socketio": (
        "bench.peers.socketio_peer:app",
        lambda port: loadgen.SocketIOTarget(f"ws://127.0.0.1:{port}", bench_token),
    ),
    # The Channels peer speaks Parley's JSON frames, so Parley's target drives it.
    "channels": (
        "bench.peers.channels_peer:application",
        lambda port: loadgen.ParleyTarget(f"ws://127.0.0.1:{port}/ws", bench_token),
    ),
}


async def peers(admin_dsn: str, concurrency: list[int], seconds: float) -> list[dict[str, Any]]:
    """Parley against python-socketio (AsyncRedisManager) and Django Channels on S1, all fanning
    out via Redis, with pgbench's insert in the same run: each stack ÷ pgbench is a ratio that
    one run on one machine can compare with another's."""
    rows = []
    async with redis_server() as redis:
        for clients in concurrency:
            dsn = await fresh_database(admin_dsn, DATABASE)
            await seed(dsn, pairs=clients, conversations=CONVERSATIONS)
            tps = (await pgbench(dsn, clients, seconds, hot=False))["tps"]
            dsn = await fresh_database(admin_dsn, DATABASE)
            pairs = await seed(dsn, pairs=clients, conversations=CONVERSATIONS)
            ours = await parley_run(dsn, pairs, 1, seconds, redis_url=redis.url)
            ours_p99 = loadgen.percentile(ours.deliver_seconds, 0.99)
            row: dict[str, Any] = {
                "clients": clients,
                "pgbench_tps": round(tps, 1),
                "parley": summary(ours),
                "parley_pgbench_ratio": round(ours.throughput / tps, 3),
            }
            for name, (app, make_target) in PEERS.items():
                dsn = await fresh_database(admin_dsn, DATABASE)
                pairs = await seed(dsn, pairs=clients, conversations=CONVERSATIONS)
                theirs = await peer_run(app, make_target, dsn, redis.url, pairs, seconds)
                theirs_p99 = loadgen.percentile(theirs.deliver_seconds, 0.99)
                row[name] = summary(theirs)
                row[f"{name}_pgbench_ratio"] = round(theirs.throughput / tps, 3)
                row[f"{name}_throughput_ratio"] = round(ours.throughput / theirs.throughput, 2)
                row[f"{name}_p99_ratio"] = round(theirs_p99 / ours_p99, 2)
                print(
                    f"peers {clients:>4} clients: pgbench {tps:7.0f} tps; parley "
                    f"{ours.throughput:7.0f} msg/s (deliver p99 {ours_p99 * 1000:.1f} ms), {name} "
                    f"{theirs.throughput:7.0f} msg/s (p99 {theirs_p99 * 1000:.1f} ms, "
                    f"÷ pgbench {row[f'{name}_pgbench_ratio']}): "
                    f"throughput x{row[f'{name}_throughput_ratio']}, "
                    f"p99 x{row[f'{name}_p99_ratio']}",
                    flush=True,
                )
            rows.append(row)
    return rows


async def latency_at_rates(admin_dsn: str, clients: int, seconds: float) -> list[dict[str, Any]]:
    """S3: send→deliver latency at 25/50/75 % of the flat-out rate, next to pgbench's own
    transaction latency at the same rate and concurrency."""
    dsn = await fresh_database(admin_dsn, DATABASE)
    pairs = await seed(dsn, pairs=clients, conversations=CONVERSATIONS)
    peak = await parley_run(dsn, pairs, 1, seconds)
    rows: list[dict[str, Any]] = [{"fraction": 1.0, "rate": None, **summary(peak)}]
    for fraction in (0.25, 0.50, 0.75):
        rate = peak.throughput * fraction
        m = await parley_run(dsn, pairs, 1, seconds, rate=rate)
        limit = await pgbench(dsn, clients, seconds, hot=False, rate=rate)
        row = {
            "fraction": fraction,
            "rate": round(rate, 1),
            **summary(m),
            "deliver_histogram_ms": histogram([x * 1000 for x in m.deliver_seconds]),
            "pgbench": limit,
        }
        rows.append(row)
        print(
            f"S3 {fraction:4.0%} of {peak.throughput:.0f} msg/s ({clients} clients): "
            f"deliver p50 {row['deliver_ms']['p50']} ms, p99 {row['deliver_ms']['p99']} ms; "
            f"pgbench at that rate p50 {limit['p50_ms']} ms, p99 {limit['p99_ms']} ms",
            flush=True,
        )
    return rows


def histogram(values_ms: list[float], width_ms: float = 1.0, top_ms: float = 100.0) -> list[int]:
    """Counts per ``width_ms`` bucket from 0 to ``top_ms`` (the last bucket holds the rest)."""
    counts = [0] * int(top_ms / width_ms)
    for value in values_ms:
        counts[min(len(counts) - 1, int(value / width_ms))] += 1
    return counts


async def stalled_client(admin_dsn: str, clients: int, seconds: float) -> dict[str, Any]:
    """S5: healthy throughput with one stalled client ÷ without."""
    dsn = await fresh_database(admin_dsn, DATABASE)
    pairs = await seed(dsn, pairs=clients, conversations=CONVERSATIONS)
    without = await parley_run(dsn, pairs, 1, seconds)
    with_stalled = await parley_run(dsn, pairs, 1, seconds, stalled=1)
    ratio = with_stalled.throughput / without.throughput
    print(
        f"S5 {clients} clients: {without.throughput:.0f} msg/s without a stalled client, "
        f"{with_stalled.throughput:.0f} with one: ratio {ratio:.3f}",
        flush=True,
    )
    return {
        "clients": clients,
        "without": summary(without),
        "with_one_stalled": summary(with_stalled),
        "ratio": round(ratio, 3),
    }


async def idle_connections(admin_dsn: str, count: int) -> dict[str, Any]:
    """S4: RSS per idle authenticated connection, and how long the connect+hello storm takes."""
    import psutil

    dsn = await fresh_database(admin_dsn, DATABASE)
    await seed(dsn, pairs=count + 1, conversations=0)  # the users exist, as after a deploy
    m = loadgen.Measurements()
    async with parley(dsn) as process:
        assert process.process is not None
        server = psutil.Process(process.process.pid)
        target = parley_target(process)
        warm = loadgen.Socket(target, m)
        await warm.open(BUYER_BASE)  # one socket first: imports and caches are not per socket
        before = server.memory_info().rss
        # Clients arrive with their tokens: signing them is not part of the storm.
        hellos = [target.hello(BUYER_BASE + 1 + n) for n in range(count)]
        devices: list[loadgen.IdleDevice] = []
        gate = asyncio.Semaphore(256)  # the client side's own limit on handshakes in flight

        async def open_one(n: int) -> None:
            async with gate:
                devices.append(await loadgen.IdleDevice.open(process.ws_url, hellos[n]))

        samples = [(0, before)]
        started = time.perf_counter()
        for chunk in range(0, count, 1000):
            await asyncio.gather(*(open_one(n) for n in range(chunk, min(count, chunk + 1000))))
            samples.append((min(count, chunk + 1000), server.memory_info().rss))
        storm = time.perf_counter() - started
        after = server.memory_info().rss
        per_connection = (after - before) / count
        for device in devices:
            device.close()
        await warm.close()
    print(
        f"S4 {count} idle connections: {per_connection / 1024:.1f} KiB RSS each, "
        f"storm {storm:.2f} s ({count / storm:.0f} hellos/s)",
        flush=True,
    )
    return {
        "connections": count,
        "rss_before_mib": round(before / 2**20, 1),
        "rss_after_mib": round(after / 2**20, 1),
        "rss_per_connection_kib": round(per_connection / 1024, 2),
        "storm_seconds": round(storm, 2),
        "rss_mib_by_connections": [[n, round(rss / 2**20, 1)] for n, rss in samples],
    }


async def inbox_and_mark_read(admin_dsn: str) -> dict[str, Any]:
    """S6: server-side time of the inbox's first page for a user with 10,000 conversations,
    and of marking 1,000 messages read; with their plans."""
    from parley import store
    from parley.store.pool import create_pool

    dsn = await fresh_database(admin_dsn, DATABASE)
    me, peers = SELLER_BASE, 10_000
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET session_replication_role = replica")  # bulk load
            await conn.execute(
                "INSERT INTO users (id) SELECT $1 + g FROM generate_series(0, $2) g",
                BUYER_BASE,
                peers,
            )
            await conn.execute("INSERT INTO users (id) VALUES ($1)", me)
            # The badge rows the users trigger would have made, with the seller's total.
            await conn.execute("INSERT INTO badges (user_id) SELECT id FROM users")
            await conn.execute("UPDATE badges SET total = $2 WHERE user_id = $1", me, peers)
            await conn.execute(
                "INSERT INTO products (id, seller_id, title)"
                " SELECT $1 + g, $2, 'p' || g FROM generate_series(0, $3 - 1) g",
                PRODUCT_BASE,
                me,
                peers,
            )
            await conn.execute(
                """
                INSERT INTO conversations (product_id, buyer_id, seller_id, last_seq,
                                           last_message_text, last_message_at,
                                           seller_unread_count)
                SELECT $1 + g, $2 + g, $3, 1, 'hi', now() - g * interval '1 second', 1
                  FROM generate_series(0, $4 - 1) g
                """,
                PRODUCT_BASE,
                BUYER_BASE,
                me,
                peers,
            )
            await conn.execute(
                """
                INSERT INTO messages (conversation_id, seq, sender_id, recipient_id,
                                      message_type, content, client_msg_id, created_at)
                SELECT c.id, 1, c.buyer_id, c.seller_id, 'text', 'hi', 'seed-' || c.id,
                       c.last_message_at
                  FROM conversations c
                """
            )
            await conn.execute("SET session_replication_role = DEFAULT")
            await conn.execute("VACUUM ANALYZE")
        inbox_ms = []
        for _ in range(200):
            started = time.perf_counter()
            page = await store.inbox(pool, me, limit=20)
            inbox_ms.append((time.perf_counter() - started) * 1000)
        assert len(page.conversations) == 20
        plan = await pool.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {store.INBOX_QUERY}",
            me,
            False,
            datetime.max.replace(tzinfo=UTC),
            2**63 - 1,
            21,
        )
        scans = sorted(
            {
                f"{node['Node Type']} on {node.get('Index Name', node.get('Relation Name'))}"
                for node in _plan_nodes(json.loads(plan)[0]["Plan"])
                if "Scan" in node["Node Type"]
            }
        )
        # mark-read of 1,000 messages: one conversation with 1,000 unread, five times.
        mark_ms = []
        for n in range(5):
            conversation_id = await pool.fetchval(
                "SELECT id FROM conversations ORDER BY id OFFSET $1 LIMIT 1", n
            )
            await store.send_many(
                pool,
                [
                    store.SendRequest(conversation_id, BUYER_BASE + n, f"mr{n}-{k}", "unread")
                    for k in range(999)
                ],
            )
            started = time.perf_counter()
            receipt = await store.mark_read(pool, conversation_id, me, 10**9)
            mark_ms.append((time.perf_counter() - started) * 1000)
            assert receipt.messages_marked == 1000
        assert await store.recount_counters(pool) == []
    finally:
        await pool.close()
    result: dict[str, Any] = {
        "conversations": peers,
        "inbox_ms": {
            "p50": round(loadgen.percentile(inbox_ms, 0.5), 3),
            "p99": round(loadgen.percentile(inbox_ms, 0.99), 3),
        },
        "inbox_scans": scans,
        "mark_read_1000_ms": {
            "p50": round(loadgen.percentile(mark_ms, 0.5), 2),
            "max": round(max(mark_ms), 2),
        },
    }
    print(
        f"S6 inbox page for a user with {peers} conversations: p50 {result['inbox_ms']['p50']} ms,"
        f" p99 {result['inbox_ms']['p99']} ms ({'; '.join(scans)}); mark-read of 1,000"
        f" messages: p50 {result['mark_read_1000_ms']['p50']} ms in one UPDATE",
        flush=True,
    )
    return result


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(child for sub in node.get("Plans", []) for child in _plan_nodes(sub))]


def charts(docs: Path) -> list[Path]:
    """PNG charts in docs/ from the latest results of S1, S3 and S4."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    written = []

    def load(scenario: str) -> Any:
        path = RESULTS / f"{scenario}.json"
        return json.loads(path.read_text())["results"] if path.exists() else None

    def by_clients(
        rows: list[dict[str, Any]], series: list[tuple[str, str, str]], title: str, name: str
    ) -> None:
        """Messages per second against clients: one line per (row key, label, style)."""
        figure, axes = plt.subplots(figsize=(6, 4))
        clients = [row["clients"] for row in rows]
        for key, label, style in series:
            rates = [row[key] if key == "pgbench_tps" else row[key]["messages_per_second"]
                     for row in rows]  # fmt: skip
            axes.plot(clients, rates, style, label=label)
        axes.set(xscale="log", xlabel="clients", ylabel="messages per second", title=title)
        axes.set_xticks(clients, [str(c) for c in clients])
        axes.legend()
        written.append(_save_figure(figure, docs / name))

    if (s1 := load("s1")) is not None:
        by_clients(
            s1,
            [("parley", "Parley", "o-"), ("pgbench_tps", "pgbench (same insert)", "s--")],
            "S1: throughput over 1,000 conversations",
            "bench-s1-throughput.png",
        )
    if (peer_rows := load("peers")) is not None:
        by_clients(
            peer_rows,
            [
                ("parley", "Parley", "o-"),
                ("socketio", "python-socketio + AsyncRedisManager", "s--"),
                ("channels", "Django Channels + channels_redis", "^:"),
            ],
            "S1 against Python peers (all fan out through Redis)",
            "bench-peers-throughput.png",
        )
    if (s3 := load("s3")) is not None:
        half = next(row for row in s3 if row["fraction"] == 0.5)
        figure, axes = plt.subplots(figsize=(6, 4))
        counts = half["deliver_histogram_ms"]
        axes.bar(range(len(counts)), counts, width=1.0, align="edge")
        axes.set(
            xlabel="send→deliver, ms (last bar: 99 ms and more)",
            ylabel="messages",
            title=f"S3: latency at {half['rate']:.0f} msg/s (50 % of peak)",
        )
        axes.set_xlim(0, 60)
        written.append(_save_figure(figure, docs / "bench-s3-latency.png"))
    if (s4 := load("s4")) is not None:
        figure, axes = plt.subplots(figsize=(6, 4))
        points = s4["rss_mib_by_connections"]
        axes.plot([n for n, _ in points], [mib for _, mib in points], "o-")
        axes.set(
            xlabel="idle authenticated connections",
            ylabel="server RSS, MiB",
            title=f"S4: {s4['rss_per_connection_kib']} KiB per connection",
        )
        written.append(_save_figure(figure, docs / "bench-s4-rss.png"))
    return written


def _save_figure(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


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


async def sdk_receive(admin_dsn: str, messages: int, rounds: int) -> dict[str, Any]:
    dsn = await fresh_database(admin_dsn, DATABASE)
    [pair] = await seed(dsn, 1, 1)
    async with parley(dsn) as process:
        return await sdk.receive(
            process.ws_url, bench_token, pair.buyer, pair.seller, pair.conversations[0],
            messages, rounds,
        )  # fmt: skip


async def main(args: argparse.Namespace) -> int:
    concurrency = [int(c) for c in args.concurrency.split(",")]
    scenario = args.scenario
    if scenario == "charts":
        # Into bench/results/ unless asked for docs/: the committed charts change on purpose.
        for path in await asyncio.to_thread(charts, DOCS if args.docs else RESULTS):
            print(f"chart: {path}")
        return 0
    if scenario == "compare":
        if len(args.revisions) != 2:
            print("bench compare needs two revisions: REV_A REV_B", file=sys.stderr)
            return 2
        async with postgres(os.environ.get("DATABASE_URL")) as admin_dsn:
            rev_a, rev_b = args.revisions
            compared = await compare.compare(
                admin_dsn,
                rev_a,
                rev_b,
                concurrency,
                args.seconds,
                args.rounds or 2,
                args.redis,
                receipts_for={"b": "B", "both": "AB"}.get(args.receipts or "", ""),
            )
        print(f"results: {save('compare', compared, args.seconds)}")
        return 0
    async with postgres(os.environ.get("DATABASE_URL")) as admin_dsn:
        try:
            if scenario in ("s1", "s2"):
                result: Any = await throughput(
                    admin_dsn, concurrency, args.seconds, hot=scenario == "s2"
                )
            elif scenario == "s3":
                result = await latency_at_rates(admin_dsn, concurrency[0], args.seconds)
            elif scenario == "s4":
                result = await idle_connections(admin_dsn, args.connections)
            elif scenario == "s5":
                result = await stalled_client(admin_dsn, concurrency[0], args.seconds)
            elif scenario == "s6":
                result = await inbox_and_mark_read(admin_dsn)
            elif scenario == "peers":
                result = await peers(admin_dsn, concurrency, args.seconds)
            elif scenario == "gateways":
                result = await gateways.gateways(admin_dsn, concurrency, args.seconds)
            elif scenario == "notifications":
                result = await notifications.notifications(admin_dsn, args.messages or 2_000)
            elif scenario == "s7":
                result = await search.s7(admin_dsn, args.messages or 1_000_000)
            elif scenario == "export":
                result = await export.export(admin_dsn, args.messages or 100_000)
            elif scenario == "sdk":
                result = await sdk_receive(admin_dsn, args.messages or 2_000, args.rounds or 5)
            else:
                [result] = await throughput(admin_dsn, [4], args.seconds, hot=False)
                result["idle"] = await idle_connections(admin_dsn, 50)
            print(f"results: {save(scenario, result, args.seconds)}")
        finally:
            await drop_database(admin_dsn, DATABASE)
    if scenario != "smoke":
        return 0
    parley = result["parley"]
    healthy = parley["acked"] > 0 and not parley["errors"] and result["pgbench_tps"] > 0
    return 0 if healthy and parley["delivered"] == parley["acked"] else 1


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "scenario",
        choices=[
            "s1",
            "s2",
            "s3",
            "s4",
            "s5",
            "s6",
            "s7",
            "peers",
            "sdk",
            "smoke",
            "charts",
            "compare",
            "gateways",
            "notifications",
            "export",
        ],
    )
    parser.add_argument("revisions", nargs="*", help="compare: REV_A REV_B (any git revision)")
    parser.add_argument(
        "--concurrency",
        default="8,32,128",
        help="comma-separated client counts (S3 and S5 use the first)",
    )
    parser.add_argument("--connections", type=int, default=10_000, help="S4's idle sockets")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument(
        "--messages",
        type=int,
        help="sdk: messages per burst (2,000); notifications: how many (2,000); export: the"
        " long conversation's (100,000); s7: all of them (1,000,000)",
    )
    parser.add_argument(
        "--rounds", type=int, help="sdk: bursts per receiver (5); compare: A/B rounds (2)"
    )
    parser.add_argument("--redis", action="store_true", help="compare: fan out through Redis")
    parser.add_argument(
        "--receipts",
        nargs="?",
        const="b",
        choices=("b", "both"),
        help="compare: B's recipients (or both's) confirm deliveries as the SDKs do",
    )
    parser.add_argument("--docs", action="store_true", help="charts: write into docs/")
    return parser.parse_args(argv)


if __name__ == "__main__":
    # The same event loop as the server's: the load generator shares the machine's two cores
    # with the servers it measures, so the lighter it is the less it skews them.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        sys.exit(runner.run(main(parse(sys.argv[1:]))))

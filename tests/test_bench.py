"""The benchmark runs, briefly, so that it cannot rot."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


async def run_bench(
    admin_dsn: str, *arguments: str, within: float, results: Path | None = None
) -> None:
    """``python -m bench ARGUMENTS`` on a database of its own; fails with its output.
    ``results``: where it writes its figures (bench/results/ when None)."""
    env = os.environ | {
        "DATABASE_URL": admin_dsn,
        "BENCH_DATABASE": f"parley_bench_{secrets.token_hex(4)}",
    }
    if results is not None:
        env["BENCH_RESULTS"] = str(results)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench",
        *arguments,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), within)
    assert process.returncode == 0, output.decode()


async def test_a_short_bench_run_measures_parley_and_pgbench(postgres_admin_dsn: str) -> None:
    await run_bench(postgres_admin_dsn, "smoke", "--seconds", "1", within=120)
    row = json.loads((BENCH / "results" / "smoke.json").read_text())["results"]
    assert row["parley"]["acked"] > 0
    assert row["parley"]["delivered"] == row["parley"]["acked"]
    assert row["pgbench_tps"] > 0
    assert row["idle"]["connections"] == 50  # S4's idle devices all said hello
    assert row["idle"]["storm_seconds"] > 0


async def test_each_peer_acks_and_delivers_every_message_it_accepts(
    postgres_admin_dsn: str, tmp_path: Path
) -> None:
    await run_bench(
        postgres_admin_dsn,
        "peers",
        "--concurrency",
        "2",
        "--seconds",
        "1",
        within=180,
        results=tmp_path,
    )
    [row] = json.loads((tmp_path / "peers.json").read_text())["results"]
    assert row["pgbench_tps"] > 0
    for stack in ("parley", "socketio", "channels"):
        assert row[stack]["acked"] > 0, stack
        assert row[stack]["delivered"] == row[stack]["acked"], stack
        assert row[stack]["errors"] == {}, stack
        assert row[stack]["server_cpu_us_per_message"] > 0, stack


async def test_the_export_bench_streams_every_message_and_verifies(
    postgres_admin_dsn: str, tmp_path: Path
) -> None:
    await run_bench(postgres_admin_dsn, "export", "--messages", "300", within=120, results=tmp_path)
    row = json.loads((tmp_path / "export.json").read_text())["results"]
    assert (row["long"]["messages"], row["short"]["messages"]) == (300, 30)
    assert row["verify_ok"] is True
    assert row["verify_links"] == 300 + 3  # the messages, and an edit of every hundredth


async def test_s7_searches_as_a_user_through_the_gin_index(
    postgres_admin_dsn: str, tmp_path: Path
) -> None:
    await run_bench(postgres_admin_dsn, "s7", "--messages", "4000", within=120, results=tmp_path)
    row = json.loads((tmp_path / "s7.json").read_text())["results"]
    assert row["queries"] == 210
    assert row["median_ms"] > 0
    assert row["uses_gin_index"] is True, row["plan"]

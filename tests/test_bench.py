"""The benchmark runs, briefly, so that it cannot rot."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


async def test_a_short_bench_run_measures_parley_and_pgbench(postgres_admin_dsn: str) -> None:
    env = os.environ | {
        "DATABASE_URL": postgres_admin_dsn,
        "BENCH_DATABASE": f"parley_bench_{secrets.token_hex(4)}",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench",
        "smoke",
        "--seconds",
        "2",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, output.decode()
    row = json.loads((BENCH / "results" / "smoke.json").read_text())["results"]
    assert row["parley"]["acked"] > 0
    assert row["parley"]["delivered"] == row["parley"]["acked"]
    assert row["pgbench_tps"] > 0
    assert row["idle"]["connections"] == 50  # S4's idle devices all said hello
    assert row["idle"]["storm_seconds"] > 0

"""schemathesis against the internal API's own OpenAPI document, on a running gateway process,
as a user runs it: every check (a request the document allows is accepted, one it forbids is
refused, every answer is documented, never a 5xx) and every phase (examples, coverage,
fuzzing, and stateful: links from one call to the next), on three seeds."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley import store
from parley.store.pool import create_pool
from tests.conftest import JWT_SECRET
from tests.services import free_port

TOKEN = "schemathesis-service-token"
SEEDS = (1, 2, 3)
PHASES = "examples,coverage,fuzzing,stateful"


async def _seed(database_url: str) -> None:
    """Users and a listing to name, and a report for the stateful phase to resolve (it
    follows the link from GET /internal/reports to POST /internal/reports/{id}/resolve)."""
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        for user_id in (1, 2, 702):
            await store.upsert_user(pool, user_id, f"user {user_id}")
        await store.upsert_product(pool, 1, 702, "a listing")
        conversation, _ = await store.open_conversation(pool, 1, 1)
        sent = await store.send_message(
            pool,
            conversation_id=conversation.id,
            sender_id=702,
            client_msg_id="fuzz-1",
            content="Pay me by bank transfer instead",
        )
        await store.report_message(pool, 1, sent.message.id, "asks to pay outside the app")
    finally:
        await pool.close()


@pytest.fixture(scope="module")
def internal_api(database_url: str) -> Iterator[str]:
    """A `parley serve` process with the internal API on; its base URL."""
    asyncio.run(_seed(database_url))
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": database_url,
        "PARLEY_SERVICE_TOKEN": TOKEN,
        "PARLEY_JWT_SECRET": JWT_SECRET,
        "PORT": str(port),
        "PARLEY_LOG_LEVEL": "info",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "parley.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    stdout = process.stdout
    log: list[str] = []
    listening = threading.Event()

    def drain() -> None:  # read everything it prints, so its pipe never fills
        for line in stdout:
            log.append(line)
            if "Uvicorn running on" in line:
                listening.set()
        listening.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        assert listening.wait(60), "".join(log)
        assert process.poll() is None, "".join(log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.join(timeout=30)
        stdout.close()
    assert "Traceback" not in "".join(log), "".join(log)


def test_schemathesis_finds_nothing_with_every_check_and_phase(
    internal_api: str, tmp_path: Path
) -> None:
    # Every call carries the service token, so negative cases that would drop it are not
    # generated (they would be sent with it and judged as if not); tests/test_http.py checks
    # that a request without the token is refused with 401. The seeds run side by side.
    def schemathesis(seed: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                str(Path(sys.executable).parent / "schemathesis"), "run",
                f"{internal_api}/internal/openapi.json",
                "--header", f"Authorization: Bearer {TOKEN}",
                "--checks", "all",
                "--phases", PHASES,
                "--seed", str(seed),
                "--max-examples", "30",
                "--generation-with-security-parameters", "false",
                "--no-color",
            ],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=tmp_path,  # its .schemathesis/ cache stays out of the checkout
        )  # fmt: skip

    runs = {seed: schemathesis(seed) for seed in SEEDS}
    for seed, run in runs.items():
        said, _ = run.communicate(timeout=300)
        assert run.returncode == 0, f"seed {seed}:\n{said[-6000:]}"
        counted = re.search(r"(\d+) generated, (\d+) passed", said)
        assert counted is not None, said[-2000:]
        generated, passed = map(int, counted.groups())
        assert generated == passed > 300, f"seed {seed}:\n{said[-2000:]}"

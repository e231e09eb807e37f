"""The shell blocks of README.md and docs/*.md run as written, each in a fresh shell after the
quick start, and print what their comments say.

The quick start runs for real: `python3 dev.py run` in a checkout of its own (symlinks to
this one, with an empty `.parley/`), on a free port that the blocks' `:8000` is turned into.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.clients import open_client
from tests.services import QuickStart

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)
# A comment that is a JSON object says what the command prints.
_PRINTS = re.compile(r"\s#\s*(\{.*\})\s*$")
# Blocks that start with these are not run here; each is checked elsewhere.
NOT_RUN_HERE = {
    "python3 dev.py run": "the quick start itself, which this test starts",
    "python3 dev.py test": "the command that runs this test",
    "python3 dev.py bench": "minutes long; tests/test_bench.py runs a short one",
}
# What a fresh shell does not have: nothing of a configured Parley.
_CONFIGURED = ("PARLEY_", "DATABASE_URL", "REDIS_URL", "PORT", "WEB_CONCURRENCY")


@dataclass(frozen=True)
class Block:
    document: str
    line: int
    text: str

    @property
    def commands(self) -> list[str]:
        """Logical lines: a trailing backslash continues a command."""
        joined = self.text.replace("\\\n", " ")
        return [line for line in joined.splitlines() if line.strip()]

    def __str__(self) -> str:
        return f"{self.document}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text()
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(document.name, line, match.group(1)))
    return found


def runnable() -> list[Block]:
    return [b for b in blocks() if not b.text.lstrip().startswith(tuple(NOT_RUN_HERE))]


def test_the_readme_has_blocks_to_run_and_says_why_others_are_not() -> None:
    names = {str(block) for block in runnable()}
    assert sum(name.startswith("README.md") for name in names) >= 4, names
    skipped = [b for b in blocks() if str(b) not in names]
    for block in skipped:
        assert any(block.text.lstrip().startswith(start) for start in NOT_RUN_HERE)


def fresh_shell_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_CONFIGURED)}


@pytest.fixture
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout as symlinks, but for its own `.parley/` (no demo data of anyone's)."""
    root = tmp_path_factory.mktemp("checkout")
    for entry in ROOT.iterdir():
        if entry.name not in {".parley", ".git"}:
            (root / entry.name).symlink_to(entry)
    return root


@contextlib.asynccontextmanager
async def quick_start(checkout: Path) -> AsyncIterator[QuickStart]:
    server = QuickStart(checkout, fresh_shell_env())
    try:
        await server.start()
        # A visitor reports a message, as the moderation block expects one to be.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            token = (await http.post("/demo/token", json={"user_id": 702})).json()["token"]
        async with open_client(f"ws://127.0.0.1:{server.port}/ws") as mary:
            await mary.ok("hello", token=token)
            history = await mary.ok("message.history", conversation_id=1, limit=10)
            johns = [m for m in history["messages"] if m["sender_id"] == 701]
            await mary.ok("message.report", message_id=johns[0]["id"], reason="asks too much")
        yield server
    finally:
        # Ctrl-C, as whoever ran the quick start would stop it.
        code = await server.signal_and_wait(signal.SIGINT) if server.running else 130
        assert code == 130, server.log


async def run_block(block: Block, checkout: Path, port: int) -> list[tuple[str, str]]:
    """Run the block in bash from the checkout; each command with what it printed."""
    commands = [command.replace(":8000", f":{port}") for command in block.commands]
    script = ["set -euo pipefail"]
    for number, command in enumerate(commands):
        script += [command, f"printf '\\n@@{number}@@\\n'"]
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", "\n".join(script),
        cwd=checkout, env=fresh_shell_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    output = stdout.decode()
    assert process.returncode == 0, f"{block} failed:\n{output}\n{stderr.decode()}"
    printed = []
    for number, command in enumerate(commands):
        before, _, output = output.partition(f"@@{number}@@\n")
        printed.append((command, before.rstrip("\n")))
    return printed


async def test_every_block_runs_as_written_after_the_quick_start(checkout: Path) -> None:
    """In document order, as a reader would: each block in a fresh shell."""
    async with quick_start(checkout) as server:
        for block in runnable():
            for command, printed in await run_block(block, checkout, server.port):
                said = _PRINTS.search(command)
                if said is not None:
                    assert json.loads(printed) == json.loads(said.group(1)), (str(block), command)

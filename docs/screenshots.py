"""The README's screenshots, from the demo's own data: `python3 dev.py screenshots`.

It starts Parley in demo mode on a fresh embedded Postgres of its own (a temporary directory,
so nothing a visitor or a test left behind shows), plays a short, believable exchange in
headless Chromium (Debian's package, as the browser tests use it) and writes
docs/screenshots/inbox.png, conversation.png and phone.png.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright, expect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the browser tests' Chromium, with the same flags

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
WAIT_MS = 20_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def until_listening(server: asyncio.subprocess.Process) -> None:
    """Wait for uvicorn to say it listens (on stderr), then keep draining its log."""
    assert server.stderr is not None
    async with asyncio.timeout(120):  # a first start initialises the embedded Postgres
        while b"Uvicorn running on" not in (line := await server.stderr.readline()):
            if not line:
                raise RuntimeError(f"parley serve exited with {await server.wait()}")

    async def drain(stream: asyncio.StreamReader) -> None:
        while await stream.readline():
            pass

    asyncio.get_running_loop().create_task(drain(server.stderr))


async def log_in(browser: Browser, url: str, name: str, **options: object) -> Page:
    context = await browser.new_context(**({"viewport": {"width": 1100, "height": 720}} | options))
    page = await context.new_page()
    await page.goto(url + "/")
    await page.get_by_role("button", name=f"Log in as {name}").click()
    await expect(page.locator("#me")).to_have_text(name, timeout=WAIT_MS)
    return page


async def play(browser: Browser, url: str) -> None:
    john = await log_in(browser, url, "John")
    mary = await log_in(browser, url, "Mary")
    await john.locator("#inbox li", has_text="iPhone 13").click()
    await expect(john.locator("#messages .message")).to_have_count(3, timeout=WAIT_MS)
    await john.locator("#text").fill("I can pick it up on Saturday morning, if that suits you.")
    await john.locator("#text").press("Enter")
    row = mary.locator("#inbox li", has_text="iPhone 13")
    await expect(row.locator(".preview")).to_contain_text("Saturday", timeout=WAIT_MS)
    await mary.screenshot(path=OUT / "inbox.png")

    await row.click()
    await expect(john.locator("#messages .message").last.locator(".seen")).to_have_text(
        "Seen", timeout=WAIT_MS
    )
    await john.screenshot(path=OUT / "conversation.png")

    eve = await log_in(
        browser, url, "Eve", viewport={"width": 390, "height": 780}, is_mobile=True, has_touch=True
    )
    await eve.locator("#inbox li", has_text="Road bike").click()
    await expect(eve.locator("#messages .message")).to_have_count(2, timeout=WAIT_MS)
    await eve.locator("#text").fill("Yes, and I can add the bottle cage for free.")
    await eve.locator("#text").press("Enter")
    await expect(eve.locator("#messages .message.mine").last).to_contain_text("bottle cage")
    await eve.screenshot(path=OUT / "phone.png")


async def main() -> int:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="parley-screenshots-") as data:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env |= {"PARLEY_DEMO": "1", "PARLEY_DATA_DIR": data, "PORT": str(port)}
        parley = Path(sys.executable).with_name("parley")
        server = await asyncio.create_subprocess_exec(
            str(parley), "serve", env=env, cwd=data, stderr=asyncio.subprocess.PIPE
        )
        try:
            await until_listening(server)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS
                )
                try:
                    await play(browser, url)
                finally:
                    await browser.close()
        finally:
            server.terminate()
            await server.wait()
    print(f"screenshots written to {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    OUT.mkdir(parents=True, exist_ok=True)
    sys.exit(asyncio.run(main()))

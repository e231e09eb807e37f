"""The chat page for everyone: axe-core 4 (from npm, pinned by clients/js's lock) finds
nothing on the login, inbox, conversation, offer, blocked and phone views of the demo, and
a keyboard alone opens a conversation, sends a message and accepts an offer, with the focus
visible at every step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import ConsoleWatch
from tests.clients import Gateway

WAIT_MS = 10_000
AXE = Path(__file__).resolve().parents[2] / "clients" / "js" / "node_modules" / "axe-core"


async def axe(page: Page, view: str) -> None:
    """Run axe-core on the page as it is; every violation is a failure, named."""
    source = AXE / "axe.min.js"
    if not source.exists():
        pytest.fail(f"{source} is missing: `npm ci` in clients/js (dev.py test runs it)")
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(
            source.read_text()
        )  # through DevTools: the page's CSP allows no inline script
    result: dict[str, Any] = await page.evaluate("axe.run(document)")
    found = [
        f"{v['id']} ({v['impact']}): {[node['target'] for node in v['nodes']]}"
        for v in result["violations"]
    ]
    assert found == [], f"axe on the {view} view"


async def open_page(
    browser: Browser, gateway: Gateway, console: ConsoleWatch, **options: Any
) -> Page:
    context = await browser.new_context(**({"viewport": {"width": 1100, "height": 720}} | options))
    page = console.watch(await context.new_page(), "page")
    await page.goto(gateway.server.http_url + "/")
    await expect(page.get_by_role("button", name="Log in as Mary")).to_be_visible(timeout=WAIT_MS)
    return page


async def test_axe_finds_nothing_on_any_view(browser: Browser, demo_gateway: Gateway) -> None:
    console = ConsoleWatch()
    page = await open_page(browser, demo_gateway, console)
    await axe(page, "login")
    await page.get_by_role("button", name="Log in as Mary").click()
    row = page.locator("#inbox li", has_text="iPhone 13")
    await expect(row).to_be_visible(timeout=WAIT_MS)
    await axe(page, "inbox")
    await row.click()
    offer = page.locator("#messages .message.theirs", has_text="Would you take 420?")
    await expect(offer.get_by_role("button", name="Accept")).to_be_visible(timeout=WAIT_MS)
    await axe(page, "conversation with an offer")
    await page.get_by_role("tab", name="Blocked").click()
    await expect(page.locator("#inbox-empty")).to_be_visible(timeout=WAIT_MS)
    await axe(page, "blocked")

    phone = await open_page(browser, demo_gateway, console, viewport={"width": 390, "height": 844})
    await phone.get_by_role("button", name="Log in as John").click()
    await phone.locator("#inbox li", has_text="iPhone 13").click()
    await expect(phone.locator("#messages .message")).to_have_count(3, timeout=WAIT_MS)
    await axe(phone, "phone conversation")
    await phone.get_by_role("button", name="Back to conversations").click()
    await axe(phone, "phone inbox")
    assert console.problems == []


async def tab_to(page: Page, name: str, limit: int = 80) -> None:
    """Press Tab until the focused element's text (or label) starts with ``name``; the focus
    must be visible there."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(
            """() => {
                const e = document.activeElement;
                const text = (e.getAttribute('aria-label') || e.textContent || '').trim();
                return {text, outline: getComputedStyle(e).outlineStyle};
            }"""
        )
        if focused["text"].startswith(name):
            assert focused["outline"] != "none", f"no visible focus on {name!r}"
            return
    pytest.fail(f"Tab never reached {name!r}")


async def test_a_keyboard_alone_opens_sends_and_accepts_an_offer(
    browser: Browser, demo_gateway: Gateway
) -> None:
    console = ConsoleWatch()
    page = await open_page(browser, demo_gateway, console)
    await tab_to(page, "Log in as Mary")
    await page.keyboard.press("Enter")
    await expect(page.locator("#inbox li", has_text="iPhone 13")).to_be_visible(timeout=WAIT_MS)
    await tab_to(page, "iPhone 13")
    await page.keyboard.press("Enter")
    await expect(page.locator("#messages .message")).to_have_count(3, timeout=WAIT_MS)
    await expect(page.locator("#text")).to_be_focused()
    await page.keyboard.type("Yes, 420 works for me.")
    await page.keyboard.press("Enter")
    mine = page.locator("#messages .message.mine", has_text="420 works")
    await expect(mine).to_be_visible(timeout=WAIT_MS)
    await tab_to(page, "Accept")
    await page.keyboard.press("Enter")
    card = page.locator("#messages .message.theirs .offer", has_text="Would you take 420?")
    await expect(card.locator(".offer-status")).to_have_text("Accepted", timeout=WAIT_MS)
    assert console.problems == []

"""The page says what happened: every refused action shows a short message in the page, next
to where it was tried, and keeps what the user typed; actions that cannot succeed are not
offered; and a blocked user can be found again, in the Blocked view, and unblocked."""

from __future__ import annotations

import json
import re
from typing import Any

import asyncpg
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from parley import store
from tests.browser.conftest import ConsoleWatch
from tests.clients import Gateway

WAIT_MS = 10_000


async def log_in(browser: Browser, gateway: Gateway, name: str, console: ConsoleWatch) -> Page:
    context = await browser.new_context(viewport={"width": 1100, "height": 720})
    page = console.watch(await context.new_page(), name)
    await page.goto(gateway.server.http_url + "/")
    await page.get_by_role("button", name=f"Log in as {name}").click()
    await expect(page.locator("#me")).to_have_text(name, timeout=WAIT_MS)
    return page


async def open_phone(page: Page) -> None:
    await page.locator("#inbox li", has_text="iPhone 13").click()
    first = page.locator("#messages .message", has_text="Is the iPhone still available?")
    await expect(first).to_be_visible(timeout=WAIT_MS)


async def send(page: Page, text: str) -> None:
    await page.locator("#text").fill(text)
    await page.locator("#text").press("Enter")


async def test_a_blocked_send_is_said_and_kept_and_unblocking_lets_them_write(
    browser: Browser, demo_gateway: Gateway
) -> None:
    console = ConsoleWatch()
    john = await log_in(browser, demo_gateway, "John", console)
    mary = await log_in(browser, demo_gateway, "Mary", console)
    await open_phone(mary)
    mary.once("dialog", lambda dialog: dialog.accept())
    await mary.get_by_role("button", name="Block", exact=True).click()

    await open_phone(john)
    await send(john, "Hello? Still there?")
    notice = john.locator("#composer-notice")
    await expect(notice).to_have_text(
        "Not delivered: Mary can't receive your messages.", timeout=WAIT_MS
    )
    await expect(john.locator("#text")).to_have_value("Hello? Still there?")
    await expect(john.locator("#messages .message.mine", has_text="Still there")).to_have_count(0)

    # Mary finds John in the Blocked view and unblocks him there; he can write again.
    await mary.get_by_role("tab", name="Blocked").click()
    await mary.get_by_role("button", name="Unblock John").click()
    await expect(mary.get_by_role("button", name="Unblock John")).to_have_count(0, timeout=WAIT_MS)
    await john.locator("#text").press("Enter")
    await expect(john.locator("#messages .message.mine", has_text="Still there")).to_be_visible(
        timeout=WAIT_MS
    )
    await expect(notice).to_be_hidden()
    await mary.get_by_role("tab", name="Inbox").click()
    row = mary.locator("#inbox li", has_text="iPhone 13")
    await expect(row.locator(".preview")).to_contain_text("Still there", timeout=WAIT_MS)
    assert console.problems == []


async def test_offers_that_cannot_succeed_are_refused_in_words_or_not_offered(
    browser: Browser, demo_gateway: Gateway, pool: asyncpg.Pool
) -> None:
    console = ConsoleWatch()
    john = await log_in(browser, demo_gateway, "John", console)
    await open_phone(john)
    notice = john.locator("#composer-notice")

    # A bad amount: said under the composer, nothing sent.
    john.once("dialog", lambda dialog: dialog.accept("abc"))
    await john.get_by_role("button", name="Offer", exact=True).click()
    await expect(notice).to_have_text("Enter an amount like 420 or 419.99.", timeout=WAIT_MS)

    # Mary accepts John's offer behind his page's back (no event reaches it): the Unsend it
    # still shows is refused, in words, under the offer.
    [offer_id] = [
        row["id"]
        for row in await pool.fetch("SELECT id FROM messages WHERE message_type = 'offer'")
    ]
    await store.answer_offer(pool, 702, offer_id, "accept")
    mine = john.locator("#messages .message.mine", has_text="Would you take 420?")
    await mine.get_by_role("button", name="Unsend").click()
    await expect(mine.locator(".notice")).to_have_text(
        "An accepted offer is a deal: it can't be unsent.", timeout=WAIT_MS
    )

    # The listing is reserved now, which the page does not know yet: an offer is refused.
    john.once("dialog", lambda dialog: dialog.accept("400"))
    await john.get_by_role("button", name="Offer", exact=True).click()
    await expect(notice).to_have_text(
        "This listing isn't for sale any more, so offers are closed.", timeout=WAIT_MS
    )

    # Opened again, the page knows: no Offer button, and no Unsend on the accepted offer.
    await john.get_by_role("tab", name="Archived").click()
    await john.get_by_role("tab", name="Inbox").click()
    await open_phone(john)
    await expect(john.get_by_role("button", name="Offer", exact=True)).to_be_hidden()
    await expect(mine.locator(".offer-status")).to_have_text("Accepted")
    await expect(mine.get_by_role("button", name="Unsend")).to_have_count(0)
    assert console.problems == []


def refuse_sends(code: str) -> Any:
    """A WebSocket route that answers every message.send with ``code``, as a server that is
    rate limiting or cannot reach its database would; everything else goes through."""

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") != "message.send":
                server.send(message)
                return
            refusal = {
                "type": "error",
                "id": frame["id"],
                "code": code,
                "message": code.replace("_", " "),
                "retryable": True,
                "retry_after_ms": 10,
            }
            ws.send(json.dumps(refusal))

        ws.on_message(from_page)

    return route


async def test_rate_limited_and_unavailable_sends_are_said_and_kept(
    browser: Browser, demo_gateway: Gateway
) -> None:
    console = ConsoleWatch()
    shown = {
        "rate_limited": "You're going too fast. Try again in 1 s.",
        "unavailable": (
            "Parley can't reach the server right now. Nothing was lost: try again in a moment."
        ),
    }
    for code, text in shown.items():
        context = await browser.new_context()
        page = console.watch(await context.new_page(), code)
        await page.route_web_socket(re.compile(r".*/ws$"), refuse_sends(code))
        await page.goto(demo_gateway.server.http_url + "/")
        await page.get_by_role("button", name="Log in as John").click()
        await open_phone(page)
        await send(page, "Can you ship it?")
        # The SDK retries these by itself; when it gives up, the page says so.
        await expect(page.locator("#composer-notice")).to_have_text(text, timeout=WAIT_MS)
        await expect(page.locator("#text")).to_have_value("Can you ship it?")
        await context.close()
    assert console.problems == []

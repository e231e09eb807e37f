"""The page's search: typing in the box lists the messages found, their words marked, and a
result opens its conversation at that message, marked, with what is around it."""

from __future__ import annotations

import asyncio
import json
import re

import asyncpg
from playwright.async_api import Browser, WebSocketRoute, expect

from parley import store
from tests.browser.conftest import ConsoleWatch
from tests.browser.test_page_refusals import WAIT_MS, log_in, open_phone, send
from tests.clients import Gateway


async def test_a_result_opens_its_conversation_at_the_message(
    browser: Browser, demo_gateway: Gateway
) -> None:
    console = ConsoleWatch()
    john = await log_in(browser, demo_gateway, "John", console)
    await open_phone(john)
    for n in range(3):
        await send(john, f"filler {n}")
        await expect(john.locator("#messages .message.mine", has_text=f"filler {n}")).to_be_visible(
            timeout=WAIT_MS
        )

    await john.get_by_label("Search messages").fill("AVAIL")
    results = john.locator("#search-results li")
    await expect(results).to_have_count(1, timeout=WAIT_MS)
    await expect(results.locator("mark")).to_have_text(["available"])
    await expect(results).to_contain_text("You: Hi! Is the iPhone still available?")
    await results.get_by_role("button").click()
    found = john.locator("#messages .message.found")
    await expect(found).to_have_count(1, timeout=WAIT_MS)
    await expect(found).to_contain_text("Is the iPhone still available?")
    await expect(found).to_be_in_viewport()
    await expect(john.locator("#messages .message", has_text="filler 2")).to_have_count(1)

    await john.get_by_label("Search messages").fill("nothing like this")
    await expect(results).to_have_text(["No messages found."], timeout=WAIT_MS)
    assert console.problems == []


SEQS = "[...document.querySelectorAll('#messages .message')].map((m) => Number(m.dataset.seq))"


async def test_a_result_far_back_reads_on_to_the_newest_with_no_gap(
    browser: Browser, demo_gateway: Gateway, pool: asyncpg.Pool
) -> None:
    """A result's page stops short of the end. A message that arrives meanwhile is not put
    after a gap: scrolling down loads the pages between, in order, up to it; and one's own
    message from such a page brings back the newest page with it."""
    conversation_id = await pool.fetchval(
        "SELECT id FROM conversations WHERE product_id = 7010 AND buyer_id = 701"
    )
    for n in range(70):
        await store.send_message(
            pool,
            conversation_id=conversation_id,
            sender_id=702 if n % 2 else 701,
            client_msg_id=f"later-{n}",
            content=f"later {n}",
        )
    console = ConsoleWatch()
    john = await log_in(browser, demo_gateway, "John", console)
    await john.get_by_label("Search messages").fill("AVAIL")
    await john.locator("#search-results li").get_by_role("button").click()
    await expect(john.locator("#messages .message.found")).to_have_count(1, timeout=WAIT_MS)
    shown: list[int] = await john.evaluate(SEQS)
    assert shown[0] == 1
    assert shown[-1] < 73  # the page stops short of the end

    async with demo_gateway.connect(702) as mary:
        await mary.send_message(conversation_id, "live from Mary")
    # The page has the event (the inbox row shows it), and has not put it after the gap.
    row = john.locator("#inbox li", has_text="iPhone 13")
    await expect(row).to_contain_text("live from Mary", timeout=WAIT_MS)
    live = john.locator("#messages .message", has_text="live from Mary")
    await expect(live).to_have_count(0)

    bubbles = john.locator("#messages .message")
    for _ in range(10):  # each scroll to the bottom loads the next page
        if await live.count():
            break
        before = await bubbles.count()
        await john.locator("#messages").evaluate(
            "(list) => { list.scrollTop = list.scrollHeight; }"
        )
        await expect(bubbles).not_to_have_count(before, timeout=WAIT_MS)
    await expect(live).to_have_count(1)
    shown = await john.evaluate(SEQS)
    assert shown == list(range(1, 75))

    await john.get_by_label("Search messages").fill("AVAIL")
    await john.locator("#search-results li").get_by_role("button").click()
    await expect(john.locator("#messages .message.found")).to_have_count(1, timeout=WAIT_MS)
    await send(john, "and mine")
    mine = john.locator("#messages .message.mine", has_text="and mine")
    await expect(mine).to_be_visible(timeout=WAIT_MS)
    shown = await john.evaluate(SEQS)
    assert shown == list(range(shown[0], 76))
    assert console.problems == []


async def test_a_message_that_comes_while_the_next_page_is_read_is_not_lost(
    browser: Browser, demo_gateway: Gateway, pool: asyncpg.Pool
) -> None:
    """The page reads on after a result; Mary's message is stored after the server read that
    page, and reaches the page before the page does. It is fetched next, in its place."""
    conversation_id = await pool.fetchval(
        "SELECT id FROM conversations WHERE product_id = 7010 AND buyer_id = 701"
    )
    for n in range(30):  # seqs 4-33: past the result's page, within one more page
        await store.send_message(
            pool,
            conversation_id=conversation_id,
            sender_id=702,
            client_msg_id=f"later-{n}",
            content=f"later {n}",
        )
    held: list[str | bytes] = []
    holding = asyncio.Event()
    routes: list[WebSocketRoute] = []
    reading_on: set[str] = set()

    def route(ws: WebSocketRoute) -> None:
        routes.append(ws)
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "message.history" and frame.get("before_seq"):
                reading_on.add(frame["id"])
            server.send(message)

        def from_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("id") in reading_on and not holding.is_set():
                held.append(message)
                holding.set()
                return
            ws.send(message)

        ws.on_message(from_page)
        server.on_message(from_server)

    console = ConsoleWatch()
    context = await browser.new_context(viewport={"width": 1100, "height": 720})
    john = console.watch(await context.new_page(), "John")
    await john.route_web_socket(re.compile(r".*/ws$"), route)
    await john.goto(demo_gateway.server.http_url + "/")
    await john.get_by_role("button", name="Log in as John").click()
    await john.get_by_label("Search messages").fill("AVAIL")
    await john.locator("#search-results li").get_by_role("button").click()
    await expect(john.locator("#messages .message.found")).to_have_count(1, timeout=WAIT_MS)
    assert max(await john.evaluate(SEQS)) < 33

    await john.locator("#messages").evaluate("(list) => { list.scrollTop = list.scrollHeight; }")
    await asyncio.wait_for(holding.wait(), WAIT_MS / 1000)  # the page read, its answer held
    async with demo_gateway.connect(702) as mary:
        await mary.send_message(conversation_id, "live from Mary")
    row = john.locator("#inbox li", has_text="iPhone 13")
    await expect(row).to_contain_text("live from Mary", timeout=WAIT_MS)
    # Now the answer read before Mary's message: a page that ends at 33, short of the newest.
    routes[0].send(held[0])
    live = john.locator("#messages .message", has_text="live from Mary")
    await expect(live).to_have_count(1, timeout=WAIT_MS)
    assert await john.evaluate(SEQS) == list(range(1, 35))
    assert console.problems == []
    await context.close()

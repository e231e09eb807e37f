"""The page's search: typing in the box lists the messages found, their words marked, and a
result opens its conversation at that message, marked, with what is around it."""

from __future__ import annotations

import asyncpg
from playwright.async_api import Browser, expect

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

"""The page's search: typing in the box lists the messages found, their words marked, and a
result opens its conversation at that message, marked, with what is around it."""

from __future__ import annotations

from playwright.async_api import Browser, expect

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

"""The chat page at / in real Chromium: a buyer and a seller chat through a demo-mode server,
under the server's Content-Security-Policy, with no console errors."""

from __future__ import annotations

import asyncpg
from playwright.async_api import Browser, Page, expect

from parley import store
from tests.browser.conftest import ConsoleWatch
from tests.clients import Gateway

WAIT_MS = 10_000
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


async def log_in(browser: Browser, gateway: Gateway, name: str, console: ConsoleWatch) -> Page:
    context = await browser.new_context(viewport={"width": 1100, "height": 720})
    page = console.watch(await context.new_page(), name)
    response = await page.goto(gateway.server.http_url + "/")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    await page.get_by_role("button", name=f"Log in as {name}").click()
    await expect(page.locator("#me")).to_have_text(name, timeout=WAIT_MS)
    return page


async def test_a_buyer_and_a_seller_chat_through_the_page(
    browser: Browser, demo_gateway: Gateway
) -> None:
    console = ConsoleWatch()
    buyer = await log_in(browser, demo_gateway, "John", console)
    seller = await log_in(browser, demo_gateway, "Mary", console)
    phone = seller.locator(".inbox li", has_text="iPhone 13")
    await expect(phone).to_be_visible(timeout=WAIT_MS)
    await expect(seller).to_have_title("Parley")

    # The buyer opens the listing's conversation and types: the seller sees it.
    await buyer.get_by_role("tab", name="Listings").click()
    await buyer.locator("#listings li", has_text="iPhone 13").click()
    await expect(buyer.locator("#messages .message")).to_have_count(3, timeout=WAIT_MS)
    # Both are logged in: the buyer's header says the seller is online.
    presence = buyer.locator("#conversation-presence")
    await expect(presence).to_have_text("online", timeout=WAIT_MS)
    await buyer.locator("#text").press_sequentially("Is it")
    await expect(phone.locator(".typing-now")).to_have_text("typing…", timeout=WAIT_MS)

    # The buyer sends: the seller's badge and title show 1.
    await buyer.locator("#text").fill("Is it still available?")
    await buyer.locator("#text").press("Enter")
    await expect(phone.locator(".badge")).to_have_text("1", timeout=WAIT_MS)
    await expect(seller).to_have_title("(1) Parley", timeout=WAIT_MS)
    await expect(phone.locator(".typing-now")).to_have_count(0)
    # The seller's page has it (its SDK confirms what arrives): the buyer sees "Delivered".
    await expect(buyer.locator("#messages .message").last.locator(".seen")).to_have_text(
        "Delivered", timeout=WAIT_MS
    )

    # The seller opens it: the buyer sees "Seen", the seller's badge goes to 0.
    await phone.click()
    await expect(seller.locator("#messages .message").last).to_contain_text("still available")
    await expect(buyer.locator("#messages .message").last.locator(".seen")).to_have_text(
        "Seen", timeout=WAIT_MS
    )
    await expect(seller).to_have_title("Parley", timeout=WAIT_MS)
    await expect(phone.locator(".badge")).to_have_count(0)

    # The seller's inbox row has the buyer's online dot; her privacy toggle hides her from him.
    await expect(phone.locator(".online-dot")).to_be_visible(timeout=WAIT_MS)
    await seller.get_by_label("Show when I'm online").uncheck()
    await expect(presence).to_have_text("", timeout=WAIT_MS)
    await seller.get_by_label("Show when I'm online").check()
    await expect(presence).to_have_text("online", timeout=WAIT_MS)

    # The seller's socket is cut; the buyer sends 3; the seller catches up, once each, in order.
    assert demo_gateway.cut(702) == 1
    await expect(seller.locator("#status")).to_be_visible(timeout=WAIT_MS)
    for number in (1, 2, 3):
        await buyer.locator("#text").fill(f"while you were away {number}")
        await buyer.locator("#text").press("Enter")
    away = seller.locator("#messages .message", has_text="while you were away")
    await expect(away).to_have_count(3, timeout=WAIT_MS)
    texts = await away.locator(".bubble").all_inner_texts()
    assert texts == [f"while you were away {n}" for n in (1, 2, 3)]
    await expect(seller.locator("#status")).to_be_hidden(timeout=WAIT_MS)

    # A script in a message is text, and nothing runs.
    await buyer.locator("#text").fill(XSS)
    await buyer.locator("#text").press("Enter")
    shown = seller.locator("#messages .message .bubble").last
    await expect(shown).to_have_text(XSS, timeout=WAIT_MS)
    assert await seller.evaluate("window.__xss") is None
    assert await seller.locator("#messages img, #messages script").count() == 0

    # A phone number: the seller is warned under it, the buyer who wrote it is not.
    await buyer.locator("#text").fill("Call me on +49 151 23456789, it's quicker")
    await buyer.locator("#text").press("Enter")
    theirs = seller.locator("#messages .message", has_text="it's quicker")
    await expect(theirs.locator(".safety-warning")).to_contain_text(
        "This message has a phone number. Keep payment and contact in the app", timeout=WAIT_MS
    )
    mine = buyer.locator("#messages .message", has_text="it's quicker")
    await expect(mine).to_be_visible()
    await expect(mine.locator(".safety-warning")).to_have_count(0)

    await buyer.get_by_role("tab", name="Inbox").click()
    await expect(buyer.locator("#inbox li .preview")).to_contain_text("quicker")
    assert console.problems == []


async def test_the_page_fits_a_phone(browser: Browser, demo_gateway: Gateway) -> None:
    console = ConsoleWatch()
    context = await browser.new_context(
        viewport={"width": 390, "height": 780}, is_mobile=True, has_touch=True
    )
    page = console.watch(await context.new_page(), "Eve")
    await page.goto(demo_gateway.server.http_url + "/")
    await page.get_by_role("button", name="Log in as Eve").click()
    conversation = page.locator(".inbox li", has_text="Road bike")
    await conversation.click()
    await expect(page.locator("#messages .message")).to_have_count(2, timeout=WAIT_MS)
    await expect(page.locator(".side")).to_be_hidden()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await page.locator("#back").click()
    await expect(conversation).to_be_visible()
    await page.locator(".inbox li", has_text="Road bike").click()
    assert console.problems == []


async def test_older_messages_load_on_scrolling_up_and_archiving_moves_the_row(
    browser: Browser, demo_gateway: Gateway, pool: asyncpg.Pool
) -> None:
    conversation_id = await pool.fetchval("SELECT id FROM conversations WHERE product_id = 7010")
    for n in range(70):
        await store.send_message(
            pool, conversation_id=conversation_id, sender_id=701, client_msg_id=f"old-{n}",
            content=f"older {n}",
        )  # fmt: skip
    console = ConsoleWatch()
    seller = await log_in(browser, demo_gateway, "Mary", console)
    row = seller.locator("#inbox li", has_text="iPhone 13")
    await row.click()
    shown = seller.locator("#messages .message")
    await expect(shown).to_have_count(30, timeout=WAIT_MS)  # one page
    while await shown.count() < 73:
        before = await shown.count()
        await seller.locator("#messages").evaluate("list => { list.scrollTop = 0; }")
        await expect(shown).not_to_have_count(before, timeout=WAIT_MS)
    seqs = [int(s) for s in await shown.evaluate_all("items => items.map(i => i.dataset.seq)")]
    assert seqs == list(range(1, 74))

    await seller.get_by_role("button", name="Archive").click()
    await expect(row).to_have_count(0, timeout=WAIT_MS)
    await seller.get_by_role("tab", name="Archived").click()
    archived = seller.locator("#inbox li", has_text="iPhone 13")
    await expect(archived).to_be_visible(timeout=WAIT_MS)
    await archived.click()
    await seller.get_by_role("button", name="Unarchive").click()
    await expect(archived).to_have_count(0, timeout=WAIT_MS)
    assert console.problems == []


async def test_a_message_edited_then_unsent_from_the_page_changes_on_both_sides(
    browser: Browser, demo_gateway: Gateway
) -> None:
    console = ConsoleWatch()
    buyer = await log_in(browser, demo_gateway, "John", console)
    seller = await log_in(browser, demo_gateway, "Mary", console)
    await buyer.locator("#inbox li", has_text="iPhone 13").click()
    await buyer.locator("#text").fill("Is it stil available?")
    await buyer.locator("#text").press("Enter")
    row = seller.locator("#inbox li", has_text="iPhone 13")
    await expect(row.locator(".badge")).to_have_text("1", timeout=WAIT_MS)

    mine = buyer.locator("#messages .message.mine").last
    await mine.get_by_role("button", name="Edit").click()
    await expect(buyer.locator("#text")).to_have_value("Is it stil available?")
    await buyer.locator("#text").fill("Is it still available?")
    await buyer.locator("#text").press("Enter")
    await expect(mine.locator(".edited")).to_have_text("edited", timeout=WAIT_MS)
    await expect(row.locator(".preview")).to_have_text(
        "John: Is it still available?", timeout=WAIT_MS
    )

    await row.click()
    theirs = seller.locator("#messages .message.theirs").last
    await expect(theirs.locator(".bubble")).to_have_text("Is it still available?")
    await buyer.locator("#messages .message.mine").last.get_by_role("button", name="Unsend").click()
    await expect(theirs.locator(".bubble")).to_have_text("Message unsent", timeout=WAIT_MS)
    await expect(buyer.locator("#messages .message.mine").last.locator(".bubble")).to_have_text(
        "You unsent a message", timeout=WAIT_MS
    )
    assert console.problems == []


async def test_a_message_reported_from_the_page_reaches_the_moderation_queue(
    browser: Browser, demo_gateway: Gateway, pool: asyncpg.Pool
) -> None:
    console = ConsoleWatch()
    seller = await log_in(browser, demo_gateway, "Mary", console)
    await seller.locator("#inbox li", has_text="iPhone 13").click()
    offer = seller.locator("#messages .message.theirs", has_text="Would you take 420?")
    seller.once("dialog", lambda dialog: dialog.accept("lowball and rude"))
    await offer.get_by_role("button", name="Report").click()
    await expect(offer.get_by_role("button", name="Reported")).to_be_disabled(timeout=WAIT_MS)
    [row] = await pool.fetch("SELECT reporter_id, reason, status FROM reports")
    assert tuple(row) == (702, "lowball and rude", "open")
    assert console.problems == []


async def test_an_offer_made_and_accepted_from_the_page_reserves_the_listing(
    browser: Browser, demo_gateway: Gateway, pool: asyncpg.Pool
) -> None:
    console = ConsoleWatch()
    buyer = await log_in(browser, demo_gateway, "John", console)
    seller = await log_in(browser, demo_gateway, "Mary", console)
    await buyer.locator("#inbox li", has_text="iPhone 13").click()
    await seller.locator("#inbox li", has_text="iPhone 13").click()
    first = seller.locator("#messages .message.theirs", has_text="Would you take 420?")
    await expect(first.get_by_role("button", name="Accept")).to_be_visible(timeout=WAIT_MS)
    # John offers 400 from the composer: it replaces his open offer of 420 on both pages.
    buyer.once("dialog", lambda dialog: dialog.accept("400"))
    await buyer.get_by_role("button", name="Offer", exact=True).click()
    newer = seller.locator("#messages .message.theirs .offer").last
    await expect(newer.locator(".amount")).to_contain_text("400", timeout=WAIT_MS)
    await expect(first.locator(".offer-status")).to_have_text("Replaced by a newer offer")
    await expect(first.get_by_role("button", name="Accept")).to_have_count(0)
    mine = buyer.locator("#messages .message.mine .offer").last
    await expect(mine.get_by_role("button", name="Withdraw")).to_be_visible()
    # Mary accepts it: both see it accepted, the notice, and the listing reserved.
    await newer.get_by_role("button", name="Accept").click()
    for page, card in ((seller, newer), (buyer, mine)):
        await expect(card.locator(".offer-status")).to_have_text("Accepted", timeout=WAIT_MS)
        await expect(card.get_by_role("button")).to_have_count(0)
        notice = page.locator("#messages .message.system").last
        await expect(notice).to_contain_text("Mary accepted €400.00", timeout=WAIT_MS)
        await expect(page.locator("#conversation-peer")).to_contain_text(
            "Reserved", timeout=WAIT_MS
        )
    product = await store.get_product(pool, 7010)
    assert (product.status, product.reserved_for) == ("reserved", 701)
    assert console.problems == []


async def test_mute_and_block_from_the_page(
    browser: Browser, demo_gateway: Gateway, pool: asyncpg.Pool
) -> None:
    console = ConsoleWatch()
    seller = await log_in(browser, demo_gateway, "Mary", console)
    row = seller.locator("#inbox li", has_text="iPhone 13")
    await row.click()
    await seller.get_by_role("button", name="Mute", exact=True).click()
    await expect(seller.get_by_role("button", name="Unmute")).to_be_visible(timeout=WAIT_MS)
    muted = await pool.fetchval(
        "SELECT seller_muted_until FROM conversations WHERE product_id = 7010"
    )
    assert muted is not None
    seller.once("dialog", lambda dialog: dialog.accept())
    await seller.get_by_role("button", name="Block", exact=True).click()
    await expect(row).to_have_count(0, timeout=WAIT_MS)
    assert [user.id for user in await store.blocked_users(pool, 702)] == [701]
    assert console.problems == []

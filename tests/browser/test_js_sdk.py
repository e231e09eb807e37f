"""The JavaScript SDK in real Chromium against a real server: the same promises as the Python
SDK's tests, from the file the server serves at /parley.js."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from playwright.async_api import Browser, Page

from parley import store
from tests.browser.conftest import ConsoleWatch
from tests.clients import Gateway, send_burst
from tests.conftest import JWT_SECRET
from tests.world import World

HARNESS = (Path(__file__).parent / "sdk_harness.js").read_text()
WAIT_MS = 15_000


class Harness:
    def __init__(self, page: Page, gateway: Gateway) -> None:
        self.page = page
        self.gateway = gateway
        self.tokens: list[str] = []  # what the next calls of the token function return
        self.calls = 0
        self.hold_call: int | None = None  # that call waits until `release` is set
        self.asked, self.release = asyncio.Event(), asyncio.Event()

    async def fresh_token(self) -> str:
        self.calls += 1
        if self.calls == self.hold_call:
            self.asked.set()
            await self.release.wait()
        return self.tokens.pop(0) if self.tokens else self.gateway.token(701)

    async def start(self) -> None:
        await self.page.evaluate("url => window.harness.start(url)", self.gateway.server.ws_url)

    async def call(self, script: str, *args: Any) -> Any:
        return await self.page.evaluate(script, list(args))

    async def until(self, condition: str, *args: Any) -> None:
        await self.page.wait_for_function(condition, arg=list(args), timeout=WAIT_MS)


@pytest.fixture
async def harness(browser: Browser, roomy_gateway: Gateway) -> AsyncIterator[Harness]:
    page = await browser.new_page()
    console = ConsoleWatch()
    console.watch(page, "sdk")
    # A real page of the server's origin (a routed, fulfilled page would count as a public
    # one, and Chromium's local network checks would refuse its socket to loopback).
    blank = roomy_gateway.server.http_url + "/healthz"
    running = Harness(page, roomy_gateway)
    await page.expose_function("freshToken", running.fresh_token)
    await page.goto(blank)
    await page.add_script_tag(content=HARNESS, type="module")
    await page.wait_for_function("window.harness !== undefined", timeout=WAIT_MS)
    yield running
    await page.evaluate("window.harness.client && window.harness.client.close()")
    await page.close()
    assert console.problems == []


async def test_a_socket_cut_mid_stream_loses_and_repeats_nothing(
    cast: World, roomy_gateway: Gateway, harness: Harness
) -> None:
    await harness.start()
    conversation = await harness.call("([p]) => window.harness.client.openConversation(p)", 7010)
    async with roomy_gateway.connect(702) as mary:
        sending = asyncio.create_task(send_burst(mary, conversation["id"], 200))
        await harness.until("([c]) => window.harness.seqs(c).length >= 40", conversation["id"])
        assert roomy_gateway.cut(701) == 1
        await sending
        await harness.until("([c]) => window.harness.seqs(c).length >= 200", conversation["id"])
    seqs = await harness.call("([c]) => window.harness.seqs(c)", conversation["id"])
    assert seqs == list(range(1, 201))
    assert "reconnecting" in await harness.call("() => window.harness.log.status")


async def test_a_send_whose_reply_is_lost_is_retried_and_resolves_once(
    cast: World, roomy_gateway: Gateway, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits = roomy_gateway.lose_first_send_reply(monkeypatch, 701)
    await harness.start()
    message = await harness.call(
        """async ([p]) => {
            const c = await window.harness.client.openConversation(p);
            return await window.harness.client.send(c.id, "sent once");
        }""",
        7010,
    )
    rows = await cast.pool.fetch("SELECT id, content FROM messages")
    assert [(row["id"], row["content"]) for row in rows] == [(message["id"], "sent once")]
    assert len(commits) == 2
    assert await harness.call("([c]) => window.harness.seqs(c)", message["conversation_id"]) == [1]


async def test_a_refused_token_is_fetched_again_and_so_is_one_for_each_reconnect(
    cast: World, roomy_gateway: Gateway, harness: Harness
) -> None:
    expired = {"sub": "701", "exp": int(time.time()) - 3600}
    harness.tokens = [jwt.encode(expired, JWT_SECRET, algorithm="HS256")]
    await harness.start()
    assert await harness.call("() => window.harness.log.tokens") == 2
    roomy_gateway.cut(701)
    await harness.until("() => window.harness.log.status.slice(-2).join() === 'reconnecting,open'")
    assert await harness.call("() => window.harness.log.tokens") == 3


async def test_a_token_about_to_expire_is_renewed_on_the_same_socket(
    cast: World, roomy_gateway: Gateway, harness: Harness
) -> None:
    harness.tokens = [roomy_gateway.token(701, ttl_seconds=4) for _ in range(3)]
    await harness.start()
    await harness.until("() => window.harness.log.tokens >= 3")
    assert await harness.call("() => window.harness.log.status") == ["connecting", "open"]


async def test_badges_are_applied_by_version_never_going_back(
    cast: World, roomy_gateway: Gateway, harness: Harness
) -> None:
    await harness.start()
    conversation = await harness.call("([p]) => window.harness.client.openConversation(p)", 7010)
    cid = conversation["id"]
    async with roomy_gateway.connect(702) as mary:
        await send_burst(mary, cid, 5)
        await harness.until("() => window.harness.client.unread.total === 5")
        stale = {"type": "unread", "total": 1, "conversation_id": cid, "count": 1, "version": 1}
        roomy_gateway.push(701, stale)
        marker = {"type": "typing", "conversation_id": cid, "user_id": 702, "state": "start"}
        roomy_gateway.push(701, marker)
        await harness.until("() => window.harness.log.typing.length === 1")
        assert await harness.call("() => window.harness.client.unread.total") == 5
        assert await harness.call("([c]) => window.harness.client.unreadCount(c)", cid) == 5
    unread = await harness.call("() => window.harness.log.unread")
    versions = [badge["version"] for badge in unread if badge["conversation_id"] is None]
    assert versions == sorted(set(versions))
    assert json.dumps(stale) not in json.dumps(unread)


async def test_typing_ends_by_itself_when_no_stop_comes(
    cast: World, roomy_gateway: Gateway, harness: Harness
) -> None:
    await harness.start()
    conversation = await harness.call("([p]) => window.harness.client.openConversation(p)", 7010)
    typing = {"type": "typing", "conversation_id": conversation["id"], "user_id": 702}
    roomy_gateway.push(701, typing | {"state": "start", "expires_in_ms": 200})
    await harness.until("() => window.harness.log.typing.length === 2")
    log = await harness.call("() => window.harness.log.typing.map(t => t.typing)")
    assert log == [True, False]


async def test_a_conversation_begun_while_away_is_announced_after_the_reconnect(
    cast: World, roomy_gateway: Gateway, harness: Harness
) -> None:
    bike, _ = await store.upsert_product(cast.pool, 7020, 701, "Road bike", price_cents=32000)
    harness.hold_call = 2
    await harness.start()
    announced = "(c) => window.harness.log.announced.push(c.id)"
    await harness.call(f"() => {{ window.harness.log.announced = []; "
                       f"window.harness.client.on('conversation', {announced}); }}")  # fmt: skip
    async with roomy_gateway.connect(703) as eve:
        roomy_gateway.cut(701)
        await asyncio.wait_for(harness.asked.wait(), 15)
        opened = await eve.ok("conversation.open", product_id=bike.id)
        conversation_id = opened["conversation"]["id"]
        await eve.ok("message.send", conversation_id=conversation_id, client_msg_id="e1",
                     content="Is the bike still for sale?")  # fmt: skip
        harness.release.set()
        await harness.until("([c]) => window.harness.log.announced.includes(c)", conversation_id)
        await eve.ok("message.send", conversation_id=conversation_id, client_msg_id="e2",
                     content="I can pick it up today.")  # fmt: skip
        await harness.until("([c]) => window.harness.seqs(c).join() === '2'", conversation_id)


async def test_presence_is_watched_again_after_a_reconnect(
    cast: World, roomy_gateway: Gateway, harness: Harness
) -> None:
    await harness.start()
    await harness.call("([p]) => window.harness.client.openConversation(p)", 7010)
    [answer] = await harness.call("([u]) => window.harness.client.subscribePresence([u])", 702)
    assert answer == {"user_id": 702, "online": False, "last_seen_at": None}
    online = "([u, o]) => window.harness.client.presence.get(u)?.online === o"
    async with roomy_gateway.connect(702):
        await harness.until(online, 702, True)
        assert roomy_gateway.cut(701) == 1  # the SDK reconnects, and watches Mary again
        reopened = "() => window.harness.log.status.slice(-2).join() === 'reconnecting,open'"
        await harness.until(reopened)
    await harness.until(online, 702, False)
    told = await harness.call("() => window.harness.log.presence")
    assert told[-1]["online"] is False
    assert told[-1]["last_seen_at"] is not None

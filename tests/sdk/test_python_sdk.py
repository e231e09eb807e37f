"""The Python SDK against a real server: what it promises an app across cut sockets, lost
replies, expiring tokens and out-of-order badges."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from parley import store
from parley_client import (
    MessageUpdatedEvent,
    ParleyClient,
    ParleyError,
    StatusEvent,
    TypingEvent,
    UnreadEvent,
)
from tests.clients import Gateway, announced, delivered, sdk, send_burst, states
from tests.conftest import JWT_SECRET
from tests.world import World

TIMEOUT = 15.0


async def test_a_socket_cut_mid_stream_loses_and_repeats_nothing(
    cast: World, roomy_gateway: Gateway
) -> None:
    async with (
        sdk(roomy_gateway, roomy_gateway.token(701)) as (john, seen),
        roomy_gateway.connect(702) as mary,
    ):
        conversation = await john.open_conversation(cast.iphone.id)
        burst = asyncio.create_task(send_burst(mary, conversation["id"], 200))
        await seen.until(lambda _: len(delivered(seen, conversation["id"])) >= 40)
        assert roomy_gateway.cut(701) == 1
        await burst
        await seen.until(lambda _: len(delivered(seen, conversation["id"])) >= 200)
        states = [event.state for event in seen.of(StatusEvent)]

    assert delivered(seen, conversation["id"]) == list(range(1, 201))
    assert "reconnecting" in states
    assert states[-1] == "open"


async def test_a_send_whose_reply_is_lost_is_retried_and_resolves_once(
    cast: World, roomy_gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits = roomy_gateway.lose_first_send_reply(monkeypatch, 701)
    async with sdk(roomy_gateway, roomy_gateway.token(701)) as (john, seen):
        conversation = await john.open_conversation(cast.iphone.id)
        message = await asyncio.wait_for(john.send(conversation["id"], "sent once"), TIMEOUT)

    rows = await cast.pool.fetch("SELECT id, content FROM messages")
    assert [(row["id"], row["content"]) for row in rows] == [(message["id"], "sent once")]
    assert len(commits) == 2, "the retry reached the server with the same client_msg_id"
    assert delivered(seen, conversation["id"]) == [1]
    assert "reconnecting" in [event.state for event in seen.of(StatusEvent)]


async def test_a_refused_token_is_fetched_again_and_so_is_one_for_each_reconnect(
    cast: World, roomy_gateway: Gateway
) -> None:
    handed_out: list[str] = []

    async def token() -> str:
        if not handed_out:  # a stale token from the app's cache
            expired = {"sub": "701", "exp": int(time.time()) - 3600}
            handed_out.append(jwt.encode(expired, JWT_SECRET, algorithm="HS256"))
        else:
            handed_out.append(roomy_gateway.token(701))
        return handed_out[-1]

    async with sdk(roomy_gateway, token) as (john, seen):
        assert john.user is not None
        assert john.user["id"] == 701
        assert len(handed_out) == 2
        roomy_gateway.cut(701)
        await seen.until(lambda _: states(seen)[-2:] == ["reconnecting", "open"])
        assert len(handed_out) == 3, "the reconnect asked for a fresh token"
        await john.open_conversation(cast.iphone.id)


async def test_a_token_about_to_expire_is_renewed_on_the_same_socket(
    cast: World, roomy_gateway: Gateway
) -> None:
    calls = 0
    called = asyncio.Condition()

    async def short_lived() -> str:
        nonlocal calls
        async with called:
            calls += 1
            called.notify_all()
        return roomy_gateway.token(701, ttl_seconds=4)  # warned at half its life: 2 s

    async with sdk(roomy_gateway, short_lived) as (john, seen):
        # Renewed twice: the second warning proves the first renewal took on this socket.
        async with asyncio.timeout(TIMEOUT), called:
            await called.wait_for(lambda: calls >= 3)
        await john.open_conversation(cast.iphone.id)
        assert states(seen) == ["connecting", "open"], "no reconnect"


async def test_badges_are_applied_by_version_never_going_back(
    cast: World, roomy_gateway: Gateway
) -> None:
    async with (
        sdk(roomy_gateway, roomy_gateway.token(701)) as (john, seen),
        roomy_gateway.connect(702) as mary,
    ):
        conversation = await john.open_conversation(cast.iphone.id)
        await send_burst(mary, conversation["id"], 5)
        await seen.until(lambda _: john.unread_total == 5)
        # A stale event, as a slow gateway would deliver it late: it must not win.
        roomy_gateway.push(
            701,
            {"type": "unread", "total": 1, "conversation_id": conversation["id"], "count": 1,
             "version": 1},
        )  # fmt: skip
        # Frames to a socket keep their order: once this arrives, so has the stale one.
        roomy_gateway.push(
            701, {"type": "typing", "conversation_id": conversation["id"], "user_id": 702,
                  "state": "start", "expires_in_ms": 60_000},
        )  # fmt: skip
        await seen.until(lambda _: bool(seen.of(TypingEvent)))
        assert john.unread_total == 5
        assert john.unread_count(conversation["id"]) == 5
        await john.mark_read(conversation["id"], 5)
        await seen.until(lambda _: john.unread_total == 0)

    versions = [event.version for event in seen.of(UnreadEvent) if event.conversation_id is None]
    assert versions == sorted(set(versions)), "totals arrive in growing version order"
    counts = [event.version for event in seen.of(UnreadEvent) if event.conversation_id]
    assert counts == sorted(set(counts)), "counts too"
    assert john.unread_count(conversation["id"]) == 0


async def test_typing_ends_by_itself_when_no_stop_comes(
    cast: World, roomy_gateway: Gateway
) -> None:
    async with sdk(roomy_gateway, roomy_gateway.token(701)) as (john, seen):
        conversation = await john.open_conversation(cast.iphone.id)
        typing = {"type": "typing", "conversation_id": conversation["id"], "user_id": 702}
        roomy_gateway.push(701, typing | {"state": "start", "expires_in_ms": 200})
        await seen.until(lambda _: len(seen.of(TypingEvent)) == 2, within=5)

    assert [event.typing for event in seen.of(TypingEvent)] == [True, False]


async def test_requests_after_close_fail_clearly(roomy_gateway: Gateway, world: World) -> None:
    client = ParleyClient(roomy_gateway.server.ws_url, roomy_gateway.token(701))
    await client.connect()
    await client.close()
    with pytest.raises(ParleyError) as refused:
        await client.inbox()
    assert refused.value.code == "closed"


async def test_a_conversation_begun_while_away_is_announced_after_the_reconnect(
    cast: World, roomy_gateway: Gateway
) -> None:
    bike, _ = await store.upsert_product(cast.pool, 7020, 701, "Road bike", price_cents=32000)
    asked, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def token() -> str:
        nonlocal calls
        calls += 1
        if calls == 2:  # the reconnect waits here until Eve has written
            asked.set()
            await release.wait()
        return roomy_gateway.token(701)

    async with (
        sdk(roomy_gateway, token) as (john, seen),
        roomy_gateway.connect(703) as eve,
    ):
        roomy_gateway.cut(701)
        await asyncio.wait_for(asked.wait(), TIMEOUT)
        opened = await eve.ok("conversation.open", product_id=bike.id)
        conversation_id = opened["conversation"]["id"]
        await eve.ok("message.send", conversation_id=conversation_id, client_msg_id="e1",
                     content="Is the bike still for sale?")  # fmt: skip
        release.set()
        await seen.until(lambda _: conversation_id in announced(seen))
        await eve.ok("message.send", conversation_id=conversation_id, client_msg_id="e2",
                     content="I can pick it up today.")  # fmt: skip
        await seen.until(lambda _: delivered(seen, conversation_id) == [2])
        assert john.unread_count(conversation_id) >= 1


async def test_edits_and_unsends_reach_both_sides_as_updated_messages(
    cast: World, roomy_gateway: Gateway
) -> None:
    async with (
        sdk(roomy_gateway, roomy_gateway.token(701)) as (john, johns),
        sdk(roomy_gateway, roomy_gateway.token(702)) as (mary, marys),
    ):
        conversation = await john.open_conversation(cast.iphone.id)
        sent = await john.send(conversation["id"], "Is this still avialable?")
        await marys.until(lambda _: len(delivered(marys, conversation["id"])) == 1)
        edited = await john.edit(sent["id"], "Is this still available?")
        await marys.until(lambda _: bool(marys.of(MessageUpdatedEvent)))
        assert marys.of(MessageUpdatedEvent)[0].message == edited
        unsent = await john.unsend(sent["id"])
        await marys.until(lambda _: len(marys.of(MessageUpdatedEvent)) == 2)
        await marys.until(lambda _: mary.unread_total == 0)
        assert marys.of(MessageUpdatedEvent)[1].message == unsent
        assert [e.message["content"] for e in johns.of(MessageUpdatedEvent)] == [
            "Is this still available?",
            "",
        ]
        with pytest.raises(ParleyError) as refused:
            await mary.edit(sent["id"], "mine")
        assert refused.value.code == "not_your_message"


async def test_an_offer_countered_and_accepted_through_both_sdks(
    cast: World, roomy_gateway: Gateway
) -> None:
    async with (
        sdk(roomy_gateway, roomy_gateway.token(701)) as (john, johns),
        sdk(roomy_gateway, roomy_gateway.token(702)) as (mary, marys),
    ):
        conversation = await john.open_conversation(cast.iphone.id)
        made = await john.offer(conversation["id"], 38000, "EUR")
        await marys.until(lambda _: delivered(marys, conversation["id"]) == [made["seq"]])
        answer = await mary.counter_offer(made["id"], 42000)
        notice, counter = answer["messages"]
        # Mary's own answer reaches her app like everything else: updated offer, then the
        # notice and her counter, once each, in seq order.
        await marys.until(lambda _: len(delivered(marys, conversation["id"])) >= 3)
        assert marys.of(MessageUpdatedEvent)[-1].message["offer_status"] == "countered"
        assert delivered(marys, conversation["id"]) == [1, 2, 3]
        await johns.until(lambda _: delivered(johns, conversation["id"]) == [1, 2, 3])
        updates = johns.of(MessageUpdatedEvent)
        assert [(u.message["id"], u.message["offer_status"]) for u in updates] == [
            (made["id"], "countered")
        ]
        accepted = await john.accept_offer(counter["id"])
        assert accepted["messages"][0]["content"] == "John accepted €420.00"
        await marys.until(lambda _: delivered(marys, conversation["id"]) == [1, 2, 3, 4])
        assert notice["content"] == "Mary countered €380.00 with €420.00"
        with pytest.raises(ParleyError) as refused:
            await mary.decline_offer(counter["id"])
        assert refused.value.code == "own_offer"
    product = await store.get_product(cast.pool, cast.iphone.id)
    assert (product.status, product.reserved_for) == ("reserved", 701)


async def test_a_token_function_that_fails_is_retried_and_may_be_a_plain_function(
    cast: World, roomy_gateway: Gateway
) -> None:
    calls = 0

    def token() -> str:  # a plain function, not a coroutine
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the marketplace's token endpoint is down")
        return roomy_gateway.token(701)

    async with asyncio.timeout(TIMEOUT), sdk(roomy_gateway, token) as (john, seen):
        conversation = await john.open_conversation(cast.iphone.id)
    assert conversation["buyer_id"] == 701
    reconnecting = [e for e in seen.of(StatusEvent) if e.state == "reconnecting"]
    assert "token endpoint is down" in reconnecting[0].reason
    assert calls == 2

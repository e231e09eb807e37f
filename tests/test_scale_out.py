"""Many gateway processes over Redis, and what happens when processes stop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator

import httpx
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from parley import store
from parley.config import Settings
from parley.gateway.auth import issue_token
from tests.clients import Client, open_client
from tests.conftest import JWT_SECRET
from tests.services import GatewayProcess, redis_server
from tests.world import World


def gateway_env(database_url: str, redis_url: str | None, prefix: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "PARLEY_JWT_SECRET": JWT_SECRET,
        "PARLEY_REDIS_PREFIX": prefix,
        "PARLEY_DRAIN_SECONDS": "5",
        # These tests drive load on purpose.
        "PARLEY_MESSAGES_PER_SECOND": "10000",
        "PARLEY_MESSAGE_BURST": "10000",
        "PARLEY_FRAMES_PER_SECOND": "10000",
        "PARLEY_FRAME_BURST": "10000",
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


@contextlib.asynccontextmanager
async def gateways(
    count: int, database_url: str, redis_url: str | None, prefix: str, *args: str
) -> AsyncIterator[list[GatewayProcess]]:
    processes = [
        GatewayProcess(f"gateway-{n}", gateway_env(database_url, redis_url, prefix))
        for n in range(count)
    ]
    try:
        await asyncio.gather(*(process.start(*args) for process in processes))
        yield processes
    finally:
        await asyncio.gather(*(process.stop() for process in processes))


@contextlib.asynccontextmanager
async def connect(process: GatewayProcess, user_id: int) -> AsyncIterator[Client]:
    async with open_client(process.ws_url) as client:
        token = issue_token(Settings(jwt_secret=JWT_SECRET), user_id)
        client.user = await client.ok("hello", token=token)
        yield client


async def test_more_than_one_worker_needs_redis(database_url: str) -> None:
    env = os.environ | gateway_env(database_url, None, "x:")
    env.pop("REDIS_URL", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "parley.cli",
        "serve",
        "--workers",
        "2",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "--workers 2 needs REDIS_URL" in stderr.decode()


async def test_buyer_and_seller_on_different_gateways_chat_as_on_one(
    database_url: str, redis_url: str, channel_prefix: str, world: World
) -> None:
    conversation = await world.open()
    async with (
        gateways(2, database_url, redis_url, channel_prefix) as (a, b),
        connect(a, world.john.id) as john,
        connect(b, world.john.id) as john_other,
        connect(b, world.mary.id) as mary,
        connect(a, world.mary.id) as mary_other,
    ):
        sent = await john.ok(
            "message.send",
            conversation_id=conversation.id,
            client_msg_id="x1",
            content="Is this still available?",
        )
        for device in (mary, mary_other, john_other):
            new = await device.event("message.new")
            assert new["message"] == sent["message"]
        for device in (mary, mary_other):
            await device.event("unread", total=1, count=1)

        await mary.ok("typing", conversation_id=conversation.id, state="start")
        for device in (john, john_other):
            await device.event("typing", state="start", user_id=world.mary.id)

        await mary.ok("conversation.read", conversation_id=conversation.id, up_to_seq=1)
        for device in (john, john_other):
            await device.event("message.read", up_to_seq=1, reader_id=world.mary.id)
        await mary_other.event("unread", total=0, count=0)

        reply = await mary.ok(
            "message.send", conversation_id=conversation.id, client_msg_id="y1", content="Yes!"
        )
        for device in (john, john_other):
            assert (await device.event("message.new"))["message"] == reply["message"]
        await mary_other.event("message.new")
        # the reply cleared Mary's typing indicator for John, across processes
        await john.event("typing", state="stop", user_id=world.mary.id)


async def test_sigterm_finishes_requests_in_flight_then_closes_with_1012(
    database_url: str, world: World
) -> None:
    conversation = await world.open()
    acked: set[str] = set()
    stop_after = 40
    async with (
        gateways(1, database_url, None, "x:") as (gateway,),
        contextlib.AsyncExitStack() as stack,
    ):
        clients = [
            await stack.enter_async_context(connect(gateway, (world.john, world.mary)[n % 2].id))
            for n in range(4)
        ]

        async def keep_sending(client: Client, n: int) -> None:
            for k in range(10_000):
                client_msg_id = f"g{n}-{k}"
                frame = {
                    "type": "message.send",
                    "id": client_msg_id,
                    "conversation_id": conversation.id,
                    "client_msg_id": client_msg_id,
                    "content": "still there?",
                }
                try:
                    await client.send_raw(json.dumps(frame))
                    reply = await client.reply(client_msg_id)
                except (ConnectionClosed, AssertionError):
                    return  # the socket closed under us: this request went unanswered
                assert reply["type"] == "ok", reply
                acked.add(client_msg_id)
                if len(acked) == stop_after:
                    assert gateway.process is not None
                    gateway.process.send_signal(signal.SIGTERM)

        await asyncio.wait_for(
            asyncio.gather(*(keep_sending(c, n) for n, c in enumerate(clients))), 30
        )
        codes = [await client.wait_closed() for client in clients]
        assert codes == [1012] * len(clients), gateway.log
        assert await gateway.signal_and_wait(signal.SIGTERM) in (0, -signal.SIGTERM)

    stored = {
        r["client_msg_id"] for r in await world.pool.fetch("SELECT client_msg_id FROM messages")
    }
    assert len(acked) >= stop_after
    assert acked <= stored, "no acknowledged message is lost"
    assert stored <= acked, "a request in flight finished and got its reply before the close"
    assert await store.recount_counters(world.pool) == []


async def test_workers_share_one_port_and_fan_out_through_redis(
    database_url: str, redis_url: str, channel_prefix: str, world: World
) -> None:
    conversation = await world.open()
    async with (
        gateways(1, database_url, redis_url, channel_prefix, "--workers", "2") as (gateway,),
        contextlib.AsyncExitStack() as stack,
    ):
        # Enough sockets that both workers hold some of Mary's.
        marys = [await stack.enter_async_context(connect(gateway, world.mary.id)) for _ in range(6)]
        john = await stack.enter_async_context(connect(gateway, world.john.id))
        sent = await john.ok(
            "message.send", conversation_id=conversation.id, client_msg_id="w1", content="hi"
        )
        for mary in marys:
            assert (await mary.event("message.new"))["message"] == sent["message"]
        # /metrics sums both workers: all seven sockets, whichever worker holds them.
        async with httpx.AsyncClient(base_url=gateway.http_url) as http:
            text = (await http.get("/metrics")).text
        [connections] = [
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "parley_connections"
        ]
        assert connections == 7
    # Every log line is a JSON object.
    for line in gateway.output:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= entry.keys(), line


async def test_while_redis_is_down_sends_commit_and_clients_resync_when_it_returns(
    database_url: str, channel_prefix: str, world: World
) -> None:
    conversation = await world.open()
    async with (
        redis_server() as redis,
        gateways(2, database_url, redis.url, channel_prefix) as (a, b),
        connect(a, world.john.id) as john,
        connect(b, world.mary.id) as mary,
    ):
        await redis.stop()
        for n in range(3):
            sent = await john.ok(
                "message.send",
                conversation_id=conversation.id,
                client_msg_id=f"offline-{n}",
                content=f"sent while Redis was down {n}",
            )
            assert sent["message"]["seq"] == n + 1
        await redis.start()
        await mary.event("resync", within=15)
        synced = await mary.ok("sync", conversations={str(conversation.id): 0})
        [entry] = synced["conversations"]
        assert [m["seq"] for m in entry["messages"]] == [1, 2, 3]
        assert synced["unread_total"] == 3

        # Live delivery is back.
        live = await john.ok(
            "message.send", conversation_id=conversation.id, client_msg_id="back", content="back"
        )
        new = await mary.wait_for(
            lambda f: f["type"] == "message.new" and f["message"]["seq"] == 4, within=10
        )
        assert new["message"] == live["message"]


async def test_offers_blocks_and_mutes_reach_every_device_across_gateways(
    database_url: str, redis_url: str, channel_prefix: str, world: World
) -> None:
    johns = await world.open()
    eves, _ = await store.open_conversation(world.pool, world.eve.id, world.iphone.id)
    async with (
        gateways(2, database_url, redis_url, channel_prefix) as (a, b),
        connect(a, world.john.id) as john,
        connect(b, world.eve.id) as eve,
        connect(b, world.mary.id) as mary,
        connect(a, world.mary.id) as mary_other,
    ):
        offer = {"message_type": "offer", "content": ""}
        eves_offer = await eve.ok(
            "message.send", conversation_id=eves.id, client_msg_id="e1",
            metadata={"amount_cents": 38000, "currency": "EUR"}, **offer,
        )  # fmt: skip
        johns_offer = await john.ok(
            "message.send", conversation_id=johns.id, client_msg_id="j1",
            metadata={"amount_cents": 40000, "currency": "EUR"}, **offer,
        )  # fmt: skip
        # Mary accepts John's on gateway b; Eve (b) hears her offer was declined, John (a)
        # and Mary's other device (a) see the accept and the listing reserved.
        await mary.ok("offer.accept", message_id=johns_offer["message"]["id"])
        for device in (john, mary_other):
            updated = await device.event("message.updated", within=10)
            assert updated["message"]["offer_status"] == "accepted"
            view = await device.event("conversation.updated", within=10)
            assert view["conversation"]["product"]["status"] == "reserved"
        declined = await eve.event("message.updated", within=10)
        assert declined["message"]["id"] == eves_offer["message"]["id"]
        assert declined["message"]["offer_status"] == "declined"
        # A mute on gateway a reaches Mary's device on b, with the total that leaves it out.
        await mary.ok("conversation.read", conversation_id=eves.id, up_to_seq=10)
        await john.ok("message.send", conversation_id=johns.id, client_msg_id="j2", content="hi")
        await mary.event("unread", conversation_id=johns.id, count=2, total=2, within=10)
        await mary_other.ok("conversation.mute", conversation_id=johns.id)
        muted = await mary.event("unread", conversation_id=johns.id, total=0, within=10)
        assert muted["count"] == 2
        # A block on gateway b stops a send on gateway a.
        await mary.ok("user.block", user_id=world.john.id)
        refused = await john.error(
            "message.send", conversation_id=johns.id, client_msg_id="j3", content="hello?"
        )
        assert refused["code"] == "blocked"
        hidden = await mary_other.wait_for(
            lambda f: f.get("type") == "conversation.updated" and f["conversation"]["blocked"],
            within=10,
        )
        assert hidden["conversation"]["id"] == johns.id
    assert await store.recount_counters(world.pool) == []

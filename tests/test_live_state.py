"""What a device shows stays exact across two gateway processes over Redis: badges applied by
version, read state shared by a user's devices, typing ended everywhere, time that follows
seq. Each test starts its own gateways and stops them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from parley import store
from parley.config import Settings
from parley.fanout.hub import envelope, user_channel
from parley.gateway.auth import issue_token
from tests.clients import Client
from tests.conftest import JWT_SECRET
from tests.services import GatewayProcess
from tests.test_scale_out import connect as connect_client
from tests.test_scale_out import gateway_env, gateways
from tests.world import World

Frame = dict[str, Any]
TIMEOUT = 30.0


@dataclass
class Device:
    """A device that keeps its own view, as the protocol tells clients to: a badge applied
    only when its version is newer, counts per conversation likewise, read watermarks from
    its own replies and from message.read events about its user."""

    user_id: int
    connection: ClientConnection
    version: int = 0
    total: int = 0
    counts: dict[int, tuple[int, int]] = field(default_factory=dict)  # id -> (version, count)
    watermarks: dict[int, int] = field(default_factory=dict)
    applied: list[tuple[int, int]] = field(default_factory=list)  # (version, total), in order
    seen: dict[int, int] = field(default_factory=dict)  # every version received -> its total
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    replies: dict[str, asyncio.Future[Frame]] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def read_forever(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.connection:
                self.apply(json.loads(raw))

    def apply(self, frame: Frame) -> None:
        kind = frame["type"]
        if kind in ("ok", "error"):
            future = self.replies.pop(str(frame["id"]), None)
            if future is not None and not future.done():
                future.set_result(frame)
        elif kind == "unread":
            version, total = frame["version"], frame["total"]
            # The same version always means the same moment, whoever published it.
            assert self.seen.setdefault(version, total) == total, (version, total, self.seen)
            if version > self.version:
                self.version, self.total = version, total
                self.applied.append((version, total))
            conversation_id = frame["conversation_id"]
            if version > self.counts.get(conversation_id, (-1, 0))[0]:
                self.counts[conversation_id] = (version, frame["count"])
        elif kind == "message.read" and frame["reader_id"] == self.user_id:
            self.watermark(frame["conversation_id"], frame["up_to_seq"])
        self.changed.set()

    def watermark(self, conversation_id: int, seq: int) -> None:
        self.watermarks[conversation_id] = max(self.watermarks.get(conversation_id, 0), seq)

    async def request(self, frame_type: str, **fields: Any) -> Frame:
        frame_id = str(next(self.ids))
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self.replies[frame_id] = future
        await self.connection.send(json.dumps({"type": frame_type, "id": frame_id, **fields}))
        async with asyncio.timeout(TIMEOUT):
            reply = await future
        assert reply["type"] == "ok", reply
        data: Frame = reply["data"]
        return data

    async def until(self, done: Any) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not done():
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def device(process: GatewayProcess, user_id: int) -> AsyncIterator[Device]:
    async with connect(process.ws_url, proxy=None) as connection:
        token = issue_token(Settings(jwt_secret=JWT_SECRET), user_id)
        await connection.send(json.dumps({"type": "hello", "id": "hello", "token": token}))
        hello = json.loads(await asyncio.wait_for(connection.recv(), TIMEOUT))
        assert hello["type"] == "ok", hello
        live = Device(user_id, connection)
        live.version, live.total = hello["data"]["unread_version"], hello["data"]["unread_total"]
        reader = asyncio.create_task(live.read_forever())
        try:
            yield live
        finally:
            await connection.close()
            await reader


async def buyers_of(world: World, count: int) -> list[int]:
    """``count`` more buyers, each with a conversation about Mary's iPhone."""
    conversations = []
    for n in range(count):
        buyer = await store.upsert_user(world.pool, 801 + n, f"buyer {n}")
        conversation, _ = await store.open_conversation(world.pool, buyer.id, world.iphone.id)
        conversations.append(conversation.id)
    return conversations


async def test_every_device_applies_badges_by_version_and_ends_where_the_database_is(
    database_url: str, redis_url: str, channel_prefix: str, world: World
) -> None:
    conversations = await buyers_of(world, 4)
    mary = world.mary.id
    async with (
        gateways(2, database_url, redis_url, channel_prefix) as (a, b),
        device(a, mary) as phone,
        device(b, mary) as laptop,
        device(a, mary) as tablet,
        contextlib.AsyncExitStack() as stack,
    ):
        senders = [
            await stack.enter_async_context(device((a, b)[n % 2], 801 + n)) for n in range(4)
        ]
        sending = True

        async def send(sender: Device, conversation_id: int) -> None:
            for n in range(100):
                await sender.request(
                    "message.send",
                    conversation_id=conversation_id,
                    client_msg_id=f"{sender.user_id}-{n}",
                    content=f"message {n}",
                )

        async def read_along(reader: Device) -> None:
            # Reads what has arrived so far, in random conversations, while the sends go on.
            rng = random.Random(reader.user_id * 31 + id(reader) % 7)
            while sending:
                conversation_id = rng.choice(conversations)
                view = (await reader.request("conversation.get", conversation_id=conversation_id))[
                    "conversation"
                ]
                receipt = await reader.request(
                    "conversation.read",
                    conversation_id=conversation_id,
                    up_to_seq=rng.randint(0, view["last_seq"]),
                )
                reader.watermark(conversation_id, receipt["up_to_seq"])

        readers = [asyncio.create_task(read_along(d)) for d in (phone, laptop)]
        await asyncio.gather(*(send(s, c) for s, c in zip(senders, conversations, strict=True)))
        sending = False
        await asyncio.gather(*readers)

        assert await store.recount_counters(world.pool) == []
        total, version = await store.badge_of(world.pool, mary)
        counts = {
            c: (await store.get_conversation(world.pool, c, mary)).unread_count
            for c in conversations
        }
        watermarks = {
            c: (await store.get_conversation(world.pool, c, mary)).last_read_seq
            for c in conversations
        }
        for live in (phone, laptop, tablet):
            await live.until(lambda live=live: live.version == version)
            assert live.total == total, "the badge equals the recount"
            versions = [v for v, _ in live.applied]
            assert versions == sorted(set(versions)), "applied versions only grow"
            shown = {c: live.counts[c][1] for c in conversations if c in live.counts}
            assert shown == {c: n for c, n in counts.items() if c in shown}
            await live.until(
                lambda live=live: all(
                    live.watermarks.get(c, 0) == seq for c, seq in watermarks.items()
                )
            )


async def publish_marker(redis_url: str, prefix: str, user_id: int, marker: int) -> None:
    """A frame on the user's channel, straight into Redis: once a socket of the user gets
    it, that socket's gateway has handled everything published on the channel before."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        payload = envelope("", json.dumps({"type": "test.marker", "n": marker}).encode())
        await client.publish(prefix + user_channel(user_id), payload)
    finally:
        await client.aclose()


def before_or_with(client: Client, first: Frame, then_type: str) -> bool:
    received = client.received
    return received.index(first) < next(i for i, f in enumerate(received) if f["type"] == then_type)


async def test_typing_on_one_gateway_ends_when_the_message_goes_through_another(
    database_url: str, redis_url: str, channel_prefix: str, world: World
) -> None:
    conversation = await world.open()
    mary = world.mary.id
    async with (
        gateways(2, database_url, redis_url, channel_prefix) as (a, b),
        connect_client(a, mary) as mary_on_a,
        connect_client(b, mary) as mary_on_b,
        connect_client(b, world.john.id) as john,
    ):
        await mary_on_a.ok("typing", conversation_id=conversation.id, state="start")
        await john.event("typing", state="start", user_id=mary)
        await publish_marker(redis_url, channel_prefix, mary, 1)
        await mary_on_b.event("test.marker", n=1)

        await mary_on_b.ok(
            "message.send", conversation_id=conversation.id, client_msg_id="m1", content="Yes"
        )
        stop = await john.event("typing", state="stop", user_id=mary)
        await john.event("message.new")
        assert before_or_with(john, stop, "message.new")

        # A stop sent through the other gateway ends it too, and so does a disconnect.
        await publish_marker(redis_url, channel_prefix, mary, 2)
        await mary_on_a.event("test.marker", n=2)  # gateway A has heard that it ended
        await mary_on_a.ok("typing", conversation_id=conversation.id, state="start")
        await john.event("typing", state="start", user_id=mary)
        await publish_marker(redis_url, channel_prefix, mary, 3)
        await mary_on_b.event("test.marker", n=3)
        await mary_on_b.ok("typing", conversation_id=conversation.id, state="stop")
        await john.event("typing", state="stop", user_id=mary)

        await publish_marker(redis_url, channel_prefix, mary, 4)
        await mary_on_a.event("test.marker", n=4)
        await mary_on_a.ok("typing", conversation_id=conversation.id, state="start")
        await john.event("typing", state="start", user_id=mary)
        await mary_on_a.close()
        await john.event("typing", state="stop", user_id=mary)


async def test_a_thousand_concurrent_sends_over_two_gateways_keep_time_in_seq_order(
    database_url: str, redis_url: str, channel_prefix: str, world: World
) -> None:
    conversations = await buyers_of(world, 5)
    async with (
        gateways(2, database_url, redis_url, channel_prefix) as (a, b),
        contextlib.AsyncExitStack() as stack,
    ):
        # Each conversation written from both sides, through both gateways at once.
        sides = []
        for n, conversation_id in enumerate(conversations):
            for user_id, process in ((801 + n, a), (801 + n, b), (world.mary.id, (b, a)[n % 2])):
                live = await stack.enter_async_context(device(process, user_id))
                sides.append((live, conversation_id))

        async def send(live: Device, conversation_id: int, count: int) -> None:
            for n in range(count):
                await live.request(
                    "message.send",
                    conversation_id=conversation_id,
                    client_msg_id=f"{conversation_id}-{id(live)}-{n}",
                    content=f"{n}",
                )

        per_socket, rest = divmod(1000, len(sides))
        await asyncio.gather(
            *(send(live, c, per_socket + (i < rest)) for i, (live, c) in enumerate(sides))
        )
        inbox = await sides[2][0].request("conversation.list", limit=20)

    rows = await world.pool.fetch(
        "SELECT conversation_id, seq, created_at, id FROM messages ORDER BY conversation_id, seq"
    )
    assert len(rows) == 1000
    for conversation_id, messages in itertools.groupby(rows, key=lambda r: r["conversation_id"]):
        times = [m["created_at"] for m in messages]
        assert times == sorted(times), f"time went backwards in conversation {conversation_id}"
    last = await world.pool.fetch(
        """
        SELECT DISTINCT ON (m.conversation_id) m.conversation_id, m.created_at, c.last_message_at
          FROM messages m JOIN conversations c ON c.id = m.conversation_id
         ORDER BY m.conversation_id, m.seq DESC
        """
    )
    assert all(r["created_at"] == r["last_message_at"] for r in last)
    by_last_message = sorted(last, key=lambda r: (r["created_at"], r["conversation_id"]))
    listed = [c["id"] for c in inbox["conversations"]]
    assert listed == [r["conversation_id"] for r in reversed(by_last_message)]
    assert await store.recount_counters(world.pool) == []


async def test_a_notice_reaches_only_the_sides_it_shows_for(
    database_url: str, redis_url: str, channel_prefix: str, world: World
) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "hello")
    await store.delete_for(world.pool, world.mary.id, conversation.id)
    env = gateway_env(database_url, redis_url, channel_prefix) | {"PARLEY_SERVICE_TOKEN": "t"}
    process = GatewayProcess("gateway", env)
    await process.start()
    try:
        async with (
            connect_client(process, world.mary.id) as mary,
            connect_client(process, world.john.id) as john,
            httpx.AsyncClient(
                base_url=process.http_url, headers={"authorization": "Bearer t"}
            ) as backend,
        ):
            posted = await backend.post(
                f"/internal/conversations/{conversation.id}/messages",
                json={"client_msg_id": "n1", "content": "Price dropped"},
            )
            assert posted.status_code == 201
            await john.event("message.new")
            await publish_marker(redis_url, channel_prefix, world.mary.id, 1)
            await mary.event("test.marker", n=1)
            assert mary.pending("message.new") == [], "the notice leaves it hidden for Mary"
    finally:
        await process.stop()

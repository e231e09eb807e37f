"""Brokers: the interface is enough for a custom backend, and Redis behaves as the hub needs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from parley.fanout.broker import Broker, Envelope, MemoryBroker, broker_from_url
from parley.fanout.broker.cluster import ClusterBroker, node_url
from parley.fanout.broker.redis import RedisBroker
from parley.fanout.events import Events
from parley.fanout.hub import Hub, user_channel


class Recorder:
    def __init__(self, user_id: int) -> None:
        self.connection_id = f"c{user_id}"
        self.user_id = user_id
        self.frames: asyncio.Queue[str] = asyncio.Queue()

    def push(self, frame: str) -> None:
        self.frames.put_nowait(frame)

    def close_soon(self, code: int, reason: str) -> None:
        raise AssertionError(f"closed with {code}: {reason}")


class ListBroker(Broker):
    """A backend written against the interface alone: proof that it is enough."""

    def __init__(self) -> None:
        self.channels: set[str] = set()
        self.inbox: asyncio.Queue[Envelope] = asyncio.Queue()
        self.log: list[str] = []

    async def connect(self) -> None:
        self.log.append("connect")

    async def disconnect(self) -> None:
        self.log.append("disconnect")

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)

    async def publish(self, channel: str, payload: bytes) -> None:
        if channel in self.channels:
            await self.inbox.put(Envelope(channel, payload))

    async def next_published(self) -> Envelope:
        return await self.inbox.get()


@pytest.mark.parametrize("backend", [ListBroker, MemoryBroker])
async def test_the_hub_runs_on_any_backend_of_the_interface(backend: type[Broker]) -> None:
    broker = backend()
    hub, events = Hub(broker), Events(broker)
    await hub.start()
    try:
        mary, john = Recorder(702), Recorder(701)
        await hub.add(mary, limit=10)
        await hub.add(john, limit=10)
        await events.publish([702], b'{"type":"unread","total":1}')
        await events.publish([701, 702], b'{"type":"message.new"}', skip="c701")
        assert await asyncio.wait_for(mary.frames.get(), 5) == '{"type":"unread","total":1}'
        assert await asyncio.wait_for(mary.frames.get(), 5) == '{"type":"message.new"}'
        await hub.remove(john)
        await events.publish([701], b'{"type":"message.new"}')
        await events.publish([702], b'{"type":"marker"}')
        assert await asyncio.wait_for(mary.frames.get(), 5) == '{"type":"marker"}'
        assert john.frames.empty(), "skipped once, then gone"
    finally:
        await hub.stop()


def test_backends_are_chosen_by_url() -> None:
    assert isinstance(broker_from_url("memory://"), MemoryBroker)
    assert isinstance(broker_from_url("redis://127.0.0.1:6379/0"), RedisBroker)
    assert isinstance(broker_from_url("redis+cluster://127.0.0.1:7000"), ClusterBroker)
    with pytest.raises(ValueError, match="only database 0"):
        broker_from_url("redis+cluster://127.0.0.1:7000/3")
    with pytest.raises(ValueError, match="memory://, redis://"):
        broker_from_url("kafka://somewhere")


@pytest.fixture
async def redis_hub(broker_url: str, channel_prefix: str) -> AsyncIterator[Hub]:
    broker = broker_from_url(broker_url, channel_prefix)
    assert isinstance(broker, RedisBroker)
    hub = Hub(broker)
    await hub.start()
    async with asyncio.timeout(10):
        await broker.subscriber_up.wait()
    try:
        yield hub
    finally:
        await hub.stop()


async def numsub(url: str, channel: str) -> int:
    """Subscribers of ``channel``: PUBSUB NUMSUB, or SHARDNUMSUB on the shard that owns it."""
    if url.startswith("redis+cluster://"):
        cluster = RedisCluster.from_url(node_url(url))
        try:
            await cluster.initialize()
            node = cluster.get_node_from_key(channel)
            [(_, count)] = await cluster.execute_command(
                "PUBSUB SHARDNUMSUB", channel, target_nodes=node
            )
            return int(count)
        finally:
            await cluster.aclose()
    client = aioredis.Redis.from_url(url)
    try:
        [(_, count)] = await client.pubsub_numsub(channel)
        return int(count)
    finally:
        await client.aclose()


async def until_confirmed(broker: RedisBroker, count: int) -> None:
    async with asyncio.timeout(5):
        while broker.confirmed_subscriptions != count:
            await broker.confirmed()


async def test_one_channel_per_connected_user_and_none_left_behind(
    redis_hub: Hub, broker_url: str, channel_prefix: str
) -> None:
    broker = redis_hub.broker
    assert isinstance(broker, RedisBroker)
    # One Redis: the subscriber's own channel, which keeps it connected. A cluster: none, a
    # shard's connection is opened for the first channel it owns.
    control = 0 if isinstance(broker, ClusterBroker) else 1
    await until_confirmed(broker, control)
    phones = [Recorder(n) for n in range(1, 21)]
    tablets = [Recorder(n) for n in range(1, 21)]
    for socket in phones + tablets:
        socket.connection_id += f"-{id(socket)}"
        await redis_hub.add(socket, limit=10)
    await until_confirmed(broker, control + 20)
    assert await numsub(broker_url, channel_prefix + user_channel(7)) == 1

    for socket in phones:
        await redis_hub.remove(socket)
    assert broker.confirmed_subscriptions == control + 20, "tablets still hold every user"
    for socket in tablets:
        await redis_hub.remove(socket)
    await until_confirmed(broker, control)
    assert await numsub(broker_url, channel_prefix + user_channel(7)) == 0


@pytest.fixture
async def mary_on_b(
    broker_url: str, channel_prefix: str
) -> AsyncIterator[tuple[RedisBroker, Recorder]]:
    """Two processes' worth of hubs: Mary's socket on the second, subscribed and confirmed;
    the first's broker, to publish from."""
    a = Hub(broker_from_url(broker_url, channel_prefix))
    b = Hub(broker_from_url(broker_url, channel_prefix))
    for hub in (a, b):
        await hub.start()
    try:
        mary = Recorder(702)
        await b.add(mary, limit=10)
        broker_a, broker_b = a.broker, b.broker
        assert isinstance(broker_a, RedisBroker)
        assert isinstance(broker_b, RedisBroker)
        await until_confirmed(broker_b, 1 if isinstance(broker_b, ClusterBroker) else 2)
        yield broker_a, mary
    finally:
        for hub in (a, b):
            await hub.stop()


async def test_publishes_between_two_processes_worth_of_hubs(
    mary_on_b: tuple[RedisBroker, Recorder],
) -> None:
    broker_a, mary = mary_on_b
    events_a = Events(broker_a)
    for n in range(200):
        await events_a.publish([702], f'{{"n":{n}}}'.encode())
    received = [await asyncio.wait_for(mary.frames.get(), 5) for _ in range(200)]
    assert received == [f'{{"n":{n}}}' for n in range(200)], "in order, none lost"
    assert broker_a.stats.published == 200


async def test_the_publisher_outlives_an_unexpected_error(
    mary_on_b: tuple[RedisBroker, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send that fails in a way nobody foresaw (a cluster's topology error is no
    RedisError) drops its batch, counted, and the next publish goes out, behind the gap
    that tells the user's devices to sync."""
    broker_a, mary = mary_on_b
    send = broker_a._send

    async def fails_once(batch: list[tuple[str, bytes]]) -> int:
        monkeypatch.setattr(broker_a, "_send", send)
        raise RuntimeError("unforeseen")

    monkeypatch.setattr(broker_a, "_send", fails_once)
    await Events(broker_a).publish([702], b'{"n":1}')
    await Events(broker_a).publish([702], b'{"n":2}')
    # The dropped event's gap first, then what came after it.
    first = await asyncio.wait_for(mary.frames.get(), 5)
    assert json.loads(first)["type"] == "resync"
    assert await asyncio.wait_for(mary.frames.get(), 5) == '{"n":2}'
    assert broker_a.stats.publish_failures == 1

"""redis+cluster:// - pub/sub between gateway processes through a Redis Cluster, sharded.

A user's channel lives on the shard that owns its hash slot (sharded pub/sub, Redis 7+:
SSUBSCRIBE and SPUBLISH). A publish goes to that one shard, where a plain PUBLISH in a
cluster is copied to every node, so each shard added adds publish capacity. A gateway holds
one subscriber connection per shard that owns a channel of a user connected to it.

Publishing, its batching and its ok-after-the-answer are RedisBroker's (redis.py); only the
command and the routing differ (the cluster client's pipeline sends each shard its part, the
shards in parallel). Subscribing is per shard. When a shard's connection is lost (its master
died) or Redis tells us a slot moved away (an unasked SUNSUBSCRIBE: a failover or a
resharding), the subscriptions are rebuilt from scratch on the topology as it is then, and
connected clients are told to resync: whatever was published meanwhile is in Postgres.

redis-py's own ClusterPubSub (8.2) polls its shards in turn with a timeout and repairs a
failover quietly; a gateway needs to read each shard as soon as it sends, and to know when
it may have missed something. So the connections here are plain per-shard PubSubs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from parley.fanout.broker.base import Envelope
from parley.fanout.broker.redis import REDIS_DOWN, RedisBroker

log = logging.getLogger(__name__)

SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def node_url(url: str, host: str | None = None, port: int | None = None) -> str:
    """``url`` (redis+cluster://…) as a plain redis:// URL, for the seed or for another node:
    credentials, TLS and options carry over; a cluster has only database 0."""
    parts = urlsplit(url)
    if parts.path not in ("", "/", "/0"):
        raise ValueError("a Redis Cluster has only database 0: drop the path of the URL")
    netloc = parts.netloc
    if host is not None:
        credentials = netloc.rpartition("@")[0]
        netloc = f"{credentials}@" if credentials else ""
        netloc += f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return urlunsplit((SCHEMES.get(parts.scheme, parts.scheme), netloc, "", parts.query, ""))


class SlotMoved(ConnectionError):
    """Redis ended a subscription we did not end: the slot left that shard."""


class ClusterBroker(RedisBroker):
    def __init__(self, url: str, prefix: str = "parley:") -> None:
        node_url(url)  # refuses a database other than 0 before anything starts
        super().__init__(url, prefix)
        self._shards: dict[str, PubSub] = {}  # node name -> its subscriber connection
        self._shard_clients: list[aioredis.Redis] = []
        self._readers: set[asyncio.Task[None]] = set()
        self._reading: set[str] = set()  # nodes whose reader runs
        self._lost: asyncio.Future[None] | None = None
        self._counts: dict[str, int] = {}  # node name -> Redis's count of our subscriptions
        self._unsubscribing: Counter[str] = Counter()
        self._publishers: dict[str, aioredis.Redis] = {}  # node name -> its publishing client
        self._stale_topology = False

    def _new_client(self, url: str) -> Any:
        return RedisCluster.from_url(
            node_url(url),
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=2,
            socket_timeout=2,
            socket_keepalive=True,
        )

    async def _send(self, batch: list[tuple[str, bytes]]) -> int:
        """SPUBLISH each message on its channel's shard: a pipeline per shard, the shards in
        parallel, each channel's messages in order. A shard that fails (its master died, or
        a slot moved: MOVED) drops only its own part, and the topology is read again before
        the next batch; raises only when every shard failed."""
        if self._stale_topology:
            await self._client.nodes_manager.initialize()
            self._stale_topology = False
        parts: dict[str, tuple[ClusterNode, list[tuple[str, bytes]]]] = {}
        for channel, payload in batch:
            node = self._client.get_node_from_key(self._prefix + channel)
            parts.setdefault(node.name, (node, []))[1].append((channel, payload))
        outcomes = await asyncio.gather(
            *(self._send_to(node, part) for node, part in parts.values()),
            return_exceptions=True,
        )
        failures = [
            (part, outcome)
            for (_, part), outcome in zip(parts.values(), outcomes, strict=True)
            if isinstance(outcome, BaseException)
        ]
        if not failures:
            return 0
        self._stale_topology = True
        if len(failures) == len(parts):
            raise failures[0][1]
        for part, error in failures:
            self._fail(part, repr(error))
        return sum(len(part) for part, _ in failures)

    async def _send_to(self, node: ClusterNode, part: list[tuple[str, bytes]]) -> None:
        async with self._node_client(node).pipeline(transaction=False) as pipe:
            for channel, payload in part:
                pipe.spublish(self._prefix + channel, payload)
            await pipe.execute()

    def _node_client(self, node: ClusterNode) -> aioredis.Redis:
        client = self._publishers.get(node.name)
        if client is None:
            client = self._publishers[node.name] = self._plain_client(node)
        return client

    def _plain_client(self, node: ClusterNode) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            node_url(self._url, node.host, int(node.port)),
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=2,
            socket_keepalive=True,
            health_check_interval=15,
        )

    async def disconnect(self) -> None:
        await super().disconnect()
        for client in self._publishers.values():
            await client.aclose()

    # --- subscribing -------------------------------------------------------------------------

    async def _open_subscriptions(self) -> None:
        """Learn the topology afresh, then subscribe every channel on its slot's master."""
        self._lost = asyncio.get_running_loop().create_future()
        await self._client.initialize()
        await self._client.nodes_manager.initialize()
        for channel in list(self._channels):
            key = self._prefix + channel
            await self._shard(self._client.get_node_from_key(key)).ssubscribe(key)
        for name, pubsub in list(self._shards.items()):
            await self._in_effect(pubsub, name)
            self._start_reader(name, pubsub)

    async def _listen(self) -> None:
        """Wait until a shard's connection is lost or a slot moves: rebuild everything."""
        assert self._lost is not None
        await self._lost

    async def _close_subscriptions(self) -> None:
        readers, self._readers = self._readers, set()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        shards, self._shards = self._shards, {}
        clients, self._shard_clients = self._shard_clients, []
        for pubsub in shards.values():
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()
        self._reading.clear()
        self._counts.clear()
        self._unsubscribing.clear()

    async def _ssubscribe(self, node: ClusterNode, key: str) -> None:
        """Subscribe ``key`` on its shard; the shard's first subscription starts its reader
        (redis-py's PubSub has no connection to read until it has subscribed)."""
        pubsub = self._shard(node)
        await pubsub.ssubscribe(key)
        self._start_reader(node.name, pubsub)

    def _start_reader(self, name: str, pubsub: PubSub) -> None:
        if name not in self._reading:
            self._reading.add(name)
            task = asyncio.create_task(self._read(name, pubsub), name=f"shard-{name}")
            self._readers.add(task)
            task.add_done_callback(self._readers.discard)

    def _shard(self, node: ClusterNode) -> PubSub:
        """The subscriber connection to ``node``, made on first use."""
        pubsub = self._shards.get(node.name)
        if pubsub is None:
            client = self._plain_client(node)
            self._shard_clients.append(client)
            pubsub = self._shards[node.name] = client.pubsub()
        return pubsub

    async def _send_subscription(self, command: str, channel: str) -> None:
        if not self.subscriber_up.is_set():
            return  # the rebuild subscribes self._channels
        key = self._prefix + channel
        try:
            node = self._client.get_node_from_key(key)
            if command == "subscribe":
                await self._ssubscribe(node, key)
            else:
                self._unsubscribing[key] += 1
                await self._shard(node).sunsubscribe(key)
        except REDIS_DOWN as error:
            self._lose(error)

    def _lose(self, error: BaseException) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_exception(error)

    async def _read(self, name: str, pubsub: PubSub) -> None:
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is not None:
                    self._handle(message, name)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._lose(error)

    def _handle(self, message: dict[str, Any], shard: str) -> bytes | None:
        kind = message["type"]
        if kind == "smessage":
            self.stats.received += 1
            channel = message["channel"].decode()[len(self._prefix) :]
            self._received.put_nowait(Envelope(channel, message["data"]))
        elif kind in ("ssubscribe", "sunsubscribe"):
            key = message["channel"].decode()
            if kind == "sunsubscribe":
                if self._unsubscribing[key] > 0:
                    self._unsubscribing[key] -= 1
                elif key[len(self._prefix) :] in self._channels:
                    raise SlotMoved(f"Redis ended the subscription of {key} on {shard}")
            self._confirm(shard, int(message["data"]))
        elif kind == "pong":
            return bytes(message["data"])
        return None

    def _confirm(self, shard: str, count: int) -> None:
        self._counts[shard] = count
        super()._confirm(shard, sum(self._counts.values()))

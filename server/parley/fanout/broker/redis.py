"""redis:// - pub/sub between gateway processes through Redis.

One subscriber connection per process, carrying a channel per locally connected user.
Publishes are batched: whatever piles up while one pipeline is in flight goes out in the
next, one round trip for many messages. Redis is only the fast path: while it is down,
publishes are dropped and counted, and once it is back the backend reports a gap so the
hub tells clients to `sync` from Postgres.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from parley import metrics
from parley.fanout.broker.base import GAP_ALL, Broker, Envelope
from parley.logs import masked_url

log = logging.getLogger(__name__)

# Redis (or a cluster's topology: RedisClusterException is no RedisError) cannot serve us.
REDIS_DOWN = (RedisError, RedisClusterException, OSError, TimeoutError)
_MAX_PENDING = 100_000
_MAX_FAILED_CHANNELS = 10_000
# How long a publish waits for Redis's answer before the reply goes out anyway.
PUBLISH_WAIT_SECONDS = 1.0
# How long Redis may take to carry out a reconnect's subscriptions before it is tried again.
SUBSCRIBE_TIMEOUT_SECONDS = 10.0
# How long one batch may take to send before it counts as failed, and the next goes.
SEND_TIMEOUT_SECONDS = 5.0


@dataclass
class BrokerStats:
    published: int = 0
    publish_failures: int = 0
    received: int = 0
    reconnects: int = 0


class RedisBroker(Broker):
    def __init__(self, url: str, prefix: str = "parley:") -> None:
        self._url = url
        self._name = masked_url(url)
        self._state = "connecting"
        self._prefix = prefix
        self._control = f"{prefix}ctl:{secrets.token_hex(6)}"  # keeps the subscriber connected
        self._channels: set[str] = set()
        self._received: asyncio.Queue[Envelope] = asyncio.Queue()
        self._pending: list[tuple[str, bytes]] = []
        # Resolved once Redis answers the pipeline that carries what is pending now.
        self._answered: asyncio.Future[None] | None = None  # made by connect()
        self._publishes_failing = False
        self._wake = asyncio.Event()
        self._failed_channels: set[str] = set()
        self._pubsub: PubSub | None = None
        self._opening: PubSub | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = BrokerStats()
        self.subscriber_up = asyncio.Event()
        # Redis's own count of this connection's subscriptions, from its confirmations.
        self.confirmed_subscriptions = 0
        self._confirmation = asyncio.Event()
        self._client = self._new_client(url)

    def _new_client(self, url: str) -> Any:
        # Fail fast and let the loops below decide when to try again.
        return aioredis.Redis.from_url(
            url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=2,
            socket_keepalive=True,
            health_check_interval=15,
        )

    async def connect(self) -> None:
        self._answered = asyncio.get_running_loop().create_future()
        self._tasks = [
            asyncio.create_task(self._subscriber_loop(), name="redis-subscriber"),
            asyncio.create_task(self._publisher_loop(), name="redis-publisher"),
        ]

    async def disconnect(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        await self._send_subscription("subscribe", channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        await self._send_subscription("unsubscribe", channel)

    async def _send_subscription(self, command: str, channel: str) -> None:
        pubsub = self._pubsub
        if pubsub is None:
            return  # the subscriber loop subscribes self._channels when it reconnects
        try:
            await getattr(pubsub, command)(self._prefix + channel)
        except REDIS_DOWN as error:
            log.warning(
                "redis %s %s failed (%r); the reconnect will redo it", command, channel, error
            )

    async def publish(self, channel: str, payload: bytes) -> None:
        await self.publish_many([(channel, payload)])

    async def publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        """Return once Redis has answered the PUBLISHes (they went out in a pipeline with
        whatever else was waiting), so that a reply sent after this means "handed over".
        While Redis is known to be down, or slower than PUBLISH_WAIT_SECONDS, return at once:
        the messages are dropped (or still queued), and clients get resync when it is back."""
        if len(self._pending) + len(messages) > _MAX_PENDING:
            self._fail(messages, "publish queue full")
            return
        self._pending.extend(messages)
        self._wake.set()
        answered = self._answered
        if self._publishes_failing or answered is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(answered), PUBLISH_WAIT_SECONDS)

    async def next_published(self) -> Envelope:
        return await self._received.get()

    # --- loops -----------------------------------------------------------------------------

    async def _publisher_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            answered, self._answered = self._answered, asyncio.get_running_loop().create_future()
            assert answered is not None  # the loop runs after connect()
            # A channel whose events were dropped gets its gap (an empty payload) ahead of
            # anything new on it: no device gets a live event before it is told to sync.
            gaps = [(channel, b"") for channel in self._failed_channels]
            self._failed_channels = set()
            batch = gaps + batch
            if not batch:
                answered.set_result(None)
                continue
            try:
                async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                    dropped = await self._send(batch)
            except Exception as error:
                # Dropped and counted, and the loop goes on: a loop that died or hung here
                # would leave every later publish queued, unsent and unreported.
                if not isinstance(error, REDIS_DOWN) or isinstance(error, TimeoutError):
                    log.exception("redis broker %s: a publish failed", self._name)
                self._publishes_failing = True
                self._fail(batch, repr(error))
                continue
            finally:
                # Whoever waits on this batch goes on: answered, or dropped and counted.
                if not answered.done():
                    answered.set_result(None)
            self._publishes_failing = False
            self.stats.published += len(batch) - dropped

    async def _send(self, batch: list[tuple[str, bytes]]) -> int:
        """PUBLISH each message, in one pipeline: one round trip for the batch. Raises when
        Redis cannot be reached; returns how many messages it dropped (and _failed) itself."""
        async with self._client.pipeline(transaction=False) as pipe:
            for channel, payload in batch:
                pipe.publish(self._prefix + channel, payload)
            await pipe.execute()
        return 0

    def _fail(self, batch: list[tuple[str, bytes]], reason: str) -> None:
        self.stats.publish_failures += len(batch)
        metrics.BROKER_PUBLISH_FAILURES.inc(len(batch))
        if len(self._failed_channels) < _MAX_FAILED_CHANNELS:
            self._failed_channels.update(channel for channel, _ in batch)
        # Each drop is counted; while the subscriber says the broker is away, that line is enough.
        level = logging.DEBUG if not self.subscriber_up.is_set() else logging.WARNING
        log.log(level, "redis broker %s: dropped %d publishes: %s", self._name, len(batch), reason)

    def status(self) -> str:
        if self.subscriber_up.is_set():
            return "ok"
        return f"{self._state}: {masked_url(self._url)}"

    async def _subscriber_loop(self) -> None:
        backoff, connected_before, failed_since_up = 0.1, False, False
        while True:
            try:
                await self._open_subscriptions()
                self._up()
                if connected_before:
                    self.stats.reconnects += 1
                    metrics.BROKER_RECONNECTS.inc()
                    log.warning("redis broker %s reconnected; asking clients to sync", self._name)
                elif failed_since_up:
                    log.warning("redis broker %s connected; asking clients to sync", self._name)
                else:
                    log.info("redis broker %s connected", self._name)
                if failed_since_up:
                    # Whatever happened while it was away, no device heard of it live.
                    self._received.put_nowait(Envelope(GAP_ALL, b""))
                connected_before, failed_since_up, backoff = True, False, 0.1
                await self._listen()
            except asyncio.CancelledError:
                raise
            except REDIS_DOWN as error:
                self._down(error, connected_before, failed_since_up, backoff)
                failed_since_up = True
            except Exception:
                log.exception("redis broker %s failed; retrying in %.1f s", self._name, backoff)
                failed_since_up = True
            finally:
                self.subscriber_up.clear()
                metrics.BROKER_UP.set(0)
                await self._close_subscriptions()
            await asyncio.sleep(backoff * (1 + random.random() / 2))
            backoff = min(backoff * 2, 5.0)

    async def _open_subscriptions(self) -> None:
        """Connect the subscriber and subscribe every channel; raises if Redis is away."""
        pubsub = self._opening = self._client.pubsub()
        await pubsub.subscribe(self._control)
        self._pubsub = pubsub  # from now on, subscribe() sends directly
        if self._channels:
            await pubsub.subscribe(*(self._prefix + c for c in list(self._channels)))
        await self._in_effect(pubsub)

    async def _listen(self) -> None:
        """Hand on what arrives until the subscriber's connection fails (it raises)."""
        assert self._pubsub is not None
        await self._receive(self._pubsub)

    async def _close_subscriptions(self) -> None:
        self._pubsub = None
        if self._opening is not None:
            with contextlib.suppress(Exception):
                await self._opening.aclose()
            self._opening = None

    def _up(self) -> None:
        self.subscriber_up.set()
        metrics.BROKER_UP.set(1)
        if self._failed_channels:
            self._wake.set()  # Redis answers again: the gaps go out without waiting for traffic

    def _down(
        self, error: BaseException, connected_before: bool, failed_since_up: bool, backoff: float
    ) -> None:
        """One line when a state begins; the retries that follow it only at debug level."""
        self._state = "unreachable"
        if failed_since_up:
            log.debug("redis broker %s still unreachable (%r)", self._name, error)
        elif connected_before:
            log.warning(
                "redis broker %s lost (%r); live delivery is off, retrying with backoff",
                self._name,
                error,
            )
        else:
            log.error(
                "redis broker %s unreachable (%r); live delivery is off until it answers, "
                "retrying with backoff (first retry in %.1f s)",
                self._name,
                error,
                backoff,
            )

    async def confirmed(self) -> None:
        """Wait for Redis's next subscribe/unsubscribe confirmation (tests, diagnostics)."""
        await self._confirmation.wait()

    async def _receive(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None:
                self._handle(message, "")

    def _handle(self, message: dict[str, Any], shard: str) -> bytes | None:
        """Hand on a message, or count a confirmation; a PING's answer returns its payload."""
        kind = message["type"]
        if kind == "message":
            channel = message["channel"].decode()[len(self._prefix) :]
            self.stats.received += 1
            self._received.put_nowait(Envelope(channel, message["data"]))
        elif kind in ("subscribe", "unsubscribe"):
            self._confirm(shard, int(message["data"]))
        elif kind == "pong":
            return bytes(message["data"])
        return None

    def _confirm(self, shard: str, count: int) -> None:
        self.confirmed_subscriptions = count
        self._confirmation.set()
        self._confirmation = asyncio.Event()

    async def _in_effect(self, pubsub: PubSub, shard: str = "") -> None:
        """Return once Redis has carried out every subscription sent on ``pubsub`` so far: a
        PING sent behind them is answered after them. A publish before that could still miss
        them, so the broker is not up, and clients are not told to sync, until then."""
        token = secrets.token_hex(8).encode()
        await pubsub.ping(token)
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT_SECONDS):
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is not None and self._handle(message, shard) == token:
                    return

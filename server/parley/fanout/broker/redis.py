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

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from parley import metrics
from parley.fanout.broker.base import GAP_ALL, Broker, Envelope
from parley.logs import masked_url

log = logging.getLogger(__name__)

_DOWN = (RedisError, OSError, TimeoutError)
_MAX_PENDING = 100_000
_MAX_FAILED_CHANNELS = 10_000
# How long a publish waits for Redis's answer before the reply goes out anyway.
PUBLISH_WAIT_SECONDS = 1.0


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
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = BrokerStats()
        self.subscriber_up = asyncio.Event()
        # Redis's own count of this connection's subscriptions, from its confirmations.
        self.confirmed_subscriptions = 0
        self._confirmation = asyncio.Event()
        # Fail fast and let the loops below decide when to try again.
        self._client = aioredis.Redis.from_url(
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
        except _DOWN as error:
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
            if not batch:
                answered.set_result(None)
                continue
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for channel, payload in batch:
                        pipe.publish(self._prefix + channel, payload)
                    await pipe.execute()
            except _DOWN as error:
                self._publishes_failing = True
                self._fail(batch, repr(error))
                continue
            finally:
                # Whoever waits on this batch goes on: answered, or dropped and counted.
                if not answered.done():
                    answered.set_result(None)
            self._publishes_failing = False
            self.stats.published += len(batch)
            if self._failed_channels:
                await self._announce_gaps()

    def _fail(self, batch: list[tuple[str, bytes]], reason: str) -> None:
        self.stats.publish_failures += len(batch)
        metrics.BROKER_PUBLISH_FAILURES.inc(len(batch))
        if len(self._failed_channels) < _MAX_FAILED_CHANNELS:
            self._failed_channels.update(channel for channel, _ in batch)
        # Each drop is counted; while the subscriber says the broker is away, that line is enough.
        level = logging.DEBUG if not self.subscriber_up.is_set() else logging.WARNING
        log.log(level, "redis broker %s: dropped %d publishes: %s", self._name, len(batch), reason)

    async def _announce_gaps(self) -> None:
        """Tell every gateway holding a user whose events we dropped: an empty payload."""
        channels, self._failed_channels = self._failed_channels, set()
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for channel in channels:
                    pipe.publish(self._prefix + channel, b"")
                await pipe.execute()
        except _DOWN:
            self._failed_channels |= channels

    def status(self) -> str:
        if self.subscriber_up.is_set():
            return "ok"
        return f"{self._state}: {masked_url(self._url)}"

    async def _subscriber_loop(self) -> None:
        backoff, connected_before, failed_since_up = 0.1, False, False
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._control)
                self._pubsub = pubsub  # from now on, subscribe() sends directly
                if self._channels:
                    await pubsub.subscribe(*(self._prefix + c for c in list(self._channels)))
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
                await self._receive(pubsub)
            except asyncio.CancelledError:
                raise
            except _DOWN as error:
                self._down(error, connected_before, failed_since_up, backoff)
                failed_since_up = True
            except Exception:
                log.exception("redis broker %s failed; retrying in %.1f s", self._name, backoff)
                failed_since_up = True
            finally:
                self._pubsub = None
                self.subscriber_up.clear()
                metrics.BROKER_UP.set(0)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(backoff * (1 + random.random() / 2))
            backoff = min(backoff * 2, 5.0)

    def _up(self) -> None:
        self.subscriber_up.set()
        metrics.BROKER_UP.set(1)

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
        prefix_length = len(self._prefix)
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            if message["type"] == "message":
                channel = message["channel"].decode()[prefix_length:]
                self.stats.received += 1
                self._received.put_nowait(Envelope(channel, message["data"]))
            elif message["type"] in ("subscribe", "unsubscribe"):
                self.confirmed_subscriptions = int(message["data"])
                self._confirmation.set()
                self._confirmation = asyncio.Event()

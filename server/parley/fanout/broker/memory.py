"""memory:// - a broker inside one process, for running Parley without Redis."""

from __future__ import annotations

import asyncio

from parley import metrics
from parley.fanout.broker.base import Broker, Envelope


class MemoryBroker(Broker):
    def __init__(self, url: str = "memory://") -> None:
        self._channels: set[str] = set()
        self._queue: asyncio.Queue[Envelope] = asyncio.Queue()

    async def connect(self) -> None:
        metrics.BROKER_UP.set(1)

    async def disconnect(self) -> None:
        self._channels.clear()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def publish(self, channel: str, payload: bytes) -> None:
        if channel in self._channels:
            self._queue.put_nowait(Envelope(channel, payload))

    async def next_published(self) -> Envelope:
        return await self._queue.get()

"""EventStream: one reader's queue of the client's events, from when it was made."""

from __future__ import annotations

import asyncio

from parley_client.events import Event


class EventStream:
    """The events from the moment it was made, until the client closes."""

    def __init__(self, streams: set[asyncio.Queue[Event | None]]) -> None:
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._streams = streams
        streams.add(self._queue)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        event = await self._queue.get()
        if event is None:
            self._streams.discard(self._queue)
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        self._streams.discard(self._queue)

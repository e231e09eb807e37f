"""Who is typing where, in this process: throttles the starts it forwards, expires them, and
clears them when the typist sends, stops or disconnects."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from parley.events import Events


@dataclass
class _Typing:
    peer_id: int
    connection_id: str
    forwarded_at: float
    expiry: asyncio.TimerHandle


@dataclass
class TypingTracker:
    """At most one ``start`` per user and conversation is forwarded every ``interval``
    seconds; an indicator not renewed within ``expiry`` seconds is stopped for the peer."""

    events: Events
    interval: float
    expiry: float
    _active: dict[tuple[int, int], _Typing] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def start(self, user_id: int, conversation_id: int, peer_id: int, connection_id: str) -> None:
        key = (user_id, conversation_id)
        loop = asyncio.get_running_loop()
        now = loop.time()
        current = self._active.get(key)
        if current is not None:
            current.expiry.cancel()
            current.expiry = loop.call_later(self.expiry, self._expire, key)
            current.connection_id = connection_id
            if now - current.forwarded_at < self.interval:
                return
            current.forwarded_at = now
        else:
            self._active[key] = _Typing(
                peer_id, connection_id, now, loop.call_later(self.expiry, self._expire, key)
            )
        self._forward(user_id, conversation_id, peer_id, "start")

    def stop(self, user_id: int, conversation_id: int) -> None:
        """Clear the indicator, telling the peer, if one is showing."""
        current = self._active.pop((user_id, conversation_id), None)
        if current is not None:
            current.expiry.cancel()
            self._forward(user_id, conversation_id, current.peer_id, "stop")

    def disconnected(self, user_id: int, connection_id: str) -> None:
        """Clear what this socket was typing."""
        for user, conversation_id in [
            key
            for key, typing in self._active.items()
            if key[0] == user_id and typing.connection_id == connection_id
        ]:
            self.stop(user, conversation_id)

    async def idle(self) -> None:
        """Wait until every indicator change so far has been handed to the broker."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _expire(self, key: tuple[int, int]) -> None:
        self.stop(*key)

    def _forward(
        self, user_id: int, conversation_id: int, peer_id: int, state: Literal["start", "stop"]
    ) -> None:
        expires_in_ms = round(self.expiry * 1000) if state == "start" else 0
        task = asyncio.create_task(
            self.events.typing(user_id, conversation_id, peer_id, state, expires_in_ms)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

"""Who is typing where: throttles the starts it forwards, expires them, and clears them when
the typist sends, stops or disconnects, whichever gateway process that happens on.

An indicator belongs to the process whose socket started it (a local entry: throttled,
expired, ended by that socket's disconnect). Every change is also a note on the typist's own
channel, so each other process holding a socket of the typist keeps a remote entry: a
message sent or a ``stop`` sent through any of them ends the indicator for the peer at once.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from parley.fanout.events import Events, TypingNote

log = logging.getLogger(__name__)

_notes = msgspec.json.Decoder(TypingNote)


@dataclass
class _Typing:
    peer_id: int
    connection_id: str | None  # None: started through another process
    forwarded_at: float
    expiry: asyncio.TimerHandle


@dataclass
class TypingTracker:
    """At most one ``start`` per user and conversation is forwarded every ``interval``
    seconds; an indicator not renewed within ``expiry`` seconds is stopped for the peer."""

    events: Events
    interval: float
    expiry: float
    origin: str = field(default_factory=lambda: secrets.token_hex(6))
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
        peer_id = self.take(user_id, conversation_id)
        if peer_id is not None:
            self._forward(user_id, conversation_id, peer_id, "stop")

    def take(self, user_id: int, conversation_id: int) -> int | None:
        """End the indicator here without telling anyone; the peer to tell, if it showed.

        A send uses this, to publish the ``stop`` together with its ``message.new``.
        """
        current = self._active.pop((user_id, conversation_id), None)
        if current is None:
            return None
        current.expiry.cancel()
        return current.peer_id

    def disconnected(self, user_id: int, connection_id: str) -> None:
        """Clear what this socket was typing."""
        for user, conversation_id in [
            key
            for key, typing in self._active.items()
            if key[0] == user_id and typing.connection_id == connection_id
        ]:
            self.stop(user, conversation_id)

    def on_note(self, user_id: int, note: bytes) -> None:
        """Another process started or ended ``user_id``'s indicator: keep up, tell nobody."""
        try:
            typing = _notes.decode(note)
        except msgspec.DecodeError:
            log.warning("ignored a typing note that does not decode: %r", note[:100])
            return
        if typing.origin == self.origin:
            return
        key = (user_id, typing.conversation_id)
        current = self._active.pop(key, None)
        if current is not None:
            current.expiry.cancel()
        if typing.state == "start":
            loop = asyncio.get_running_loop()
            self._active[key] = _Typing(
                typing.peer_id, None, loop.time(), loop.call_later(self.expiry, self._forget, key)
            )

    async def idle(self) -> None:
        """Wait until every indicator change so far has been handed to the broker."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _expire(self, key: tuple[int, int]) -> None:
        self.stop(*key)

    def _forget(self, key: tuple[int, int]) -> None:
        # A remote entry ends silently: the process that owns it tells the peer.
        current = self._active.get(key)
        if current is not None and current.connection_id is None:
            del self._active[key]

    def _forward(
        self, user_id: int, conversation_id: int, peer_id: int, state: Literal["start", "stop"]
    ) -> None:
        expires_in_ms = round(self.expiry * 1000) if state == "start" else 0
        task = asyncio.create_task(
            self.events.typing(
                user_id, conversation_id, peer_id, state, expires_in_ms, origin=self.origin
            )
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

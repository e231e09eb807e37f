"""This process's sockets by user, the broker subscriptions that follow them, and fan-out.

A user's channel is subscribed when their first local socket registers and unsubscribed
when their last one leaves. One listener task takes every broker message and pushes it to
the addressed user's local sockets without waiting on any of them. Publishing is not the
hub's: events.py builds every event and hands it to the broker, in the envelope below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final, Protocol

from parley import metrics, protocol, server_events
from parley.fanout.broker import GAP_ALL, Broker, Envelope

log = logging.getLogger(__name__)

_SEPARATOR = b"\n"
_RESYNC = protocol.encode(server_events.Resync()).decode()


class Socket(Protocol):
    """What the hub needs of a connection: who it is, and a push that never blocks."""

    @property
    def connection_id(self) -> str: ...

    @property
    def user_id(self) -> int: ...

    def push(self, frame: str) -> None: ...

    def close_soon(self, code: int, reason: str) -> None: ...


class TooManyConnections(Exception):
    """The user already has the allowed number of sockets in this process."""


def user_channel(user_id: int) -> str:
    return f"user:{user_id}"


PRESENCE_PREFIX: Final = "presence:"


def presence_channel(user_id: int) -> str:
    """Where a user's presence changes go, to the gateways with sockets watching them."""
    return f"{PRESENCE_PREFIX}{user_id}"


def envelope(skip: str, event: bytes) -> bytes:
    """What travels on a user's channel: the encoded event, and the connection id of the
    socket that must not get it (it caused the event and has its reply), or ""."""
    return skip.encode() + _SEPARATOR + event


# In place of a connection id: a note for the gateways that hold the user's sockets (who is
# typing, across processes), which no socket gets.
_NOTE = "*"
_NOTE_SKIP = _NOTE.encode()


def note_envelope(note: bytes) -> bytes:
    """A note on a user's channel, handed to Hub.on_note on every gateway holding a socket of
    that user, and to no socket."""
    return envelope(_NOTE, note)


# In place of a connection id: close every socket of the user, on every gateway (an erased
# user's), with the code and reason the payload holds.
_CLOSE = "!"
_CLOSE_SKIP = _CLOSE.encode()


def close_envelope(code: int, reason: str) -> bytes:
    return envelope(_CLOSE, f"{code} {reason}".encode())


class Hub:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._sockets: dict[int, set[Socket]] = {}
        # Subscribe/unsubscribe transitions happen in order, never interleaved for a user.
        self._subscriptions = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._change = asyncio.Event()
        # Who takes the notes on a user's channel: (user id, note).
        self.on_note: Callable[[int, bytes], None] | None = None
        # Who hears of sockets coming and going (presence claims): (user id).
        self.on_sockets: Callable[[int], None] | None = None
        # Who takes what comes on presence channels (user id, payload), and their gaps.
        self.on_presence: Callable[[int, bytes], None] | None = None
        self.on_presence_gap: Callable[[], None] | None = None

    async def start(self) -> None:
        await self.broker.connect()
        self._listener = asyncio.create_task(self._listen(), name="hub-listener")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self.broker.disconnect()

    async def changed(self) -> None:
        """Wait until a socket is next added or removed (for shutdown and for tests)."""
        await self._change.wait()

    def _notify(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    def sockets_of(self, user_id: int) -> int:
        return len(self._sockets.get(user_id, ()))

    @property
    def users(self) -> int:
        return len(self._sockets)

    def user_ids(self) -> set[int]:
        """The users with a socket here."""
        return set(self._sockets)

    async def watch(self, channel: str) -> None:
        """Subscribe a channel that no socket's user owns (a presence channel), in the same
        order as the users' subscriptions."""
        async with self._subscriptions:
            await self.broker.subscribe(channel)

    async def unwatch(self, channel: str) -> None:
        async with self._subscriptions:
            await self.broker.unsubscribe(channel)

    async def add(self, socket: Socket, limit: int) -> None:
        """Register a socket; raise TooManyConnections when its user already has ``limit``."""
        async with self._subscriptions:
            sockets = self._sockets.get(socket.user_id)
            if sockets is not None and len(sockets) >= limit:
                raise TooManyConnections(f"user {socket.user_id} has {len(sockets)} connections")
            if sockets is None:
                await self.broker.subscribe(user_channel(socket.user_id))
                sockets = self._sockets[socket.user_id] = set()
            sockets.add(socket)
            self._notify()
        if self.on_sockets is not None:
            self.on_sockets(socket.user_id)

    async def remove(self, socket: Socket) -> None:
        async with self._subscriptions:
            sockets = self._sockets.get(socket.user_id)
            if sockets is None or socket not in sockets:
                return
            sockets.discard(socket)
            if not sockets:
                del self._sockets[socket.user_id]
                await self.broker.unsubscribe(user_channel(socket.user_id))
            self._notify()
        if self.on_sockets is not None:
            self.on_sockets(socket.user_id)

    async def _listen(self) -> None:
        while True:
            received = await self.broker.next_published()
            metrics.BROKER_RECEIVED.inc()
            try:
                self._deliver(received)
            except Exception:
                log.exception("could not deliver a message on %s", received.channel)

    def _deliver(self, received: Envelope) -> None:
        if not received.payload:
            self._resync(received.channel)
            return
        if received.channel.startswith(PRESENCE_PREFIX):
            if self.on_presence is not None:
                user = int(received.channel.removeprefix(PRESENCE_PREFIX))
                self.on_presence(user, received.payload)
            return
        user_id = int(received.channel.removeprefix("user:"))
        sockets = self._sockets.get(user_id)
        if not sockets:
            return
        skip, _, event = received.payload.partition(_SEPARATOR)
        if skip == _CLOSE_SKIP:
            code, _, reason = event.decode().partition(" ")
            for socket in tuple(sockets):
                socket.close_soon(int(code), reason)
            return
        if skip == _NOTE_SKIP:
            if self.on_note is not None:
                self.on_note(user_id, event)
            return
        skip_id = skip.decode()
        frame = event.decode()  # once per event, not once per socket
        for socket in tuple(sockets):
            if socket.connection_id != skip_id:
                socket.push(frame)

    def _resync(self, channel: str) -> None:
        """Events may have been lost: tell the affected sockets to sync from Postgres (and
        presence to read its users' states again)."""
        if channel == GAP_ALL or channel.startswith(PRESENCE_PREFIX):
            if self.on_presence_gap is not None:
                self.on_presence_gap()
            if channel != GAP_ALL:
                return
        if channel == GAP_ALL:
            targets = [socket for sockets in self._sockets.values() for socket in sockets]
        else:
            targets = list(self._sockets.get(int(channel.removeprefix("user:")), ()))
        log.warning("broker gap on %s: %d sockets told to resync", channel, len(targets))
        for socket in targets:
            socket.push(_RESYNC)

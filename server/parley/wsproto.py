"""uvicorn's sans-I/O WebSocket protocol, lighter per socket.

An idle, authenticated socket is mostly uvicorn's per-connection state (bench S4). Two
parts of it are sized for more than a WebSocket uses:

- the receive queue is an ``asyncio.Queue`` (three deques and an Event, about 3 KiB), yet
  uvicorn pauses reading after every frame until the app takes it, so it holds one frame
  and perhaps a disconnect, for one reader;
- the handshake's request and response (every header, parsed twice) stay referenced for
  the socket's life although nothing reads them after the 101.

This subclass swaps the first for a list with one waiter and drops the second once the
handshake is answered: about 4.5 KiB less per socket (S4: 23.1 -> 17.1 KiB).

It also corks: uvicorn writes each frame to the socket at once, one system call and one
wake-up of the client per frame. Here a frame is framed at once and written at the end of
the event loop's turn, together with every other frame for that socket framed in the same
turn (an ack and the events after it; a batch's messages to one device). Order is kept:
anything uvicorn writes itself (a close, a pong) takes the pending frames with it, first.

It relies on uvicorn's attribute names, which uvicorn does not promise: ``queue``,
``writable``, ``request``, ``response``, ``conn``, ``handshake_complete``, ``close_sent``,
``initial_response``, ``disconnected``, ``transport`` and ``loop``. pyproject.toml bounds
uvicorn on both sides for that reason, and tests/test_wsproto.py checks how the installed
uvicorn uses them. When that test fails after a uvicorn upgrade: read the new
``websockets_sansio_impl.py``; if the names and their use are unchanged, move the upper
bound to the release tested; if not, adapt this class to them (every gateway test runs it),
or, to ship at once, set ``"ws": "websockets-sansio"`` in app.uvicorn_options and lose only
the memory and corking gains (bench S2, S4).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState


class Inbox:
    """The part of ``asyncio.Queue`` uvicorn uses (put_nowait, get, empty), for one reader."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[ASGIReceiveEvent] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: ASGIReceiveEvent) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> ASGIReceiveEvent:
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("Inbox has one reader; another is already waiting")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class Gate:
    """``asyncio.Event`` (set, clear, is_set, wait) without a deque until someone waits."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if self._set:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class ParleyWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        writable = Gate()
        writable.set()
        self.writable = writable  # type: ignore[assignment]
        self._flush_scheduled = False

    async def send(self, message: ASGISendEvent) -> None:
        if (
            message["type"] == "websocket.send"
            and self.handshake_complete
            and not self.close_sent
            and self.initial_response is None
        ):
            await self._send_corked(message)
            return
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # The 101 is on its way; uvicorn reads neither object again.
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]

    async def _send_corked(self, message: ASGISendEvent) -> None:
        """Frame the message now, write it (with every other frame framed in this turn of the
        event loop) once the turn ends: one write and one wake-up of the client for an ack
        and the events that follow it, or for a batch's messages to one socket."""
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        try:
            data, text = message.get("bytes"), message.get("text")
            if isinstance(data, bytes):
                self.conn.send_binary(data)
            elif isinstance(text, str):
                self.conn.send_text(text.encode())
        except InvalidState:
            raise ClientDisconnected() from None
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        # uvicorn writes whatever the connection has framed (a close, a pong) the same way,
        # so frames framed here and not yet flushed go out first and in order.
        output = self.conn.data_to_send()
        if output and not self.transport.is_closing():
            self.transport.write(b"".join(output))

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

And it bounds a socket's way out. uvicorn ends a connection with ``transport.close()``,
which first writes out whatever is buffered: for a client that stopped reading (cut off with
4420, or silent past the ping timeout) that is never, and the socket stayed ESTABLISHED with
megabytes of kernel buffers. Here, once a close is sent, a ping times out or the app is
done, the transport is aborted if it is not gone within ABORT_AFTER_SECONDS. When it is gone,
one more event, TRANSPORT_GONE, is queued for the app: gateway/session.py waits for it so
that a socket on its way out still counts against its user's connection limit.

And it survives a shutdown that meets a closing handshake: when the client's close has
arrived (websockets answered it at once) but the app has not yet ended the connection,
uvicorn's ``shutdown`` frames a second close, websockets raises ``InvalidState``, and the
exception stops the server's shutdown of every connection after it. Here such a connection
is only closed.

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
from typing import Any, Final, cast

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.protocol import OPEN


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


# How long a connection may take to go once Parley or uvicorn has ended it.
ABORT_AFTER_SECONDS: Final = 3.0
# The event queued for the app once the transport is really gone (not an ASGI event: read
# it with the raw receive, after the disconnect).
TRANSPORT_GONE: Final = "parley.transport_gone"


class ParleyWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        writable = Gate()
        writable.set()
        self.writable = writable  # type: ignore[assignment]
        self._flush_scheduled = False
        self._abort_timer: asyncio.TimerHandle | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        self.queue.put_nowait(cast(ASGIReceiveEvent, {"type": TRANSPORT_GONE}))

    def shutdown(self) -> None:
        if self.handshake_complete and not self.close_sent and self.conn.state is not OPEN:
            # The client's close was answered, and the app told, when it arrived: only the
            # transport is left to go.
            self.transport.close()
            self._abort_later()
            return
        super().shutdown()

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        self._abort_later()

    async def run_asgi(self) -> None:
        await super().run_asgi()
        self._abort_later()

    def _abort_later(self) -> None:
        """The connection is ending: it is gone within ABORT_AFTER_SECONDS, flushed or not."""
        if self._abort_timer is None and not self.disconnected:
            self._abort_timer = self.loop.call_later(ABORT_AFTER_SECONDS, self._abort)

    def _abort(self) -> None:
        self._abort_timer = None
        if not self.disconnected:
            self.transport.abort()

    async def send(self, message: ASGISendEvent) -> None:
        if (
            message["type"] == "websocket.send"
            and self.handshake_complete
            and not self.close_sent
            and self.initial_response is None
        ):
            await self._send_corked(message)
            return
        if message["type"] == "websocket.close":
            # Before the close is written: a client that does not read can block that write.
            self._abort_later()
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

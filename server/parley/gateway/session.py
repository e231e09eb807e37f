"""One WebSocket's life: Origin check, hello, then requests in order until it closes.

Replies and events share one bounded outbox, drained by a writer task that exists only while
frames wait. A reply goes out before any event that arrives while its request is handled, so
a device never sees the effects of its own request before the answer to it. A client that
stops reading fills its outbox and is closed (4420); pushing to it never waits, so it cannot
slow anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from datetime import UTC, datetime
from typing import Any, Final

from starlette.types import Receive
from starlette.websockets import WebSocket, WebSocketDisconnect

from parley import metrics, protocol, server_events
from parley.errors import (
    BinaryFrame,
    ParleyError,
    ProtocolError,
    RateLimited,
)
from parley.gateway import hello
from parley.gateway.dispatch import NO_REPLY, dispatch
from parley.gateway.ratelimit import TokenBucket
from parley.gateway.shared import Gateway
from parley.gateway.wsproto import ABORT_AFTER_SECONDS, TRANSPORT_GONE
from parley.logs import request_id
from parley.models import User
from parley.presence.service import Presence
from parley.protocol import (
    WS_1008_POLICY_VIOLATION,
    WS_1011_INTERNAL_ERROR,
    WS_1012_SERVICE_RESTART,
    WS_4411_TOKEN_EXPIRED,
    WS_4420_SLOW_CONSUMER,
    close_reason,
    error_frame,
)
from parley.usecases.chat import Chat

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_SECONDS: Final = 1.0
# wsproto aborts a connection that has not gone ABORT_AFTER_SECONDS after its close.
GONE_TIMEOUT_SECONDS: Final = ABORT_AFTER_SECONDS + 2.0
FLUSH_TIMEOUT_SECONDS: Final = 5.0


class Session:
    """One authenticated socket; to dispatch.py, the Caller its frames come from."""

    __slots__ = (
        "__weakref__",
        "_close",
        "_draining",
        "_frames",
        "_held",
        "_in_request",
        "_outbox",
        "_reading",
        "_task",
        "_writer",
        "connection_id",
        "gateway",
        "receive",
        "token_expires_at",
        "user",
        "websocket",
    )

    def __init__(self, websocket: WebSocket, gateway: Gateway, receive: Receive) -> None:
        self.websocket = websocket
        # The raw ASGI receive, for what comes after the disconnect (TRANSPORT_GONE).
        self.receive = receive
        self.gateway = gateway
        self.connection_id = secrets.token_hex(8)
        self.user = User(id=0, display_name="", avatar_url=None)
        self.token_expires_at = 0.0
        # Frames not yet handed to the socket. A writer task exists only while it is not
        # empty, so an idle socket costs no task.
        self._outbox: list[str] = []
        # Events that arrived while a request was being handled: they follow its reply.
        self._held: list[str] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._close: tuple[int, str] | None = None
        self._frames = TokenBucket(gateway.limits.frames_per_second, gateway.limits.frame_burst)
        self._draining = False
        self._in_request = False
        self._task: asyncio.Task[Any] | None = None  # the ASGI task, which reads
        self._reading = False

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def chat(self) -> Chat:
        return self.gateway.chat

    @property
    def message_rate(self) -> TokenBucket:
        return self.gateway.message_rates.of(self.user_id)

    @property
    def presence(self) -> Presence:
        return self.gateway.presence

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        if not self.gateway.origin_allowed(
            self.websocket.headers.get("origin"), self.websocket.headers.get("host")
        ):
            await self.websocket.close(WS_1008_POLICY_VIOLATION)  # before accept: HTTP 403
            return
        if self.gateway.draining:
            await self.websocket.close(WS_1012_SERVICE_RESTART)
            return
        await self.websocket.accept()
        try:
            if not await hello.first_frame(self):
                return
        except WebSocketDisconnect:
            return
        self.gateway.sessions.add(self)
        metrics.CONNECTIONS.inc()
        try:
            try:
                await self._serve()
            finally:
                metrics.CONNECTIONS.dec()
                self.token_expires_at = 0.0
                self.gateway.sessions.discard(self)
                self.chat.disconnected(self.user_id, self.connection_id)
            if self._close is not None:
                await self.close_socket(*self._close)
                await self._until_gone()
        finally:
            await self.presence.forget(self)
            # Only now: a socket on its way out counts against its user's limit until gone.
            await self.gateway.hub.remove(self)
            self.gateway.forget_user(self.user_id)

    async def renew(self, token: str) -> protocol.HelloData:
        """A second hello: a fresh token for the same user; the reply is a hello's."""
        return await hello.renew(self, token)

    def token_expiring(self, expires_at: float) -> None:
        left = max(0, round((expires_at - time.time()) * 1000))
        at = datetime.fromtimestamp(expires_at, UTC)
        self.push(protocol.encode(server_events.TokenExpiring(at, left)).decode())

    def token_expired(self) -> None:
        self.close_soon(WS_4411_TOKEN_EXPIRED, "token expired; say hello again before it runs out")

    async def _serve(self) -> None:
        """Read and handle frames in this (the ASGI) task until the client goes, or until
        close_soon() or drain() cancels the read; then settle what is owed to the client."""
        if self._close is not None:
            return
        task = self._task = asyncio.current_task()
        assert task is not None
        if self._outbox:  # events that came while the hello was being answered
            self._writer = asyncio.create_task(self._write())
        if self.gateway.draining:  # shutdown began while this socket said hello
            self._draining = True
        try:
            self._reading = not self._draining
            if self._reading:
                await self._read_loop()
        except asyncio.CancelledError:
            if self._close is None and not self._draining:
                raise  # not ours: the server itself is cancelling
            task.uncancel()
        except WebSocketDisconnect:
            pass
        except Exception:
            log.exception("socket %s failed", self.connection_id)
            self._close = self._close or (WS_1011_INTERNAL_ERROR, "internal error")
        finally:
            self._reading = False
        if self._draining and self._close is None:
            writer = self._writer
            if writer is not None:
                with contextlib.suppress(TimeoutError, Exception):
                    async with asyncio.timeout(FLUSH_TIMEOUT_SECONDS):
                        await asyncio.shield(writer)
            self._close = (WS_1012_SERVICE_RESTART, "service restart")
        if self._writer is not None:
            self._writer.cancel()

    def drain(self) -> None:
        """Stop taking requests; the one in flight finishes, its reply is flushed, then 1012."""
        self._draining = True
        if not self._in_request and self._reading and self._task is not None:
            self._task.cancel()

    def push(self, frame: str) -> None:
        """Queue an event for this socket; never waits. A full queue closes the socket."""
        if self._in_request:
            if self._held is None:
                self._held = []
            self._held.append(frame)
            if len(self._held) + len(self._outbox) > self.gateway.limits.send_queue:
                self._cut_off()
            return
        self._queue(frame)

    def _queue(self, frame: str) -> None:
        if self._close is not None:
            return
        if len(self._outbox) >= self.gateway.limits.send_queue:
            self._cut_off()
            return
        self._outbox.append(frame)
        _count_out(frame)
        # Until _serve starts (after the hello reply), frames only queue: the reply goes first.
        if self._writer is None and self._task is not None:
            self._writer = asyncio.create_task(self._write())

    def _cut_off(self) -> None:
        if self._close is not None:
            return
        log.warning("closing %s: send queue full (client not reading)", self.connection_id)
        self.gateway.slow_consumers_closed += 1
        metrics.SLOW_CONSUMERS.inc()
        self.close_soon(WS_4420_SLOW_CONSUMER, "send queue full: the client is not reading")

    def close_soon(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
            self._outbox.clear()
            self._held = None
            if self._writer is not None:
                self._writer.cancel()
            if self._reading and self._task is not None:
                self._task.cancel()

    async def _write(self) -> None:
        try:
            while self._outbox:
                await self.websocket.send_text(self._outbox.pop(0))
        except Exception:
            self._outbox.clear()  # the client is gone; the reader sees the disconnect
        finally:
            self._writer = None

    async def _read_loop(self) -> None:
        high_water = max(1, self.gateway.limits.send_queue // 2)
        while not self._draining:
            writer = self._writer
            if writer is not None and len(self._outbox) >= high_water:
                # Replies must not outrun the client: read on once what it is owed has been
                # written. A client that reads is never cut off for its own pipelined frames;
                # one that does not read stops being read (and its events overflow instead).
                await asyncio.wait({writer})
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            self._in_request = True
            try:
                await self._handle(message.get("text"))
            finally:
                self._in_request = False
                held, self._held = self._held, None
                for frame in held or ():
                    self._queue(frame)

    async def send_now(self, frame: str) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.send_text(frame)

    async def _until_gone(self) -> None:
        """After closing it ourselves: wait until the transport is really gone (the client
        answered the close, or wsproto aborted it), a bounded time."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(GONE_TIMEOUT_SECONDS):
                while (await self.receive())["type"] != TRANSPORT_GONE:
                    pass

    async def close_socket(self, code: int, reason: str) -> None:
        # A client that does not read can block even the close frame: give up after a moment.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await self.websocket.close(code, close_reason(reason))

    # --- requests --------------------------------------------------------------------------

    async def _handle(self, text: str | None) -> None:
        """Check the frame rate, parse, run the use case, and queue its one reply. Every
        frame counts against the rate, parsed or not, binary (``text`` None) too."""
        wait = self._frames.take()
        limited = RateLimited("too many frames", wait) if wait > 0 else None
        if text is None:
            self._reply_error(limited or BinaryFrame("binary frames are not supported; send JSON"))
            return
        try:
            frame = protocol.parse(text)
        except ProtocolError as error:
            _FRAMES_IN_INVALID.inc()
            self._reply_error(limited or error, error.frame_id)
            return
        _FRAMES_IN[type(frame)].inc()
        request_id.set(f"{self.connection_id}:{frame.id}")
        started = time.perf_counter()
        try:
            if limited is not None:
                raise limited
            data = await dispatch(self, frame)
        except ParleyError as error:
            self._reply_error(error, frame.id)
            return
        except Exception:
            log.exception("request %s failed", type(frame).__name__)
            self._reply_error(ParleyError("internal error"), frame.id)
            return
        finally:
            if type(frame) is protocol.MessageSend:
                metrics.SEND_SECONDS.observe(time.perf_counter() - started)
        if data is not NO_REPLY:
            self._queue(protocol.encode(protocol.Ok(id=frame.id, data=data)).decode())

    def _reply_error(self, error: ParleyError, frame_id: str | int | None = None) -> None:
        metrics.ERRORS.labels(error.code).inc()
        self._queue(error_frame(error, frame_id))


_FRAMES_IN: Final = {
    cls: metrics.FRAMES_IN.labels(tag) for tag, cls in protocol.CLIENT_FRAME_TYPES.items()
}
_FRAMES_IN_INVALID: Final = metrics.FRAMES_IN.labels("invalid")
_frames_out: dict[str, Any] = {}


def _count_out(frame: str) -> None:
    kind = metrics.frame_type(frame)
    counter = _frames_out.get(kind)
    if counter is None:
        counter = _frames_out[kind] = metrics.FRAMES_OUT.labels(kind)
    counter.inc()

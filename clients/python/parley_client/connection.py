"""One connection to a Parley gateway that survives disconnects.

It reconnects with backoff and jitter, says hello with a fresh token (a token function is
called again each time, and when the server says the token is expiring), and sends again
every request that was in flight, unchanged: a send keeps its client_msg_id, so it is stored
once and resolves once. What the frames mean is the client's business (client.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from parley_client.events import Frame, ParleyError, Status

# A token, or a function (plain or async) that returns a fresh one.
Token = str | Callable[[], Awaitable[str] | str]
_CLOSE_UNAUTHORIZED = 4401


class Listener(Protocol):
    """What the connection tells the client."""

    def on_hello(self, hello: Frame) -> None: ...  # every hello reply, renewals included
    def on_open(self) -> None: ...  # a new socket is ready (after its hello)
    def on_gone(self) -> None: ...  # the socket went
    def on_event(self, frame: Frame) -> None: ...
    def on_status(
        self, state: Status, code: int | None, reason: str, delay: float | None
    ) -> None: ...


@dataclass
class _Request:
    frame: Frame
    reply: asyncio.Future[Any]
    sent_on: ClientConnection | None = None
    watchdog: asyncio.TimerHandle | None = field(default=None, repr=False)


class Connection:
    def __init__(
        self,
        url: str,
        token: Token,
        listener: Listener,
        *,
        reconnect_delay: float,
        max_reconnect_delay: float,
        request_timeout: float,
        on_frame: Callable[[Frame], None] | None = None,
    ) -> None:
        self.url = url
        self._token = token
        self._listener = listener
        self._min_delay = reconnect_delay
        self._max_delay = max_reconnect_delay
        self._request_timeout = request_timeout
        self._on_frame = on_frame
        self._pending: dict[str, _Request] = {}
        self._ids = itertools.count(1)
        self.socket: ClientConnection | None = None  # past its hello: requests may go on it
        self._runner: asyncio.Task[None] | None = None
        self._opened: asyncio.Future[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Connect; returns once the first hello is answered (ParleyError if refused)."""
        if self._runner is None:
            self._opened = asyncio.get_running_loop().create_future()
            self._listener.on_status("connecting", None, "", None)
            self._runner = asyncio.create_task(self._run(), name="parley-client")
        assert self._opened is not None
        await asyncio.shield(self._opened)

    @property
    def started(self) -> bool:
        return self._runner is not None

    async def close(self) -> None:
        """Stop for good: pending requests fail with ``closed``."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        for task in list(self._background):
            task.cancel()
        self._fail_pending(ParleyError("closed", "the client was closed"))

    def _fail_pending(self, error: ParleyError) -> None:
        for request in self._pending.values():
            if not request.reply.done():
                request.reply.set_exception(error)
                request.reply.exception()  # retrieved: nobody may be awaiting it any more
        self._pending.clear()
        if self._opened is not None and not self._opened.done():
            self._opened.set_exception(error)
            self._opened.exception()

    async def _token_value(self) -> str:
        if isinstance(self._token, str):
            return self._token
        token = self._token()
        return await token if inspect.isawaitable(token) else token

    async def _run(self) -> None:
        attempt, refused_once = 0, False
        while True:
            code: int | None = None
            reason = ""
            try:
                token: str | None = await self._token_value()
            except Exception as error:
                # The app's token function failed (its backend is down, say): like a network
                # failure, it is tried again after the backoff; the status says why.
                token, reason = None, f"the token function failed: {error!r}"
            if token is not None:
                try:
                    async with connect(self.url, open_timeout=self._request_timeout) as socket:
                        reader = asyncio.create_task(self._read(socket))
                        try:
                            if await self._welcome(socket, token):
                                attempt, refused_once = 0, False
                            await reader
                        finally:
                            reader.cancel()
                            self.socket = None
                            self._listener.on_gone()
                        if (received := socket.protocol.close_rcvd) is not None:
                            code, reason = received.code, received.reason
                except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as error:
                    reason = str(error)
            if code == _CLOSE_UNAUTHORIZED and callable(self._token) and not refused_once:
                # A token function may have handed out a stale token: ask it once more, now.
                refused_once = True
                continue
            if code == _CLOSE_UNAUTHORIZED:
                self._fail_pending(ParleyError("unauthorized", reason or "token refused"))
                self._listener.on_status("closed", code, reason, None)
                return
            base = min(self._max_delay, self._min_delay * 2**attempt)
            delay = base / 2 + random.random() * base / 2  # jitter spreads a reconnecting herd
            attempt += 1
            self._listener.on_status("reconnecting", code, reason, delay)
            await asyncio.sleep(delay)

    async def _welcome(self, socket: ClientConnection, token: str) -> bool:
        """Hello, then resend what was in flight and sync; False if the hello failed."""
        try:
            hello = await self._request_on(socket, {"type": "hello", "token": token})
        except ParleyError:
            return False  # unauthorized: the server closes with 4401 and _run decides
        self._listener.on_hello(hello)
        self.socket = socket
        self._listener.on_status("open", None, "", None)
        if self._opened is not None and not self._opened.done():
            self._opened.set_result(None)
        for frame_id, request in list(self._pending.items()):
            if request.sent_on is not socket:
                self._transmit(frame_id, request, socket)
        self._listener.on_open()
        return True

    def spawn(self, work: Awaitable[Any]) -> None:
        """Run ``work`` in the background; a refusal there is nobody's to report."""

        async def run() -> None:
            with contextlib.suppress(ParleyError):
                await work

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _read(self, socket: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in socket:
                if isinstance(raw, str):
                    self._receive(json.loads(raw))
        for request in list(self._pending.values()):
            if request.frame["type"] == "hello" and request.sent_on is socket:
                self._pending.pop(request.frame["id"], None)
                if not request.reply.done():
                    request.reply.set_exception(ParleyError("disconnected", "socket closed"))

    # --- requests -----------------------------------------------------------------------

    async def request(self, frame: Frame) -> Any:
        """Send any request frame (an ``id`` is added) and return its reply's ``data``;
        across a reconnect it is sent again. Raises ParleyError for an ``error`` reply."""
        if self._runner is None:
            raise ParleyError("closed", "connect() first, or the client was closed")
        frame_id = str(next(self._ids))
        request = _Request({**frame, "id": frame_id}, asyncio.get_running_loop().create_future())
        self._pending[frame_id] = request
        if self.socket is not None:
            self._transmit(frame_id, request, self.socket)
        return await request.reply

    async def _request_on(self, socket: ClientConnection, frame: Frame) -> Any:
        frame_id = str(next(self._ids))
        request = _Request({**frame, "id": frame_id}, asyncio.get_running_loop().create_future())
        self._pending[frame_id] = request
        self._transmit(frame_id, request, socket)
        return await request.reply

    def _transmit(self, frame_id: str, request: _Request, socket: ClientConnection) -> None:
        request.sent_on = socket
        if request.watchdog is not None:
            request.watchdog.cancel()

        def unanswered() -> None:
            # No reply in time: the connection is not working; the next one retries.
            if self._pending.get(frame_id) is request and request.sent_on is socket:
                self.spawn(socket.close(4000, "request timed out"))

        request.watchdog = asyncio.get_running_loop().call_later(self._request_timeout, unanswered)
        self.spawn(self._send_quietly(socket, json.dumps(request.frame)))

    @staticmethod
    async def _send_quietly(socket: ClientConnection, text: str) -> None:
        # A send on a socket that just went is retried on the next one.
        with contextlib.suppress(ConnectionClosed):
            await socket.send(text)

    def _receive(self, frame: Frame) -> None:
        if self._on_frame is not None:
            self._on_frame(frame)
        kind = frame.get("type")
        if kind in ("ok", "error"):
            request = self._pending.pop(str(frame.get("id")), None)
            if request is None or request.reply.done():
                return
            if request.watchdog is not None:
                request.watchdog.cancel()
            if kind == "ok":
                request.reply.set_result(frame.get("data"))
            else:
                request.reply.set_exception(
                    ParleyError(
                        frame["code"],
                        frame.get("message", ""),
                        retryable=bool(frame.get("retryable")),
                        retry_after_ms=frame.get("retry_after_ms"),
                    )
                )
            return
        self._listener.on_event(frame)

    async def renew(self) -> None:
        """A fresh token on the same socket; on failure the server closes with 4411 and the
        reconnect asks the token function again."""
        socket = self.socket
        try:
            token = await self._token_value()
        except Exception:
            return  # the expiry closes the socket (4411); the reconnect asks again
        if socket is not None and socket is self.socket:
            hello = await self._request_on(socket, {"type": "hello", "token": token})
            self._listener.on_hello(hello)

    async def send_unanswered(self, frame: Frame) -> bool:
        """Send a frame that gets no reply (typing) if a socket is open; True if it was."""
        socket = self.socket
        if socket is None:
            return False
        await self._send_quietly(socket, json.dumps(frame))
        return True

"""ParleyClient: one connection to a Parley gateway that survives disconnects.

It reconnects with backoff and jitter, says hello with a fresh token (a token function is
called again each time, and when the server says the token is expiring), syncs what it
missed, and sends again every request that was in flight: a send keeps its client_msg_id,
so it is stored once and resolves once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from parley_client.events import (
    ConversationEvent,
    Event,
    Frame,
    ParleyError,
    Status,
    StatusEvent,
)
from parley_client.view import View

Token = str | Callable[[], Awaitable[str]]
SYNC_BATCH = 100  # conversations per sync frame, the server's bound
SEND_RETRIES = 5  # retryable refusals (rate_limited, unavailable) of one send
_CLOSE_UNAUTHORIZED = 4401


def new_client_msg_id() -> str:
    return uuid.uuid4().hex


@dataclass
class _Request:
    frame: Frame
    reply: asyncio.Future[Any]
    sent_on: ClientConnection | None = None
    watchdog: asyncio.TimerHandle | None = field(default=None, repr=False)


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


class ParleyClient:
    def __init__(
        self,
        url: str,
        token: Token,
        *,
        reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 30.0,
        request_timeout: float = 10.0,
        on_frame: Callable[[Frame], None] | None = None,
    ) -> None:
        self.url = url
        self._token = token
        self._min_delay = reconnect_delay
        self._max_delay = max_reconnect_delay
        self._request_timeout = request_timeout
        self._on_frame = on_frame
        self.status: Status = "closed"
        self.user: Frame | None = None
        self.limits: Frame = {}
        self._view = View(self._emit, self._sync_soon)
        self._streams: set[asyncio.Queue[Event | None]] = set()
        self._pending: dict[str, _Request] = {}
        self._ids = itertools.count(1)
        self._socket: ClientConnection | None = None  # past its hello: requests may go on it
        self._runner: asyncio.Task[None] | None = None
        self._opened: asyncio.Future[None] | None = None
        self._typing_sent: dict[int, float] = {}
        self._background: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> ParleyClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- events -------------------------------------------------------------------------

    def events(self) -> EventStream:
        """Every event from now on: MessageEvent, ReadEvent, TypingEvent, UnreadEvent,
        ConversationEvent, StatusEvent."""
        return EventStream(self._streams)

    def _emit(self, event: Event) -> None:
        for queue in self._streams:
            queue.put_nowait(event)

    def _set_status(self, state: Status, **detail: Any) -> None:
        self.status = state
        self._emit(StatusEvent(state, **detail))

    @property
    def unread_total(self) -> int:
        return self._view.total

    def unread_count(self, conversation_id: int) -> int:
        return self._view.unread_count(conversation_id)

    # --- connection ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect; returns once the first hello is answered (ParleyError if refused)."""
        if self._runner is None:
            self._opened = asyncio.get_running_loop().create_future()
            self._set_status("connecting")
            self._runner = asyncio.create_task(self._run(), name="parley-client")
        assert self._opened is not None
        await asyncio.shield(self._opened)

    async def close(self) -> None:
        """Close for good: pending requests fail with ``closed``; event streams end."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        for task in list(self._background):
            task.cancel()
        self._fail_pending(ParleyError("closed", "the client was closed"))
        self._view.clear_typing()
        if self.status != "closed":
            self._set_status("closed")
        for queue in list(self._streams):
            queue.put_nowait(None)

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
        return self._token if isinstance(self._token, str) else await self._token()

    async def _run(self) -> None:
        attempt, refused_once = 0, False
        while True:
            code: int | None = None
            reason = ""
            try:
                token = await self._token_value()
                async with connect(self.url, open_timeout=self._request_timeout) as socket:
                    reader = asyncio.create_task(self._read(socket))
                    try:
                        if await self._welcome(socket, token):
                            attempt, refused_once = 0, False
                        await reader
                    finally:
                        reader.cancel()
                        self._socket = None
                        self._view.clear_typing()
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
                self._set_status("closed", code=code, reason=reason)
                return
            base = min(self._max_delay, self._min_delay * 2**attempt)
            delay = base / 2 + random.random() * base / 2  # jitter spreads a reconnecting herd
            attempt += 1
            self._set_status("reconnecting", code=code, reason=reason, delay=delay)
            await asyncio.sleep(delay)

    async def _welcome(self, socket: ClientConnection, token: str) -> bool:
        """Hello, then resend what was in flight and sync; False if the hello failed."""
        try:
            hello = await self._request_on(socket, {"type": "hello", "token": token})
        except ParleyError:
            return False  # unauthorized: the server closes with 4401 and _run decides
        self._apply_hello(hello)
        self._socket = socket
        self._set_status("open")
        if self._opened is not None and not self._opened.done():
            self._opened.set_result(None)
        for frame_id, request in list(self._pending.items()):
            if request.sent_on is not socket:
                self._transmit(frame_id, request, socket)
        self._spawn(self.sync())
        return True

    def _apply_hello(self, hello: Frame) -> None:
        self.user = hello["user"]
        self.limits = hello.get("limits", {})
        self._view.apply_total(hello["unread_total"], hello["unread_version"])

    def _spawn(self, work: Awaitable[Any]) -> None:
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
        if self._socket is not None:
            self._transmit(frame_id, request, self._socket)
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
                self._spawn(socket.close(4000, "request timed out"))

        request.watchdog = asyncio.get_running_loop().call_later(self._request_timeout, unanswered)
        self._spawn(self._send_quietly(socket, json.dumps(request.frame)))

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
        self._event(frame)

    def _event(self, frame: Frame) -> None:
        view = self._view
        if frame["type"] == "message.new":
            message = frame["message"]
            if message.get("sender_id") is not None:
                view.stop_typing(message["conversation_id"], message["sender_id"])
            self._accept(message)
        elif frame["type"] == "message.read":
            view.apply_read(frame)
        elif frame["type"] == "typing":
            view.apply_typing(frame)
        elif frame["type"] == "unread":
            view.apply_total(frame["total"], frame["version"])
            view.apply_count(frame["conversation_id"], frame["count"], frame["version"])
        elif frame["type"] == "conversation.updated":
            view.learn(frame["conversation"])
            self._emit(ConversationEvent(frame["conversation"]))
        elif frame["type"] == "token.expiring":
            self._spawn(self._renew())
        elif frame["type"] == "resync":
            self._spawn(self.sync())

    async def _renew(self) -> None:
        """A fresh token on the same socket; on failure the server closes with 4411 and the
        reconnect asks the token function again."""
        socket = self._socket
        token = await self._token_value()
        if socket is not None and socket is self._socket:
            self._apply_hello(await self._request_on(socket, {"type": "hello", "token": token}))

    def _accept(self, message: Frame) -> None:
        if self._view.accept(message):
            self._spawn(self._announce(message["conversation_id"]))

    async def _announce(self, conversation_id: int) -> None:
        self._emit(ConversationEvent(await self.get_conversation(conversation_id)))

    def _sync_soon(self, conversation_id: int) -> None:
        self._spawn(self._sync([conversation_id]))

    async def sync(self) -> None:
        """Fetch what this client missed in every conversation it holds (run on reconnect)."""
        await self._sync(list(self._view.conversations()))

    async def _sync(self, ids: list[int]) -> None:
        todo = list(ids)
        while todo:
            batch, todo = todo[:SYNC_BATCH], todo[SYNC_BATCH:]
            held = self._view.conversations()
            wanted = {str(cid): held.get(cid, 0) for cid in batch}
            data = await self.request({"type": "sync", "conversations": wanted})
            for missing in data["not_found"]:
                self._view.forget(missing)
            for result in data["conversations"]:
                self._view.learn(result["conversation"])
                for message in result["messages"]:
                    self._accept(message)
                self._emit(ConversationEvent(result["conversation"]))
                if result["has_more"]:
                    todo.append(result["conversation"]["id"])
            self._view.apply_total(data["unread_total"], data["unread_version"])

    # --- the API ------------------------------------------------------------------------

    async def open_conversation(self, product_id: int) -> Frame:
        data = await self.request({"type": "conversation.open", "product_id": product_id})
        self._view.learn(data["conversation"])
        return dict(data["conversation"])

    async def get_conversation(self, conversation_id: int) -> Frame:
        data = await self.request({"type": "conversation.get", "conversation_id": conversation_id})
        self._view.learn(data["conversation"])
        return dict(data["conversation"])

    async def send(
        self,
        conversation_id: int,
        content: str,
        type: str = "text",
        metadata: Frame | None = None,
        client_msg_id: str | None = None,
    ) -> Frame:
        """Send a message; returns it once stored. Retries (a disconnect, a retryable
        refusal) keep the same client_msg_id, so it is stored once."""
        frame = {
            "type": "message.send",
            "conversation_id": conversation_id,
            "client_msg_id": client_msg_id or new_client_msg_id(),
            "message_type": type,
            "content": content,
            "metadata": metadata or {},
        }
        for attempt in itertools.count():
            try:
                data = await self.request(frame)
            except ParleyError as error:
                if not error.retryable or attempt >= SEND_RETRIES:
                    raise
                wait = error.retry_after_ms / 1000 if error.retry_after_ms else 2**attempt / 2
                await asyncio.sleep(wait)
                continue
            self._typing_sent.pop(conversation_id, None)
            self._accept(data["message"])
            return dict(data["message"])
        raise AssertionError("not reached")

    async def history(
        self, conversation_id: int, before_seq: int | None = None, limit: int = 50
    ) -> list[Frame]:
        frame: Frame = {"type": "message.history", "conversation_id": conversation_id}
        frame["limit"] = limit
        if before_seq is not None:
            frame["before_seq"] = before_seq
        return list((await self.request(frame))["messages"])

    async def mark_read(self, conversation_id: int, up_to_seq: int) -> Frame:
        receipt: Frame = await self.request(
            {
                "type": "conversation.read",
                "conversation_id": conversation_id,
                "up_to_seq": up_to_seq,
            }
        )
        self._view.apply_count(conversation_id, receipt["unread_count"], receipt["unread_version"])
        if receipt["advanced"]:
            self._view.apply_read(receipt)
        return receipt

    async def typing(self, conversation_id: int) -> None:
        """Say the user is typing; call it freely, it is sent at most once per interval."""
        interval = self.limits.get("typing_interval_ms", 2000) / 1000
        now = asyncio.get_running_loop().time()
        socket = self._socket
        if socket is None or now - self._typing_sent.get(conversation_id, -1e9) < interval:
            return
        self._typing_sent[conversation_id] = now
        frame = {"type": "typing", "conversation_id": conversation_id, "state": "start"}
        await self._send_quietly(socket, json.dumps(frame))

    async def inbox(
        self, cursor: str | None = None, limit: int = 20, archived: bool = False
    ) -> Frame:
        data: Frame = await self.request(
            {"type": "conversation.list", "cursor": cursor, "limit": limit, "archived": archived}
        )
        for conversation in data["conversations"]:
            self._view.learn(conversation)
        return data

    async def _change(self, kind: str, conversation_id: int) -> Frame:
        data = await self.request({"type": kind, "conversation_id": conversation_id})
        conversation: Frame = data["conversation"]
        self._view.apply_count(
            conversation_id, conversation["unread_count"], conversation["unread_version"]
        )
        self._emit(ConversationEvent(conversation))
        return conversation

    async def delete(self, conversation_id: int) -> Frame:
        return await self._change("conversation.delete", conversation_id)

    async def archive(self, conversation_id: int) -> Frame:
        return await self._change("conversation.archive", conversation_id)

    async def unarchive(self, conversation_id: int) -> Frame:
        return await self._change("conversation.unarchive", conversation_id)

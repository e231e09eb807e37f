"""One WebSocket's life: Origin check, hello, then requests in order until it closes.

Replies and events share one bounded outbox, drained by a writer task that exists only while
frames wait. A client that stops reading fills its outbox and is closed (4420); pushing to it
never waits, so it cannot slow anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import asyncpg
from starlette.websockets import WebSocket, WebSocketDisconnect

from parley import metrics, protocol, store
from parley.auth import TokenVerifier
from parley.batching import SendBatcher
from parley.config import Settings
from parley.errors import (
    BinaryFrame,
    InvalidFrame,
    NotFound,
    ParleyError,
    ProtocolError,
    RateLimited,
    TooManyConnectionsError,
    Unauthorized,
    Unavailable,
)
from parley.hub import Hub, TooManyConnections
from parley.logs import request_id
from parley.models import Conversation, User

log = logging.getLogger(__name__)

# Close codes (docs/protocol.md). 1xxx are the standard ones uvicorn also uses.
WS_1000_NORMAL = 1000
WS_1008_POLICY_VIOLATION = 1008
WS_1009_MESSAGE_TOO_BIG = 1009
WS_1011_INTERNAL_ERROR = 1011
WS_1012_SERVICE_RESTART = 1012
WS_4400_HELLO_EXPECTED = 4400
WS_4401_UNAUTHORIZED = 4401
WS_4408_HELLO_TIMEOUT = 4408
WS_4420_SLOW_CONSUMER = 4420
WS_4429_TOO_MANY_CONNECTIONS = 4429

CLOSE_TIMEOUT_SECONDS: Final = 1.0
FLUSH_TIMEOUT_SECONDS: Final = 5.0
MAX_SYNC_MESSAGES: Final = 100  # per conversation per sync; has_more says to ask again

# Errors that mean "the database cannot be reached": retryable, and no ok was sent. (A write
# whose commit landed just before its connection died is answered unavailable too; retrying
# with the same client_msg_id then answers replayed.)
# InternalClientError belongs here too: asyncpg raises it from a connection whose session
# the server terminated mid-operation (MagicStack/asyncpg#784, #1069); the pool replaces it.
DATABASE_DOWN: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.exceptions.InternalClientError,
)


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; take() says how long to wait if empty."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.updated = float(burst), time.monotonic()

    def take(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate if self.rate > 0 else float("inf")


@dataclass
class _Typing:
    peer_id: int
    connection_id: str
    forwarded_at: float
    expiry: asyncio.TimerHandle


@dataclass
class TypingTracker:
    """Who is typing where, in this process: throttles starts, expires and clears them."""

    hub: Hub
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
        for user, conversation_id in [
            key
            for key, typing in self._active.items()
            if key[0] == user_id and typing.connection_id == connection_id
        ]:
            self.stop(user, conversation_id)

    def _expire(self, key: tuple[int, int]) -> None:
        self.stop(*key)

    def _forward(self, user_id: int, conversation_id: int, peer_id: int, state: str) -> None:
        event = protocol.TypingEvent(
            conversation_id=conversation_id,
            user_id=user_id,
            state=state,  # type: ignore[arg-type]
            expires_in_ms=round(self.expiry * 1000) if state == "start" else 0,
        )
        task = asyncio.create_task(self.hub.publish([peer_id], protocol.encode(event)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class Gateway:
    """What every socket of this process shares."""

    # The gateways serving in this process, for the server's graceful shutdown.
    running: ClassVar[set[Gateway]] = set()

    def __init__(self, settings: Settings, pool: asyncpg.Pool, hub: Hub) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.pool = pool
        self.hub = hub
        self.verifier = TokenVerifier.from_settings(settings)
        self.typing = TypingTracker(
            hub, self.limits.typing_interval_seconds, self.limits.typing_expiry_seconds
        )
        self.sends = SendBatcher(
            pool, hub, self.limits, settings.send_batch_max, settings.send_batch_in_flight
        )
        self._message_buckets: dict[int, TokenBucket] = {}
        self.slow_consumers_closed = 0
        self.sessions: set[Session] = set()
        self.draining = False

    async def drain(self, within: float) -> None:
        """Graceful shutdown: every socket finishes its request in flight, flushes what it
        owes the client, then closes with 1012 so the client reconnects elsewhere."""
        self.draining = True
        log.info("draining %d sockets", len(self.sessions))
        for session in list(self.sessions):
            session.drain()
        try:
            async with asyncio.timeout(within):
                while self.sessions:
                    await self.hub.changed()
        except TimeoutError:
            log.warning(
                "%d sockets still open after %.0f s of draining", len(self.sessions), within
            )

    def message_bucket(self, user_id: int) -> TokenBucket:
        bucket = self._message_buckets.get(user_id)
        if bucket is None:
            bucket = self._message_buckets[user_id] = TokenBucket(
                self.limits.messages_per_second, self.limits.message_burst
            )
        return bucket

    def forget_user(self, user_id: int) -> None:
        if self.hub.sockets_of(user_id) == 0:
            self._message_buckets.pop(user_id, None)

    def origin_allowed(self, origin: str | None) -> bool:
        # Browsers always send Origin; other clients authenticate by token alone.
        allowed = self.settings.allowed_origins
        return origin is None or "*" in allowed or origin in allowed

    @property
    def public_limits(self) -> dict[str, int | float]:
        limits = self.limits
        return {
            "max_frame_bytes": limits.max_frame_bytes,
            "max_content_chars": limits.max_content_chars,
            "max_metadata_bytes": limits.max_metadata_bytes,
            "messages_per_second": limits.messages_per_second,
            "message_burst": limits.message_burst,
            "frames_per_second": limits.frames_per_second,
            "connections_per_user": limits.connections_per_user,
            "typing_interval_ms": round(limits.typing_interval_seconds * 1000),
            "typing_expiry_ms": round(limits.typing_expiry_seconds * 1000),
        }


async def websocket_endpoint(websocket: WebSocket) -> None:
    gateway: Gateway = websocket.app.state.gateway
    await Session(websocket, gateway).run()


class Session:
    """One authenticated socket."""

    __slots__ = (
        "_close",
        "_draining",
        "_followups",
        "_frames",
        "_in_request",
        "_outbox",
        "_peers",
        "_reading",
        "_task",
        "_writer",
        "connection_id",
        "gateway",
        "user",
        "websocket",
    )

    def __init__(self, websocket: WebSocket, gateway: Gateway) -> None:
        self.websocket = websocket
        self.gateway = gateway
        self.connection_id = secrets.token_hex(8)
        self.user = User(id=0, display_name="", avatar_url=None)
        # Frames not yet handed to the socket. A writer task exists only while it is not
        # empty, so an idle socket costs no task.
        self._outbox: list[str] = []
        self._writer: asyncio.Task[None] | None = None
        self._close: tuple[int, str] | None = None
        self._frames = TokenBucket(gateway.limits.frames_per_second, gateway.limits.frame_burst)
        self._peers: dict[int, int] = {}  # conversation -> the other participant
        self._followups: list[Callable[[], Awaitable[None]]] = []
        self._draining = False
        self._in_request = False
        self._task: asyncio.Task[Any] | None = None  # the ASGI task, which reads
        self._reading = False

    @property
    def user_id(self) -> int:
        return self.user.id

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        if not self.gateway.origin_allowed(self.websocket.headers.get("origin")):
            await self.websocket.close(WS_1008_POLICY_VIOLATION)  # before accept: HTTP 403
            return
        if self.gateway.draining:
            await self.websocket.close(WS_1012_SERVICE_RESTART)
            return
        await self.websocket.accept()
        try:
            if not await self._hello():
                return
        except WebSocketDisconnect:
            return
        self.gateway.sessions.add(self)
        metrics.CONNECTIONS.inc()
        try:
            await self._serve()
        finally:
            metrics.CONNECTIONS.dec()
            self.gateway.sessions.discard(self)
            self.gateway.typing.disconnected(self.user_id, self.connection_id)
            await self.gateway.hub.remove(self)
            self.gateway.forget_user(self.user_id)
        if self._close is not None:
            await self._close_socket(*self._close)

    async def _hello(self) -> bool:
        """Read and check the first frame; answer it, or close. True once authenticated."""
        gateway = self.gateway
        try:
            async with asyncio.timeout(gateway.limits.hello_timeout_seconds):
                message = await self.websocket.receive()
        except TimeoutError:
            await self._close_socket(WS_4408_HELLO_TIMEOUT, "no hello in time")
            return False
        if message["type"] == "websocket.disconnect":
            return False
        text = message.get("text")
        try:
            frame = protocol.parse(text) if text is not None else None
        except ProtocolError:
            frame = None
        if not isinstance(frame, protocol.Hello):
            await self._close_socket(WS_4400_HELLO_EXPECTED, "the first frame must be hello")
            return False
        try:
            user_id = gateway.verifier.verify(frame.token)
        except Unauthorized as error:
            await self._send_now(_error_frame(error, frame.id))
            await self._close_socket(WS_4401_UNAUTHORIZED, str(error))
            return False
        # Register first, then read the badge: an event published in between reaches this
        # socket after the hello reply, so the total it carries is never older than them.
        self.user = User(id=user_id, display_name="", avatar_url=None)
        try:
            await gateway.hub.add(self, gateway.limits.connections_per_user)
        except TooManyConnections as error:
            refusal = TooManyConnectionsError(str(error))
            await self._send_now(_error_frame(refusal, frame.id))
            await self._close_socket(WS_4429_TOO_MANY_CONNECTIONS, "too many connections")
            return False
        try:
            self.user, unread_total = await store.ensure_user(gateway.pool, user_id)
        except DATABASE_DOWN:
            await gateway.hub.remove(self)
            await self._send_now(_error_frame(Unavailable("database unavailable"), frame.id))
            await self._close_socket(WS_1011_INTERNAL_ERROR, "database unavailable")
            return False
        except BaseException:
            await gateway.hub.remove(self)
            raise
        hello = protocol.HelloData(
            user=self.user,
            unread_total=unread_total,
            connection_id=self.connection_id,
            limits=gateway.public_limits,
        )
        # Straight to the socket: events queued since hub.add follow it through the outbox.
        await self._send_now(protocol.encode(protocol.Ok(id=frame.id, data=hello)).decode())
        return True

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
        """Queue a frame for this socket; never waits. A full queue closes the socket."""
        if self._close is not None:
            return
        if len(self._outbox) >= self.gateway.limits.send_queue:
            log.warning("closing %s: send queue full (client not reading)", self.connection_id)
            self.gateway.slow_consumers_closed += 1
            metrics.SLOW_CONSUMERS.inc()
            self.close_soon(WS_4420_SLOW_CONSUMER, "send queue full: the client is not reading")
            return
        self._outbox.append(frame)
        _count_out(frame)
        # Until _serve starts (after the hello reply), frames only queue: the reply goes first.
        if self._writer is None and self._task is not None:
            self._writer = asyncio.create_task(self._write())

    def close_soon(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
            self._outbox.clear()
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
        while not self._draining:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                self._reply_error(BinaryFrame("binary frames are not supported; send JSON text"))
                continue
            self._in_request = True
            try:
                await self._handle(text)
            finally:
                self._in_request = False

    async def _send_now(self, frame: str) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.send_text(frame)

    async def _close_socket(self, code: int, reason: str) -> None:
        # A client that does not read can block even the close frame: give up after a moment.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await self.websocket.close(code, reason)

    # --- requests --------------------------------------------------------------------------

    async def _handle(self, text: str) -> None:
        try:
            frame = protocol.parse(text)
        except ProtocolError as error:
            _FRAMES_IN_INVALID.inc()
            self._reply_error(error, error.frame_id)
            return
        _FRAMES_IN[type(frame)].inc()
        request_id.set(f"{self.connection_id}:{frame.id}")
        started = time.perf_counter()
        answered = await self._answer(frame)
        if type(frame) is protocol.MessageSend:
            metrics.SEND_SECONDS.observe(time.perf_counter() - started)
        if not answered:
            return
        # Events go out after the reply, and their failure never turns an answered,
        # committed request into an error: whoever misses an event catches up with sync.
        for followup in self._followups:
            try:
                await followup()
            except Exception:
                log.exception("could not publish the events of %s", type(frame).__name__)

    async def _answer(self, frame: protocol.ClientFrame) -> bool:
        """Run the request and queue its one reply; True if it succeeded."""
        self._followups.clear()
        try:
            if (wait := self._frames.take()) > 0:
                raise RateLimited("too many frames", wait)
            data = await _HANDLERS[type(frame)](self, frame)
        except ParleyError as error:
            self._reply_error(error, frame.id)
            return False
        except DATABASE_DOWN as error:
            log.warning("database unavailable: %r", error)
            self._reply_error(Unavailable("the database is unavailable; retry"), frame.id)
            return False
        except Exception:
            log.exception("request %s failed", type(frame).__name__)
            self._reply_error(ParleyError("internal error"), frame.id)
            return False
        if data is not _NO_REPLY:
            self.push(protocol.encode(protocol.Ok(id=frame.id, data=data)).decode())
        return True

    def after(self, followup: Callable[[], Awaitable[None]]) -> None:
        """Run ``followup`` once this request has been answered."""
        self._followups.append(followup)

    def _reply_error(self, error: ParleyError, frame_id: str | int | None = None) -> None:
        metrics.ERRORS.labels(error.code).inc()
        self.push(_error_frame(error, frame_id))

    async def _peer(self, conversation_id: int) -> int:
        peer = self._peers.get(conversation_id)
        if peer is None:
            peer = await store.peer_of(self.gateway.pool, conversation_id, self.user_id)
            self._remember(conversation_id, peer)
        return peer

    def _remember(self, conversation_id: int, peer_id: int) -> None:
        # Participants never change, so this cache never goes stale; bound it anyway.
        if len(self._peers) > 10_000:
            self._peers.clear()
        self._peers[conversation_id] = peer_id

    def _seen(self, conversation: Conversation) -> Conversation:
        self._remember(conversation.id, conversation.peer_id)
        return conversation

    async def _publish(self, user_ids: list[int], event: Any, skip_self: bool = False) -> None:
        await self.gateway.hub.publish(
            user_ids, protocol.encode(event), skip=self.connection_id if skip_self else ""
        )

    async def _push_unread(self, user_id: int, conversation_id: int) -> None:
        count, total = await store.badge(self.gateway.pool, user_id, conversation_id)
        unread = protocol.Unread(total=total, conversation_id=conversation_id, count=count)
        await self._publish([user_id], unread)


_NO_REPLY: Final = object()
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


def _error_frame(error: ParleyError, frame_id: str | int | None) -> str:
    retry_after = getattr(error, "retry_after", None)
    frame = protocol.Error(
        id=frame_id,
        code=error.code,
        message=str(error),
        retryable=error.retryable,
        retry_after_ms=None if retry_after is None else max(1, round(retry_after * 1000)),
    )
    return protocol.encode(frame).decode()


# --- handlers: one per request type ------------------------------------------------------------


async def _hello_again(session: Session, frame: protocol.Hello) -> object:
    raise InvalidFrame("already authenticated", frame.id)


async def _open(session: Session, frame: protocol.ConversationOpen) -> object:
    conversation, created = await store.open_conversation(
        session.gateway.pool, session.user_id, frame.product_id
    )
    return {"conversation": session._seen(conversation), "created": created}


async def _list(session: Session, frame: protocol.ConversationList) -> object:
    page = await store.inbox(
        session.gateway.pool, session.user_id, frame.cursor, frame.limit, frame.archived
    )
    for conversation in page.conversations:
        session._seen(conversation)
    return page


async def _get(session: Session, frame: protocol.ConversationGet) -> object:
    conversation = await store.get_conversation(
        session.gateway.pool, frame.conversation_id, session.user_id
    )
    return {"conversation": session._seen(conversation)}


async def _send(session: Session, frame: protocol.MessageSend) -> object:
    gateway = session.gateway
    if (wait := gateway.message_bucket(session.user_id).take()) > 0:
        raise RateLimited("too many messages", wait)
    request = store.SendRequest(
        conversation_id=frame.conversation_id,
        sender_id=session.user_id,
        client_msg_id=frame.client_msg_id,
        content=frame.content,
        message_type=frame.message_type,
        metadata=frame.metadata,
    )
    # The batcher commits it with whatever else is being sent, then publishes message.new to
    # both sides (a replay too: if the first attempt's gateway died between commit and
    # publish, this is the delivery) and the recipient's badge.
    sent = await gateway.sends.send(request, session.connection_id)
    message = sent.message
    assert message.recipient_id is not None
    session._remember(message.conversation_id, message.recipient_id)

    async def clear_typing() -> None:
        gateway.typing.stop(session.user_id, message.conversation_id)

    session.after(clear_typing)
    return sent


async def _history(session: Session, frame: protocol.MessageHistory) -> object:
    messages = await store.history(
        session.gateway.pool, frame.conversation_id, session.user_id, frame.before_seq, frame.limit
    )
    return {"messages": messages}


async def _read(session: Session, frame: protocol.ConversationRead) -> object:
    receipt = await store.mark_read(
        session.gateway.pool, frame.conversation_id, session.user_id, frame.up_to_seq
    )
    if receipt.advanced:
        peer = await session._peer(frame.conversation_id)

        async def publish() -> None:
            event = protocol.MessageRead(
                conversation_id=receipt.conversation_id,
                reader_id=receipt.reader_id,
                up_to_seq=receipt.up_to_seq,
                read_at=receipt.read_at,
            )
            await session._publish([peer], event)
            await session._push_unread(session.user_id, frame.conversation_id)

        session.after(publish)
    return receipt


async def _delete(session: Session, frame: protocol.ConversationDelete) -> object:
    conversation = await store.delete_for(
        session.gateway.pool, session.user_id, frame.conversation_id
    )

    async def publish() -> None:
        updated = protocol.ConversationUpdated(conversation)
        await session._publish([session.user_id], updated, skip_self=True)
        await session._push_unread(session.user_id, frame.conversation_id)

    session.after(publish)
    return {"conversation": session._seen(conversation)}


async def _archive(session: Session, frame: protocol.ConversationArchive) -> object:
    conversation = await store.archive(session.gateway.pool, session.user_id, frame.conversation_id)
    return _updated_for_my_devices(session, conversation)


async def _unarchive(session: Session, frame: protocol.ConversationUnarchive) -> object:
    conversation = await store.unarchive(
        session.gateway.pool, session.user_id, frame.conversation_id
    )
    return _updated_for_my_devices(session, conversation)


def _updated_for_my_devices(session: Session, conversation: Conversation) -> object:
    async def publish() -> None:
        updated = protocol.ConversationUpdated(conversation)
        await session._publish([session.user_id], updated, skip_self=True)

    session.after(publish)
    return {"conversation": session._seen(conversation)}


async def _typing(session: Session, frame: protocol.Typing) -> object:
    peer = await session._peer(frame.conversation_id)
    typing = session.gateway.typing
    if frame.state == "start":
        typing.start(session.user_id, frame.conversation_id, peer, session.connection_id)
    else:
        typing.stop(session.user_id, frame.conversation_id)
    return {} if frame.id is not None else _NO_REPLY


async def _sync(session: Session, frame: protocol.Sync) -> object:
    pool = session.gateway.pool
    caught_up, not_found = [], []
    for conversation_id, last_seq in frame.conversations.items():
        try:
            conversation = await store.get_conversation(pool, conversation_id, session.user_id)
            messages = await store.messages_after(
                pool, conversation_id, session.user_id, last_seq, MAX_SYNC_MESSAGES + 1
            )
        except NotFound:
            not_found.append(conversation_id)
            continue
        caught_up.append(
            {
                "conversation": session._seen(conversation),
                "messages": messages[:MAX_SYNC_MESSAGES],
                "has_more": len(messages) > MAX_SYNC_MESSAGES,
            }
        )
    total = await store.unread_total(pool, session.user_id)
    return {"conversations": caught_up, "not_found": not_found, "unread_total": total}


_HANDLERS: Final[dict[type[Any], Callable[[Session, Any], Awaitable[object]]]] = {
    protocol.Hello: _hello_again,
    protocol.ConversationOpen: _open,
    protocol.ConversationList: _list,
    protocol.ConversationGet: _get,
    protocol.MessageSend: _send,
    protocol.MessageHistory: _history,
    protocol.ConversationRead: _read,
    protocol.ConversationDelete: _delete,
    protocol.ConversationArchive: _archive,
    protocol.ConversationUnarchive: _unarchive,
    protocol.Typing: _typing,
    protocol.Sync: _sync,
}

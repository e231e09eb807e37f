"""ParleyClient: the app's side of Parley. A Connection (connection.py) keeps a socket up;
this turns frames into a view kept exact (view.py) and typed events, and offers the API."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from parley_client.connection import Connection, Token
from parley_client.events import (
    ConversationEvent,
    Event,
    Frame,
    MessageEvent,
    MessageUpdatedEvent,
    ParleyError,
    PresenceEvent,
    Status,
    StatusEvent,
)
from parley_client.finding import FindingCalls
from parley_client.offers import OfferCalls
from parley_client.presence import Presence
from parley_client.receipts import Receipts
from parley_client.stream import EventStream
from parley_client.view import View

SYNC_BATCH = 100  # conversations per sync frame, the server's bound
SEND_RETRIES = 5  # retryable refusals (rate_limited, unavailable) of one send
DISCOVER_PAGE = 50  # inbox rows read after a reconnect for conversations new to the client


def new_client_msg_id() -> str:
    return uuid.uuid4().hex


class ParleyClient(OfferCalls, FindingCalls):
    """``async with ParleyClient(url, token) as client``; ``token`` a str or an async
    function returning one (called again on every reconnect and token renewal)."""

    def __init__(
        self,
        url: str,
        token: Token,
        *,
        reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 30.0,
        request_timeout: float = 10.0,
        on_frame: Callable[[Frame], None] | None = None,
        auto_receipts: bool = True,
    ) -> None:
        self.url = url
        self.status: Status = "closed"
        self.user: Frame | None = None
        self.limits: Frame = {}
        self._view = View(self._emit, self._sync_soon)
        self._streams: set[asyncio.Queue[Event | None]] = set()
        self._typing_sent: dict[int, float] = {}
        self._ever_open = False
        self._connection = Connection(
            url,
            token,
            self,
            reconnect_delay=reconnect_delay,
            max_reconnect_delay=max_reconnect_delay,
            request_timeout=request_timeout,
            on_frame=on_frame,
        )
        # message.received for what reaches the app, unless told not to (receipts.py).
        self._receipts = Receipts(self.request, self._connection.spawn, enabled=auto_receipts)
        self._presence = Presence(self.request, self._emit)

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

    async def connect(self) -> None:
        """Connect; returns once the first hello is answered (ParleyError if refused)."""
        await self._connection.start()

    async def close(self) -> None:
        """Close for good: pending requests fail with ``closed``; event streams end."""
        await self._connection.close()
        self._receipts.cancel()
        self._view.clear_typing()
        if self.status != "closed":
            self._set_status("closed")
        for queue in list(self._streams):
            queue.put_nowait(None)

    async def request(self, frame: Frame) -> Any:
        """Send any request frame (an ``id`` is added) and return its reply's ``data``;
        across a reconnect it is sent again. Raises ParleyError for an ``error`` reply."""
        if not self._connection.started:
            raise ParleyError("closed", "connect() first, or the client was closed")
        return await self._connection.request(frame)

    # --- events -------------------------------------------------------------------------

    def events(self) -> EventStream:
        """Every event from now on: MessageEvent, MessageUpdatedEvent, ReadEvent,
        DeliveredEvent, PresenceEvent, SettingsEvent, TypingEvent, UnreadEvent,
        ConversationEvent, StatusEvent."""
        return EventStream(self._streams)

    def _emit(self, event: Event) -> None:
        if isinstance(event, MessageEvent):
            self._receipts.note(event.message, self.user)
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

    # --- what the connection reports (connection.Listener) ------------------------------

    def on_hello(self, hello: Frame) -> None:
        self.user = hello["user"]
        self.limits = hello.get("limits", {})
        self._view.apply_total(hello["unread_total"], hello["unread_version"])
        self._presence.apply_settings(hello.get("settings", {}))

    def on_open(self) -> None:
        reconnected, self._ever_open = self._ever_open, True
        self._connection.spawn(self._catch_up(reconnected))

    async def _catch_up(self, reconnected: bool) -> None:
        # Presence subscriptions belong to a socket: this one takes over the watched users.
        self._connection.spawn(self._presence.watch(list(self._presence.watched)))
        await self.sync()
        if reconnected:
            await self._discover()

    async def _discover(self) -> None:
        """After a reconnect: conversations that began while this client was away. Their
        messages so far are history (read them with history()); what comes next is
        delivered."""
        data = await self.request({"type": "conversation.list", "limit": DISCOVER_PAGE})
        for conversation in data["conversations"]:
            if not self._view.knows(conversation["id"]):
                self._view.learn(conversation)
                self._emit(ConversationEvent(conversation))

    def on_gone(self) -> None:
        self._view.clear_typing()

    def on_status(self, state: Status, code: int | None, reason: str, delay: float | None) -> None:
        self._set_status(state, code=code, reason=reason, delay=delay)

    def on_event(self, frame: Frame) -> None:
        view = self._view
        if frame["type"] == "message.new":
            message = frame["message"]
            if message.get("sender_id") is not None:
                view.stop_typing(message["conversation_id"], message["sender_id"])
            self._accept(message)
        elif frame["type"] == "message.updated":
            self._emit(MessageUpdatedEvent(frame["message"]))
        elif frame["type"] == "message.read":
            view.apply_read(frame)
        elif frame["type"] == "message.delivered":
            view.apply_delivered(frame)
        elif frame["type"] == "typing":
            view.apply_typing(frame)
        elif frame["type"] == "unread":
            view.apply_total(frame["total"], frame["version"])
            view.apply_count(frame["conversation_id"], frame["count"], frame["version"])
        elif frame["type"] == "conversation.updated":
            view.learn(frame["conversation"])
            self._emit(ConversationEvent(frame["conversation"]))
        elif frame["type"] == "presence":
            self._presence.apply(frame)
        elif frame["type"] == "user.settings":
            self._presence.apply_settings(frame["settings"])
        elif frame["type"] == "token.expiring":
            self._connection.spawn(self._connection.renew())
        elif frame["type"] == "resync":
            self._connection.spawn(self.sync())

    def _accept(self, message: Frame) -> None:
        if self._view.accept(message):
            self._connection.spawn(self._announce(message["conversation_id"]))

    async def _announce(self, conversation_id: int) -> None:
        self._emit(ConversationEvent(await self.get_conversation(conversation_id)))

    def _sync_soon(self, conversation_id: int) -> None:
        self._connection.spawn(self._sync([conversation_id]))

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

    async def edit(self, message_id: int, content: str) -> Frame:
        """Replace the text of one's own text message (within the server's edit window)."""
        data = await self.request({"type": "message.edit", "message_id": message_id,
                                   "content": content})  # fmt: skip
        self._emit(MessageUpdatedEvent(data["message"]))
        return dict(data["message"])

    async def unsend(self, message_id: int) -> Frame:
        """Take back one's own message: both sides see it unsent."""
        data = await self.request({"type": "message.unsend", "message_id": message_id})
        self._emit(MessageUpdatedEvent(data["message"]))
        return dict(data["message"])

    async def block(self, user_id: int, *, on: bool = True) -> Frame:
        """Block a user (``on=False``: unblock): no message passes between you, and your
        conversations with them leave your inbox and total."""
        return dict(await self.request({"type": f"user.{'' if on else 'un'}block",
                                        "user_id": user_id}))  # fmt: skip

    async def blocked_users(self) -> list[Frame]:
        """The people this user blocked, most recent first."""
        users: list[Frame] = (await self.request({"type": "user.blocks"}))["users"]
        return users

    async def subscribe_presence(self, user_ids: Iterable[int]) -> list[PresenceEvent]:
        """Watch whether these users are online, now and after every reconnect: what each
        is now; each change then comes as a PresenceEvent (``presence`` holds the latest)."""
        return await self._presence.subscribe(user_ids)

    async def unsubscribe_presence(self, user_ids: Iterable[int]) -> None:
        await self._presence.unsubscribe(user_ids)

    @property
    def presence(self) -> dict[int, PresenceEvent]:
        return dict(self._presence.watched)

    async def update_settings(self, *, show_presence: bool | None = None) -> Frame:
        """Change this user's settings: ``show_presence=False`` hides their presence."""
        return await self._presence.update_settings(show_presence=show_presence)

    @property
    def show_presence(self) -> bool:
        return self._presence.show_presence

    async def mute(self, conversation_id: int, until: str | None = None) -> Frame:
        """Mute a conversation until ``until`` (RFC 3339), or until unmuted."""
        frame: Frame = {"type": "conversation.mute", "conversation_id": conversation_id}
        if until is not None:
            frame["until"] = until
        return dict((await self.request(frame))["conversation"])

    async def unmute(self, conversation_id: int) -> Frame:
        frame = {"type": "conversation.unmute", "conversation_id": conversation_id}
        return dict((await self.request(frame))["conversation"])

    async def report(self, message_id: int, reason: str) -> Frame:
        """Report the other side's message for moderation; returns {"report", "created"}."""
        data: Frame = await self.request(
            {"type": "message.report", "message_id": message_id, "reason": reason}
        )
        return data

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
        if now - self._typing_sent.get(conversation_id, -1e9) < interval:
            return
        frame = {"type": "typing", "conversation_id": conversation_id, "state": "start"}
        if await self._connection.send_unanswered(frame):
            self._typing_sent[conversation_id] = now

    def _learn(self, conversation: Frame) -> None:
        self._view.learn(conversation)

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

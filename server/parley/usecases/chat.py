"""Parley's use cases, one method each: check, commit, then tell the devices through events.py.

This layer knows no transport. The WebSocket gateway (gateway/dispatch.py) and the internal
HTTP API (web/internal.py) parse their input, call a method here, and answer with what it returns.
A method's events are handed to the broker before it returns, and only after its commit: a
device that misses one catches up from Postgres with ``sync``. Every method raises
ParleyError subclasses only; a database that cannot be reached is ``Unavailable``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import asyncpg

from parley import metrics, store
from parley.config import Limits
from parley.errors import NotFound, ParleyError
from parley.fanout.events import Events
from parley.models import (
    Badge,
    CatchUp,
    Conversation,
    InboxPage,
    Message,
    Product,
    ReadReceipt,
    SentMessage,
    SyncResult,
    User,
    UserSettings,
)
from parley.safety import SafetyRules, kinds_in
from parley.store import SendRequest
from parley.store.pool import DATABASE_DOWN
from parley.usecases.base import after_commit, tell_views, use_case
from parley.usecases.batching import Batcher
from parley.usecases.changes import MessageChanges
from parley.usecases.controls import Controls
from parley.usecases.finding import Finder
from parley.usecases.moderation import Moderation
from parley.usecases.offers import Offers
from parley.usecases.receipts import Receipts
from parley.usecases.typing_tracker import TypingTracker
from parley.validation import SYNC_PAGE

log = logging.getLogger(__name__)

# A send's outcome, with its recipient's badge as the write left it (None for a replay, an
# error, or a batch that went one send at a time).
_Sent = tuple[SentMessage | ParleyError, Badge | None]

# Participants never change, so the cache below never goes stale; it is only bounded.
_MAX_CACHED_PARTIES = 100_000


class Chat:
    def __init__(
        self,
        pool: asyncpg.Pool,
        events: Events,
        limits: Limits,
        *,
        send_batch_max: int = 256,
        send_batch_in_flight: int = 1,
        safety: SafetyRules | None = None,
        safety_report_after: int = 3,
    ) -> None:
        self.pool = pool
        self.safety = safety  # what to look for in text messages; None: nothing
        self.events = events
        self.limits = limits
        self.typing_tracker = TypingTracker(
            events, limits.typing_interval_seconds, limits.typing_expiry_seconds
        )
        self._sends: Batcher[tuple[SendRequest, str], _Sent] = Batcher(
            self._write_sends, self._sends_committed, send_batch_max, send_batch_in_flight
        )
        self._parties: dict[int, tuple[int, int]] = {}  # conversation -> its two participants
        self.moderation = Moderation(pool, safety_report_after)
        self.changes = MessageChanges(
            pool, events, limits, safety, self.moderation.flagged, self.typing_tracker
        )
        self.offers = Offers(pool, events, limits)
        self.controls = Controls(pool, events)
        self.receipts = Receipts(pool, events, self._peer, self._push_badge)
        self.finder = Finder(pool)

    async def idle(self) -> None:
        """Wait until the events of everything committed so far are with the broker."""
        await self._sends.idle()
        await self.typing_tracker.idle()
        await self.moderation.idle()

    # --- a user's requests ---------------------------------------------------------------

    @use_case
    async def connect(self, user_id: int) -> tuple[User, int, int, UserSettings]:
        """A device says hello: the user (made on first sight), unread total, version, settings."""
        return await store.ensure_user(self.pool, user_id)

    @use_case
    async def open(self, user_id: int, product_id: int) -> tuple[Conversation, bool]:
        """Get or create the user's conversation about a product; True if created now."""
        conversation, created = await store.open_conversation(self.pool, user_id, product_id)
        return self._seen(conversation), created

    @use_case
    async def inbox(
        self, user_id: int, cursor: str | None, limit: int, archived: bool, query: str | None = None
    ) -> InboxPage:
        page = await store.inbox(self.pool, user_id, cursor, limit, archived, query)
        for conversation in page.conversations:
            self._seen(conversation)
        return page

    @use_case
    async def get(self, user_id: int, conversation_id: int) -> Conversation:
        return self._seen(await store.get_conversation(self.pool, conversation_id, user_id))

    @use_case
    async def send(
        self,
        user_id: int,
        conversation_id: int,
        *,
        client_msg_id: str,
        content: str,
        message_type: str = "text",
        metadata: dict[str, Any] | None = None,
        connection_id: str = "",
    ) -> SentMessage:
        """Store the message (in one commit with whatever else is being sent); then both
        sides get message.new (a replay too: if the first attempt's gateway died between
        commit and publish, this is the delivery) and the recipient their badge. The sender's
        typing indicator ends, on every gateway, and its stop reaches the peer first. An
        offer goes alone (offers.py): it may supersede the open one."""
        if message_type == "offer":
            self.typing_tracker.stop(user_id, conversation_id)
            return await self.offers.make(
                user_id,
                conversation_id,
                client_msg_id=client_msg_id,
                content=content,
                metadata={} if metadata is None else metadata,
                connection_id=connection_id,
            )
        request = SendRequest(
            conversation_id=conversation_id,
            sender_id=user_id,
            client_msg_id=client_msg_id,
            content=content,
            message_type=message_type,
            metadata={} if metadata is None else metadata,
            safety=kinds_in(self.safety, message_type, content),
        )
        result, _ = await self._sends.submit((request, connection_id))
        if isinstance(result, ParleyError):
            raise result
        message = result.message
        assert message.recipient_id is not None
        self._remember(conversation_id, (user_id, message.recipient_id))
        if message.safety and not result.replayed:
            self.moderation.flagged(message)
        return result

    async def read(
        self, user_id: int, conversation_id: int, up_to_seq: int, connection_id: str = ""
    ) -> ReadReceipt:
        """``conversation.read`` (usecases/receipts.py)."""
        return await self.receipts.read(user_id, conversation_id, up_to_seq, connection_id)

    @use_case
    async def delete(
        self, user_id: int, conversation_id: int, connection_id: str = ""
    ) -> Conversation:
        """Hide the conversation for the user only; their other devices follow."""
        conversation = await store.delete_for(self.pool, user_id, conversation_id)
        await after_commit(self._deleted(conversation, connection_id))
        return self._seen(conversation)

    async def _deleted(self, conversation: Conversation, connection_id: str) -> None:
        await self.events.conversation_updated(conversation, skip=connection_id)
        await self._push_badge(conversation.viewer_id, conversation.id)

    @use_case
    async def archive(
        self, user_id: int, conversation_id: int, connection_id: str = ""
    ) -> Conversation:
        conversation = await store.archive(self.pool, user_id, conversation_id)
        await after_commit(self.events.conversation_updated(conversation, connection_id))
        return self._seen(conversation)

    @use_case
    async def unarchive(
        self, user_id: int, conversation_id: int, connection_id: str = ""
    ) -> Conversation:
        conversation = await store.unarchive(self.pool, user_id, conversation_id)
        await after_commit(self.events.conversation_updated(conversation, connection_id))
        return self._seen(conversation)

    @use_case
    async def typing(
        self,
        user_id: int,
        conversation_id: int,
        state: Literal["start", "stop"],
        connection_id: str = "",
    ) -> None:
        """The user is typing (or stopped) in a conversation they are part of."""
        peer = await self._peer(user_id, conversation_id)
        if state == "start":
            if await store.blocked_between(self.pool, user_id, peer):
                return  # neither side of a block learns the other is typing
            self.typing_tracker.start(user_id, conversation_id, peer, connection_id)
        else:
            self.typing_tracker.stop(user_id, conversation_id)

    def disconnected(self, user_id: int, connection_id: str) -> None:
        """A socket closed: what it was typing stops."""
        self.typing_tracker.disconnected(user_id, connection_id)

    @use_case
    async def sync(self, user_id: int, last_seqs: Mapping[int, int]) -> SyncResult:
        """Catch up after a reconnect: for each conversation, its state and up to SYNC_PAGE
        messages after the seq the device has; conversations not the user's are not_found.
        All of it is read in one snapshot, so the badge version fits every count in it."""
        caught_up, not_found = [], []
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            for conversation_id, last_seq in last_seqs.items():
                try:
                    conversation = await store.get_conversation(conn, conversation_id, user_id)
                    messages = await store.messages_after(
                        conn, conversation_id, user_id, last_seq, SYNC_PAGE + 1
                    )
                except NotFound:
                    not_found.append(conversation_id)
                    continue
                caught_up.append(
                    CatchUp(
                        conversation=self._seen(conversation),
                        messages=messages[:SYNC_PAGE],
                        has_more=len(messages) > SYNC_PAGE,
                    )
                )
            total, version = await store.badge_of(conn, user_id)
        return SyncResult(caught_up, not_found, unread_total=total, unread_version=version)

    # --- the marketplace's requests (internal API) -----------------------------------------

    @use_case
    async def update_user(self, user_id: int, display_name: str, avatar_url: str | None) -> User:
        return await store.upsert_user(self.pool, user_id, display_name, avatar_url)

    @use_case
    async def product(self, product_id: int) -> Product:
        return await store.get_product(self.pool, product_id)

    @use_case
    async def update_product(
        self,
        product_id: int,
        seller_id: int,
        title: str,
        *,
        price_cents: int | None,
        currency: str,
        image_url: str | None,
        status: str,
    ) -> tuple[Product, list[int]]:
        """Create or update a listing. Sold or deleted archives its conversations, relisted
        restores them; each side of each gets conversation.updated with their own view."""
        product, changed = await store.upsert_product(
            self.pool,
            product_id,
            seller_id,
            title,
            price_cents=price_cents,
            currency=currency,
            image_url=image_url,
            status=status,
        )
        await after_commit(tell_views(self.pool, self.events, changed))
        return product, changed

    @use_case
    async def post_system_message(
        self,
        conversation_id: int,
        *,
        client_msg_id: str,
        content: str,
        metadata: Mapping[str, Any],
    ) -> SentMessage:
        """A marketplace notice in a conversation: both sides get message.new (a replay
        publishes again, as a user's does); it counts for neither side's badge."""
        sent = await store.send_message(
            self.pool,
            conversation_id=conversation_id,
            sender_id=None,
            client_msg_id=client_msg_id,
            content=content,
            message_type="system",
            metadata=metadata,
            limits=self.limits,
        )
        await after_commit(self._system_message_committed(sent.message))
        return sent

    async def _system_message_committed(self, message: Message) -> None:
        # A side that deleted the conversation does not see it come back for a notice, so
        # it gets no event for it either.
        shown = await store.participants_shown(self.pool, message.conversation_id)
        await self.events.system_message(message, shown)

    # --- after a commit --------------------------------------------------------------------

    async def _write_sends(self, batch: list[tuple[SendRequest, str]]) -> list[_Sent]:
        metrics.SEND_BATCH.observe(len(batch))
        results, badges = await store.send_many(
            self.pool, [request for request, _ in batch], self.limits
        )
        outcomes: list[_Sent] = []
        for result in results:
            badge = None
            if isinstance(result, SentMessage) and not result.replayed:
                message = result.message
                badge = badges.get((message.recipient_id or 0, message.conversation_id))
            outcomes.append((result, badge))
        return outcomes

    async def _sends_committed(
        self, batch: list[tuple[SendRequest, str]], outcomes: list[_Sent]
    ) -> None:
        """message.new to both sides of each message (not the sending socket), after the
        typing stop of each sender who was typing there, then each recipient's badge (as the
        write returned it): all in one hand-over to the broker, which the senders' replies
        wait for. Badges the write did not return are read here; a database gone by then
        costs the badges only (the devices' next badge, or sync, brings them)."""
        sent: list[tuple[Message, str]] = []
        typing_ended: list[tuple[int, int, int]] = []
        badges: dict[tuple[int, int], Badge] = {}
        unread: list[tuple[int, int]] = []
        for (request, connection_id), (result, badge) in zip(batch, outcomes, strict=True):
            if isinstance(result, SentMessage):
                message = result.message
                assert message.recipient_id is not None
                sent.append((message, connection_id))
                peer = self.typing_tracker.take(request.sender_id, message.conversation_id)
                if peer is not None:
                    typing_ended.append((request.sender_id, message.conversation_id, peer))
                if badge is not None:
                    badges[(badge.user_id, badge.conversation_id)] = badge
                elif not result.replayed:
                    unread.append((message.recipient_id, message.conversation_id))
        unread = [pair for pair in dict.fromkeys(unread) if pair not in badges]
        if unread:
            try:
                badges.update(
                    ((badge.user_id, badge.conversation_id), badge)
                    for badge in await store.badges(self.pool, unread)
                )
            except DATABASE_DOWN as error:
                log.warning("badges of a committed batch not read: %r", error)
        await self.events.messages_new(
            sent, typing_ended, self.typing_tracker.origin, list(badges.values())
        )

    async def _push_badge(self, user_id: int, conversation_id: int) -> None:
        await self.events.unread(await store.badges(self.pool, [(user_id, conversation_id)]))

    # --- who is in a conversation ----------------------------------------------------------

    async def _peer(self, user_id: int, conversation_id: int) -> int:
        """The other participant; NotFound for outsiders, exactly as for unknown ids."""
        parties = self._parties.get(conversation_id)
        if parties is None:
            parties = await store.participants(self.pool, conversation_id)
            self._remember(conversation_id, parties)
        if user_id not in parties:
            raise NotFound(f"conversation {conversation_id} not found")
        return parties[1] if parties[0] == user_id else parties[0]

    def _seen(self, conversation: Conversation) -> Conversation:
        self._remember(conversation.id, (conversation.buyer_id, conversation.seller_id))
        return conversation

    def _remember(self, conversation_id: int, parties: tuple[int, int]) -> None:
        if len(self._parties) >= _MAX_CACHED_PARTIES:
            self._parties.clear()
        self._parties[conversation_id] = parties

"""The records the store returns and the protocol sends: plain, immutable, cheap to encode."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

MessageType = Literal["text", "image", "offer", "system"]
MESSAGE_TYPES: frozenset[str] = frozenset({"text", "image", "offer", "system"})
Role = Literal["buyer", "seller"]
ProductStatus = Literal["active", "reserved", "sold", "deleted"]
PRODUCT_STATUSES: frozenset[str] = frozenset({"active", "reserved", "sold", "deleted"})
OfferStatus = Literal["open", "accepted", "declined", "countered", "withdrawn", "superseded"]


class User(msgspec.Struct, frozen=True):
    id: int
    display_name: str
    avatar_url: str | None


class UserSettings(msgspec.Struct, frozen=True):
    """A user's own settings. ``show_presence`` false hides their online state and last
    seen from everyone."""

    show_presence: bool = True


class Product(msgspec.Struct, frozen=True):
    id: int
    seller_id: int
    title: str
    price_cents: int | None
    currency: str
    image_url: str | None
    status: ProductStatus
    reserved_for: int | None = None  # the buyer whose accepted offer reserved it


class Message(msgspec.Struct, frozen=True):
    id: int
    conversation_id: int
    seq: int
    sender_id: int | None
    recipient_id: int | None
    message_type: MessageType
    content: str
    metadata: dict[str, Any]
    client_msg_id: str
    is_read: bool
    read_at: datetime | None
    created_at: datetime
    # Set once the sender edits or unsends it (an unsent message has no content any more).
    edited_at: datetime | None = None
    unsent_at: datetime | None = None
    # An offer's state (sql/007): open until accepted, declined, countered, withdrawn or
    # superseded by a newer offer; None for every other type.
    offer_status: OfferStatus | None = None
    # Off-platform contact found in a text message (parley/safety.py): "phone", "email",
    # "link", "iban", "payment". The recipient's app warns under it; it is delivered anyway.
    safety: list[str] = []


class Conversation(msgspec.Struct, frozen=True):
    """A conversation as one participant sees it: their role, badge, watermarks and folder."""

    id: int
    product_id: int
    buyer_id: int
    seller_id: int
    status: Literal["active", "archived"]
    last_seq: int
    last_message_text: str | None
    last_message_type: MessageType | None
    last_message_sender_id: int | None
    last_message_at: datetime | None
    role: Role
    unread_count: int
    unread_version: int  # the version of the viewer's badge that unread_count is true at
    last_read_seq: int
    peer_last_read_seq: int
    peer_delivered_seq: int  # how far the other side's devices have the viewer's messages
    cleared_seq: int
    archived: bool
    deleted: bool
    created_at: datetime
    updated_at: datetime
    product: Product
    peer: User
    # The viewer's controls: muted until then (its count leaves their total), and whether
    # they blocked the peer (then it is not in their inbox).
    muted_until: datetime | None = None
    blocked: bool = False

    @property
    def viewer_id(self) -> int:
        """The participant this view belongs to."""
        return self.buyer_id if self.role == "buyer" else self.seller_id

    @property
    def peer_id(self) -> int:
        return self.seller_id if self.role == "buyer" else self.buyer_id


class InboxPage(msgspec.Struct, frozen=True):
    conversations: list[Conversation]
    next_cursor: str | None


class SentMessage(msgspec.Struct, frozen=True):
    message: Message
    replayed: bool  # True when client_msg_id matched an earlier send: nothing was written


class OfferOutcome(msgspec.Struct, frozen=True):
    """What one answer to an offer changed, all in one commit."""

    offer: Message  # the offer, in its new state
    messages: list[Message]  # new in its conversation, in seq order: the notice, the counter
    # Other buyers' open offers an accept declined, each with the notice that says so.
    declined: list[tuple[Message, Message]] = []
    product: Product | None = None  # the listing, when its status changed (reserved)
    conversations: list[int] = []  # the listing's conversations, when its status changed


class ReadReceipt(msgspec.Struct, frozen=True):
    conversation_id: int
    reader_id: int
    up_to_seq: int  # the reader's watermark after the call
    read_at: datetime
    messages_marked: int  # rows whose is_read changed now
    unread_count: int  # the reader's badge for this conversation afterwards
    unread_version: int  # the version of the reader's badge that unread_count is true at
    advanced: bool  # False when the watermark was already at or past up_to_seq
    # Set when this read moved the reader's delivered watermark too (a read implies delivered).
    delivered_at: datetime | None = None


class DeliveryReceipt(msgspec.Struct, frozen=True):
    """A side's delivered watermark: what reached one of its devices (the second tick)."""

    conversation_id: int
    recipient_id: int  # whose devices the messages reached
    sender_id: int  # the other side, whose messages they are
    up_to_seq: int  # the watermark after the call
    delivered_at: datetime | None  # when it last moved; None if it never has
    advanced: bool  # False when the watermark was already at or past up_to_seq


class Badge(msgspec.Struct, frozen=True):
    """A user's unread count in one conversation and in all of them, and the version of
    their badge these were true at: read together, so they were true together."""

    user_id: int
    conversation_id: int
    count: int
    total: int
    version: int


ReportStatus = Literal["open", "resolved"]
REPORT_STATUSES: tuple[ReportStatus, ...] = ("open", "resolved")


class Report(msgspec.Struct, frozen=True):
    """A participant's report of a message of the other side, for moderation."""

    id: int
    message_id: int
    reporter_id: int | None  # None for Parley's own reports (``reporter: "system"``)
    reason: str
    status: ReportStatus
    resolution: str | None
    created_at: datetime
    resolved_at: datetime | None
    reporter: Literal["user", "system"] = "user"


NotificationStatus = Literal["pending", "delivered", "skipped", "failed"]


class Notification(msgspec.Struct, frozen=True):
    """An offline notification of the outbox (sql/011), as the internal API shows it: its
    window, its delivery, and the exact body every attempt sends (null when skipped)."""

    id: int
    user_id: int
    status: NotificationStatus
    window_opened_at: datetime
    created_at: datetime  # when the window closed
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    skip_reason: str | None
    finished_at: datetime | None
    body: str | None


class MessageVersion(msgspec.Struct, frozen=True):
    """A message as it was before an edit or unsend."""

    change: Literal["edit", "unsend"]
    content: str
    metadata: dict[str, Any]
    changed_at: datetime


class ReportCase(msgspec.Struct, frozen=True):
    """What a moderator needs: the report, the message as it is now, and every earlier
    version of it."""

    report: Report
    message: Message
    versions: list[MessageVersion]


class CounterDrift(msgspec.Struct, frozen=True):
    """A cached value that differs from a recount: of a conversation, or of a user's badge
    (conversation_id 0 then, and user_id set)."""

    conversation_id: int
    field: str
    stored: int
    actual: int
    user_id: int | None = None


class CatchUp(msgspec.Struct, frozen=True):
    """What one conversation missed: its current state and the messages after a seq."""

    conversation: Conversation
    messages: list[Message]
    has_more: bool  # more than one page came after: sync again from the last seq


class SyncResult(msgspec.Struct, frozen=True):
    """One moment of the user's conversations: everything here was read in one snapshot."""

    conversations: list[CatchUp]
    not_found: list[int]  # not the caller's, or no such conversation: the two look the same
    unread_total: int
    unread_version: int

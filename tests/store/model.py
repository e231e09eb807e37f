"""The in-memory model the store is checked against (test_model.py): conversations with their
messages, each side's watermark, folder and mute, offers with their state, listings with
their status, and who blocked whom. Plain Python, no I/O: what the data rules of
docs/data.md say should be true."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from parley.errors import (
    Blocked,
    NotFound,
    NotYours,
    OfferNotOpen,
    OwnOffer,
    ParleyError,
    ProductUnavailable,
)

USERS = (701, 702, 703, 704)
PRODUCTS = {7010: 701, 7020: 702, 7030: 703}  # product -> seller


@dataclass
class ModelMessage:
    seq: int
    sender: int | None  # None: a system notice, to nobody in particular
    recipient: int | None
    content: str
    client_msg_id: str
    is_read: bool = False
    unsent: bool = False
    kind: str = "text"  # text, offer or system
    offer_status: str | None = None
    amount: int = 0


@dataclass
class ModelSide:
    last_read: int = 0
    cleared: int = 0
    deleted: bool = False
    archived: bool = False
    muted: bool = False


@dataclass
class ModelConversation:
    id: int
    product: int
    buyer: int
    seller: int
    messages: list[ModelMessage] = field(default_factory=list)
    last_at: datetime | None = None
    status: str = "active"
    sides: dict[int, ModelSide] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sides = {self.buyer: ModelSide(), self.seller: ModelSide()}

    def unread(self, user: int) -> int:
        cleared = self.sides[user].cleared
        return sum(
            1 for m in self.messages if m.recipient == user and not m.is_read and m.seq > cleared
        )

    def peer(self, user: int) -> int:
        return self.seller if user == self.buyer else self.buyer

    def open_offer(self) -> ModelMessage | None:
        return next((m for m in self.messages if m.offer_status == "open"), None)

    def add(self, message: ModelMessage, at: datetime) -> None:
        """A message stored: time never goes back; a user's message brings the conversation
        back to both sides' inbox."""
        assert message.seq == len(self.messages) + 1
        assert self.last_at is None or at >= self.last_at
        self.messages.append(message)
        self.last_at = at
        if message.sender is not None:
            for side in self.sides.values():
                side.deleted = side.archived = False


@dataclass
class Model:
    conversations: dict[int, ModelConversation] = field(default_factory=dict)
    listings: dict[int, str] = field(default_factory=lambda: dict.fromkeys(PRODUCTS, "active"))
    reserved_for: dict[int, int] = field(default_factory=dict)
    blocks: set[tuple[int, int]] = field(default_factory=set)  # (blocker, blocked)
    # Each user's badge version: one more for every step that moves their counters or what
    # is silenced for them.
    versions: dict[int, int] = field(default_factory=lambda: dict.fromkeys(USERS, 0))
    raw_totals: dict[int, int] = field(default_factory=lambda: dict.fromkeys(USERS, 0))

    def blocked(self, first: int, second: int) -> bool:
        return (first, second) in self.blocks or (second, first) in self.blocks

    def silenced(self, conversation: ModelConversation, user: int) -> bool:
        peer = conversation.peer(user)
        return conversation.sides[user].muted or (user, peer) in self.blocks

    def shown_total(self, user: int) -> int:
        """The total a device shows: every conversation's count but the silenced ones."""
        return sum(
            c.unread(user)
            for c in self.conversations.values()
            if user in c.sides and not self.silenced(c, user)
        )

    def counters_moved(self) -> None:
        """The step just taken was one transaction: each user whose counters it moved has a
        badge one version newer."""
        for user in USERS:
            total = sum(c.unread(user) for c in self.conversations.values() if user in c.sides)
            if total != self.raw_totals[user]:
                self.raw_totals[user] = total
                self.versions[user] += 1

    def inbox(self, user: int, archived: bool) -> list[int]:
        listed = [
            c
            for c in self.conversations.values()
            if user in c.sides
            and c.last_at is not None
            and not c.sides[user].deleted
            and (user, c.peer(user)) not in self.blocks
            and (c.sides[user].archived or c.status == "archived") == archived
        ]
        listed.sort(key=lambda c: (c.last_at, c.id), reverse=True)
        return [c.id for c in listed]

    def answer_refusal(
        self, conversation: ModelConversation, offer: ModelMessage, actor: int, action: str
    ) -> type[ParleyError] | None:
        """What an answer to ``offer`` by ``actor`` is refused with, in the store's order."""
        if offer.seq <= conversation.sides[actor].cleared:
            return NotFound
        if action == "withdraw" and offer.sender != actor:
            return NotYours
        if action != "withdraw" and offer.sender == actor:
            return OwnOffer
        if self.listings[conversation.product] != "active":
            return ProductUnavailable
        if offer.offer_status != "open":
            return OfferNotOpen
        if self.blocked(conversation.buyer, conversation.seller):
            return Blocked
        return None

    def visible_history(self, conversation: ModelConversation, user: int) -> list[tuple[int, str]]:
        cleared = conversation.sides[user].cleared
        return [(m.seq, m.content) for m in conversation.messages if m.seq > cleared]

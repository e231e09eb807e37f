"""What the client hands the app: typed events, and the error a refused request raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Frame = dict[str, Any]
Status = Literal["connecting", "open", "reconnecting", "closed"]


class ParleyError(Exception):
    """An ``error`` reply (``code`` is the protocol's stable code), or ``closed`` when the
    client closed with the request unanswered."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after_ms = retry_after_ms


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A message, new to this client: each once, in seq order within its conversation.
    The client's own sends come here too, so one handler renders every message."""

    message: Frame


@dataclass(frozen=True, slots=True)
class MessageUpdatedEvent:
    """A message edited or unsent (by anyone, this client included): replace it by id."""

    message: Frame


@dataclass(frozen=True, slots=True)
class ReadEvent:
    """``reader_id`` has read ``conversation_id`` up to ``up_to_seq`` (never moves back)."""

    conversation_id: int
    reader_id: int
    up_to_seq: int
    read_at: str


@dataclass(frozen=True, slots=True)
class DeliveredEvent:
    """The other side's devices have this client's messages in ``conversation_id`` up to
    ``up_to_seq`` (the second tick; never moves back)."""

    conversation_id: int
    recipient_id: int
    up_to_seq: int
    delivered_at: str | None


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """A watched user's presence changed. ``last_seen_at`` is None while online, and for
    anyone who may not be seen (no shared conversation, a block, hidden presence)."""

    user_id: int
    online: bool
    last_seen_at: str | None


@dataclass(frozen=True, slots=True)
class SettingsEvent:
    """This user's settings changed, here or on another of their devices."""

    show_presence: bool


@dataclass(frozen=True, slots=True)
class TypingEvent:
    """``typing`` False ends the indicator: a stop, its expiry, a message, a disconnect."""

    conversation_id: int
    user_id: int
    typing: bool


@dataclass(frozen=True, slots=True)
class UnreadEvent:
    """The badge at ``version``; ``conversation_id``/``count`` set when one conversation's
    count changed. Versions only grow: an older value is never handed out."""

    total: int
    version: int
    conversation_id: int | None = None
    count: int | None = None


@dataclass(frozen=True, slots=True)
class ConversationEvent:
    """The user's current view of a conversation (after a sync, a change, a new one)."""

    conversation: Frame


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """The connection's state; ``code``/``reason`` of the socket that went, ``delay`` until
    the next attempt when reconnecting."""

    state: Status
    code: int | None = None
    reason: str = ""
    delay: float | None = None


Event = (
    MessageEvent
    | MessageUpdatedEvent
    | ReadEvent
    | DeliveredEvent
    | PresenceEvent
    | SettingsEvent
    | TypingEvent
    | UnreadEvent
    | ConversationEvent
    | StatusEvent
)

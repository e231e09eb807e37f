"""The events a server pushes to sockets, as typed frames (docs/protocol.md lists them;
tests/test_protocol.py checks it lists exactly these). Encoded with protocol.encode."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal, get_args

import msgspec

from parley.models import Conversation, Message, UserSettings


class MessageNew(msgspec.Struct, tag="message.new", tag_field="type", frozen=True):
    message: Message


class MessageUpdated(msgspec.Struct, tag="message.updated", tag_field="type", frozen=True):
    message: Message


class MessageRead(msgspec.Struct, tag="message.read", tag_field="type", frozen=True):
    conversation_id: int
    reader_id: int
    up_to_seq: int
    read_at: datetime


class MessageDelivered(msgspec.Struct, tag="message.delivered", tag_field="type", frozen=True):
    conversation_id: int
    recipient_id: int
    up_to_seq: int
    delivered_at: datetime | None


class PresenceEvent(msgspec.Struct, tag="presence", tag_field="type", frozen=True):
    """A watched user's presence changed, as the receiving socket may see it."""

    user_id: int
    online: bool
    last_seen_at: datetime | None


class SettingsChanged(msgspec.Struct, tag="user.settings", tag_field="type", frozen=True):
    """The user's settings, changed from another of their devices."""

    settings: UserSettings


class TypingEvent(msgspec.Struct, tag="typing", tag_field="type", frozen=True):
    conversation_id: int
    user_id: int
    state: Literal["start", "stop"]
    expires_in_ms: int


class Unread(msgspec.Struct, tag="unread", tag_field="type", frozen=True):
    total: int
    conversation_id: int
    count: int
    version: int  # grows with every change of the user's counters: apply only newer ones


class ConversationUpdated(
    msgspec.Struct, tag="conversation.updated", tag_field="type", frozen=True
):
    conversation: Conversation


class Resync(msgspec.Struct, tag="resync", tag_field="type", frozen=True):
    """Live events may have been missed (the broker was unreachable): send `sync`."""


class TokenExpiring(msgspec.Struct, tag="token.expiring", tag_field="type", frozen=True):
    """The socket's token runs out soon: send `hello` again with a fresh one."""

    expires_at: datetime
    expires_in_ms: int


ServerEvent = (
    MessageNew
    | MessageUpdated
    | MessageRead
    | MessageDelivered
    | PresenceEvent
    | SettingsChanged
    | TypingEvent
    | Unread
    | ConversationUpdated
    | Resync
    | TokenExpiring
)
SERVER_EVENT_TYPES: Final[tuple[str, ...]] = tuple(
    str(cls.__struct_config__.tag) for cls in get_args(ServerEvent)
)

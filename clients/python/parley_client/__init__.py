"""Parley's Python SDK: a chat client that keeps a device's view exact across disconnects."""

from parley_client.client import ParleyClient, new_client_msg_id
from parley_client.events import (
    ConversationEvent,
    DeliveredEvent,
    Event,
    MessageEvent,
    MessageUpdatedEvent,
    ParleyError,
    PresenceEvent,
    ReadEvent,
    SettingsEvent,
    StatusEvent,
    TypingEvent,
    UnreadEvent,
)
from parley_client.stream import EventStream

__all__ = [
    "ConversationEvent",
    "DeliveredEvent",
    "Event",
    "EventStream",
    "MessageEvent",
    "MessageUpdatedEvent",
    "ParleyClient",
    "ParleyError",
    "PresenceEvent",
    "ReadEvent",
    "SettingsEvent",
    "StatusEvent",
    "TypingEvent",
    "UnreadEvent",
    "new_client_msg_id",
]

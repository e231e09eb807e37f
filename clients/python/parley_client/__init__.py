"""Parley's Python SDK: a chat client that keeps a device's view exact across disconnects."""

from parley_client.client import EventStream, ParleyClient, new_client_msg_id
from parley_client.events import (
    ConversationEvent,
    Event,
    MessageEvent,
    MessageUpdatedEvent,
    ParleyError,
    ReadEvent,
    StatusEvent,
    TypingEvent,
    UnreadEvent,
)

__all__ = [
    "ConversationEvent",
    "Event",
    "EventStream",
    "MessageEvent",
    "MessageUpdatedEvent",
    "ParleyClient",
    "ParleyError",
    "ReadEvent",
    "StatusEvent",
    "TypingEvent",
    "UnreadEvent",
    "new_client_msg_id",
]

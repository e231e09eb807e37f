"""Every event Parley sends to devices is built here and handed to the broker: this module is
the only publisher (tests/test_layers.py checks it).

The use cases (chat.py) call one method per kind of change, after it has committed. An
event is encoded once and published on the channel of each user it concerns; every gateway
process holding a socket of that user pushes it (hub.py). ``skip`` is the connection id of
the socket that caused the event: it has its reply already and gets no copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import msgspec

from parley import metrics, protocol, server_events
from parley.fanout.broker import Broker
from parley.fanout.hub import (
    close_envelope,
    envelope,
    note_envelope,
    presence_channel,
    user_channel,
)
from parley.models import (
    Badge,
    Conversation,
    DeliveryReceipt,
    Message,
    ReadReceipt,
    UserSettings,
)


class PresenceChange(msgspec.Struct, frozen=True):
    """What travels on a user's presence channel (to the gateways watching them): their
    state at ``version`` (presence/backend.py)."""

    online: bool
    version: int


decode_presence_change = msgspec.json.Decoder(PresenceChange).decode


class TypingNote(msgspec.Struct, frozen=True):
    """For the other gateway processes holding the typist's sockets (typing_tracker.py)."""

    state: Literal["start", "stop"]
    conversation_id: int
    peer_id: int
    origin: str  # the process that sent it, which ignores its own notes


_encode_note = msgspec.json.Encoder().encode


def _addressed(
    user_ids: Iterable[int], event: msgspec.Struct | bytes, skip: str = ""
) -> list[tuple[str, bytes]]:
    """``event``, encoded once, on the channel of each user, for every socket but ``skip``."""
    payload = envelope(skip, event if isinstance(event, bytes) else protocol.encode(event))
    return [(user_channel(user), payload) for user in user_ids]


class Events:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def publish(
        self, user_ids: Iterable[int], event: msgspec.Struct | bytes, skip: str = ""
    ) -> None:
        """Send ``event`` to every socket of each user, on any gateway, except ``skip``."""
        await self._publish(_addressed(user_ids, event, skip))

    async def messages_new(
        self,
        sent: Sequence[tuple[Message, str]],
        typing_ended: Iterable[tuple[int, int, int]] = (),
        origin: str = "",
        badges: Iterable[Badge] = (),
    ) -> None:
        """message.new to both participants of each (message, skip), and then the recipients'
        ``badges``, in one hand-over (one round trip to Redis). Each (typist, conversation,
        peer) in ``typing_ended`` stopped typing by sending: the peer gets that ``typing``
        stop before the message itself."""
        batch = [
            message
            for typist, conversation_id, peer_id in typing_ended
            for message in self._typing(typist, conversation_id, peer_id, "stop", 0, origin)
        ]
        for message, skip in sent:
            assert message.sender_id is not None, "users' messages only"
            assert message.recipient_id is not None, "users' messages only"
            parties = (message.sender_id, message.recipient_id)
            batch += _addressed(parties, server_events.MessageNew(message=message), skip)
        await self._publish(batch + self._unread(badges))

    async def system_message(
        self, message: Message, user_ids: Iterable[int], skip: str = ""
    ) -> None:
        """message.new of a notice, to the sides it shows for (every socket but ``skip``)."""
        await self.publish(user_ids, server_events.MessageNew(message=message), skip)

    async def message_updated(self, message: Message, skip: str = "") -> None:
        """An edited or unsent message, to every socket of both participants but ``skip``."""
        assert message.sender_id is not None, "users' messages only"
        assert message.recipient_id is not None, "users' messages only"
        parties = (message.sender_id, message.recipient_id)
        await self.publish(parties, server_events.MessageUpdated(message=message), skip)

    async def unread(self, badges: Iterable[Badge]) -> None:
        """Each user's badge after their counters changed: this conversation's count, the
        total, and the version they were both true at."""
        await self._publish(self._unread(badges))

    def _unread(self, badges: Iterable[Badge]) -> list[tuple[str, bytes]]:
        batch: list[tuple[str, bytes]] = []
        for badge in badges:
            event = server_events.Unread(
                total=badge.total,
                conversation_id=badge.conversation_id,
                count=badge.count,
                version=badge.version,
            )
            batch += _addressed([badge.user_id], event)
        return batch

    async def message_read(self, receipt: ReadReceipt, peer_id: int, skip: str = "") -> None:
        """The read receipt, to the side whose messages were read and to the reader's own
        devices (except ``skip``, the one that read), so that every device agrees."""
        event = server_events.MessageRead(
            conversation_id=receipt.conversation_id,
            reader_id=receipt.reader_id,
            up_to_seq=receipt.up_to_seq,
            read_at=receipt.read_at,
        )
        await self.publish([peer_id, receipt.reader_id], event, skip)

    async def message_delivered(self, receipt: DeliveryReceipt) -> None:
        """The delivered receipt (the second tick), to every device of the side whose
        messages reached the other side."""
        await self.messages_delivered([receipt])

    async def messages_delivered(self, receipts: Iterable[DeliveryReceipt]) -> None:
        """Several delivered receipts, handed to the broker together."""
        batch: list[tuple[str, bytes]] = []
        for receipt in receipts:
            event = server_events.MessageDelivered(
                conversation_id=receipt.conversation_id,
                recipient_id=receipt.recipient_id,
                up_to_seq=receipt.up_to_seq,
                delivered_at=receipt.delivered_at,
            )
            batch += _addressed([receipt.sender_id], event)
        await self._publish(batch)

    async def presence_changed(self, changes: list[tuple[int, PresenceChange]]) -> None:
        """Each user's presence state, to the gateways with sockets watching them."""
        await self._publish(
            [(presence_channel(user), _encode_note(change)) for user, change in changes]
        )

    async def settings_changed(self, user_id: int, settings: UserSettings, skip: str = "") -> None:
        """The user's settings, to their devices but ``skip`` (the one that changed them)."""
        await self.publish([user_id], server_events.SettingsChanged(settings=settings), skip)

    async def close_user(self, user_id: int, code: int, reason: str) -> None:
        """Close every socket of ``user_id``, on every gateway."""
        await self._publish([(user_channel(user_id), close_envelope(code, reason))])

    async def conversation_updated(self, conversation: Conversation, skip: str = "") -> None:
        """A participant's own view of a conversation, to that participant."""
        await self.publish(
            [conversation.viewer_id], server_events.ConversationUpdated(conversation), skip
        )

    async def typing(
        self,
        user_id: int,
        conversation_id: int,
        peer_id: int,
        state: Literal["start", "stop"],
        expires_in_ms: int,
        origin: str = "",
    ) -> None:
        """``user_id`` started or stopped typing: the event to the other participant, and a
        note to the gateways holding the typist's own sockets."""
        await self._publish(
            self._typing(user_id, conversation_id, peer_id, state, expires_in_ms, origin)
        )

    def _typing(
        self,
        user_id: int,
        conversation_id: int,
        peer_id: int,
        state: Literal["start", "stop"],
        expires_in_ms: int,
        origin: str,
    ) -> list[tuple[str, bytes]]:
        # The note first: a peer that saw the event knows the note is on its way too.
        note = TypingNote(state, conversation_id, peer_id, origin)
        event = server_events.TypingEvent(
            conversation_id=conversation_id,
            user_id=user_id,
            state=state,
            expires_in_ms=expires_in_ms,
        )
        return [
            (user_channel(user_id), note_envelope(_encode_note(note))),
            *_addressed([peer_id], event),
        ]

    async def _publish(self, messages: list[tuple[str, bytes]]) -> None:
        if messages:
            metrics.BROKER_PUBLISHED.inc(len(messages))
            await self.broker.publish_many(messages)

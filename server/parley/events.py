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

from parley import metrics, protocol
from parley.broker import Broker
from parley.hub import envelope, user_channel
from parley.models import Conversation, Message, ReadReceipt

Badge = tuple[int, int, int, int]  # (user, conversation, count, total), as store.badges gives


class Events:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def publish(
        self, user_ids: Iterable[int], event: msgspec.Struct | bytes, skip: str = ""
    ) -> None:
        """Send ``event`` to every socket of each user, on any gateway, except ``skip``."""
        encoded = event if isinstance(event, bytes) else protocol.encode(event)
        payload = envelope(skip, encoded)
        await self._publish([(user_channel(user), payload) for user in user_ids])

    async def messages_new(self, sent: Sequence[tuple[Message, str]]) -> None:
        """message.new to both participants of each (message, skip), in one hand-over."""
        batch = []
        for message, skip in sent:
            assert message.sender_id is not None, "users' messages only"
            assert message.recipient_id is not None, "users' messages only"
            payload = envelope(skip, protocol.encode(protocol.MessageNew(message=message)))
            batch.append((user_channel(message.sender_id), payload))
            batch.append((user_channel(message.recipient_id), payload))
        await self._publish(batch)

    async def system_message(self, message: Message, buyer_id: int, seller_id: int) -> None:
        """message.new of a marketplace notice, to both sides."""
        await self.publish([buyer_id, seller_id], protocol.MessageNew(message=message))

    async def unread(self, badges: Iterable[Badge]) -> None:
        """Each user's badge after their counters changed: this conversation's and the total."""
        await self._publish(
            [
                (
                    user_channel(user_id),
                    envelope(
                        "",
                        protocol.encode(
                            protocol.Unread(total=total, conversation_id=conversation, count=count)
                        ),
                    ),
                )
                for user_id, conversation, count, total in badges
            ]
        )

    async def message_read(self, receipt: ReadReceipt, peer_id: int) -> None:
        """The read receipt, to the side whose messages were read."""
        event = protocol.MessageRead(
            conversation_id=receipt.conversation_id,
            reader_id=receipt.reader_id,
            up_to_seq=receipt.up_to_seq,
            read_at=receipt.read_at,
        )
        await self.publish([peer_id], event)

    async def conversation_updated(self, conversation: Conversation, skip: str = "") -> None:
        """A participant's own view of a conversation, to that participant."""
        await self.publish(
            [conversation.viewer_id], protocol.ConversationUpdated(conversation), skip
        )

    async def typing(
        self,
        user_id: int,
        conversation_id: int,
        peer_id: int,
        state: Literal["start", "stop"],
        expires_in_ms: int,
    ) -> None:
        """``user_id`` started or stopped typing, to the other participant."""
        event = protocol.TypingEvent(
            conversation_id=conversation_id,
            user_id=user_id,
            state=state,
            expires_in_ms=expires_in_ms,
        )
        await self.publish([peer_id], event)

    async def _publish(self, messages: list[tuple[str, bytes]]) -> None:
        if messages:
            metrics.BROKER_PUBLISHED.inc(len(messages))
            await self.broker.publish_many(messages)

"""Use cases for receipts: ``conversation.read`` (the read watermark, "Seen") and
``message.received`` (the delivered watermark, the second tick). Both move forward only;
a read implies delivered, so its delivered receipt goes out first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from parley import store
from parley.fanout.events import Events
from parley.models import DeliveryReceipt, ReadReceipt
from parley.usecases.base import after_commit, use_case


class Receipts:
    def __init__(
        self,
        pool: asyncpg.Pool,
        events: Events,
        peer_of: Callable[[int, int], Awaitable[int]],
        push_badge: Callable[[int, int], Awaitable[None]],
    ) -> None:
        self.pool = pool
        self.events = events
        self._peer_of = peer_of  # (user, conversation) -> the other participant
        self._push_badge = push_badge  # (user, conversation): their badge, to their devices

    @use_case
    async def read(
        self, user_id: int, conversation_id: int, up_to_seq: int, connection_id: str = ""
    ) -> ReadReceipt:
        """Move the user's read watermark forward; the peer and the user's other devices get
        the receipt, and all the user's devices their badge. Nothing is told when the
        watermark did not move."""
        receipt = await store.mark_read(self.pool, conversation_id, user_id, up_to_seq)
        if receipt.advanced:
            await after_commit(self._read_committed(receipt, connection_id))
        return receipt

    async def _read_committed(self, receipt: ReadReceipt, connection_id: str) -> None:
        peer = await self._peer_of(receipt.reader_id, receipt.conversation_id)
        if receipt.delivered_at is not None:
            delivered = DeliveryReceipt(
                conversation_id=receipt.conversation_id,
                recipient_id=receipt.reader_id,
                sender_id=peer,
                up_to_seq=receipt.up_to_seq,
                delivered_at=receipt.delivered_at,
                advanced=True,
            )
            await self.events.message_delivered(delivered)
        await self.events.message_read(receipt, peer, skip=connection_id)
        await self._push_badge(receipt.reader_id, receipt.conversation_id)

    @use_case
    async def received(self, user_id: int, conversation_id: int, up_to_seq: int) -> DeliveryReceipt:
        """Move the user's delivered watermark forward; the other side's devices get
        ``message.delivered``. Nothing is told when the watermark did not move."""
        receipt = await store.mark_delivered(self.pool, conversation_id, user_id, up_to_seq)
        if receipt.advanced:
            await after_commit(self.events.message_delivered(receipt))
        return receipt

    @use_case
    async def received_many(self, user_id: int, up_to: dict[int, int]) -> list[DeliveryReceipt]:
        """``received`` for several conversations, in one statement and one publish: the
        receipts that moved. Conversations the user is not in are ignored."""
        receipts = await store.mark_delivered_many(self.pool, user_id, up_to)
        if receipts:
            await after_commit(self.events.messages_delivered(receipts))
        return receipts

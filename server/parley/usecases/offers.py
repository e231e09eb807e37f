"""Use cases for offers as a deal: make one (a ``message.send`` of type offer), and answer it:
``offer.accept``, ``offer.decline``, ``offer.counter``, ``offer.withdraw``.

Each commits (store/offers.py checks the rules under the listing's and conversation's
locks), then tells every device of both sides: ``message.updated`` for each offer whose state
moved, ``message.new`` for each notice and counter offer, the badge of whoever a counter
offer is for, and, when an accept reserved the listing, each participant's view of every
conversation about it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from parley import store
from parley.config import Limits
from parley.fanout.events import Events
from parley.models import Message, OfferOutcome, SentMessage
from parley.usecases.base import after_commit, tell_views, use_case


class Offers:
    def __init__(self, pool: asyncpg.Pool, events: Events, limits: Limits) -> None:
        self.pool = pool
        self.events = events
        self.limits = limits

    @use_case
    async def make(
        self,
        user_id: int,
        conversation_id: int,
        *,
        client_msg_id: str,
        content: str,
        metadata: Mapping[str, Any],
        connection_id: str = "",
    ) -> SentMessage:
        """Send an offer: it opens, and the conversation's open offer becomes superseded."""
        sent, superseded = await store.make_offer(
            self.pool,
            conversation_id=conversation_id,
            sender_id=user_id,
            client_msg_id=client_msg_id,
            content=content,
            metadata=metadata,
            limits=self.limits,
        )
        await after_commit(self._made(sent, superseded, connection_id))
        return sent

    async def _made(self, sent: SentMessage, superseded: Message | None, skip: str) -> None:
        if superseded is not None:
            await self.events.message_updated(superseded)
        await self.events.messages_new([(sent.message, skip)])
        await self._badges([sent.message] if not sent.replayed else [])

    @use_case
    async def answer(
        self,
        user_id: int,
        message_id: int,
        action: store.OfferAction,
        amount_cents: int | None = None,
        connection_id: str = "",
    ) -> OfferOutcome:
        """Accept, decline or counter the other side's open offer, or withdraw one's own."""
        outcome = await store.answer_offer(self.pool, user_id, message_id, action, amount_cents)
        await after_commit(self._answered(outcome, connection_id))
        return outcome

    async def _answered(self, outcome: OfferOutcome, skip: str) -> None:
        await self.events.message_updated(outcome.offer, skip)
        await self._new(outcome.messages, skip)
        for offer, notice in outcome.declined:
            await self.events.message_updated(offer)
            await self._new([notice])
        await self._badges(outcome.messages)
        await tell_views(self.pool, self.events, outcome.conversations)

    async def _new(self, messages: list[Message], skip: str = "") -> None:
        for message in messages:
            if message.sender_id is None:
                shown = await store.participants_shown(self.pool, message.conversation_id)
                await self.events.system_message(message, shown, skip)
            else:
                await self.events.messages_new([(message, skip)])

    async def _badges(self, messages: list[Message]) -> None:
        pairs = [(m.recipient_id, m.conversation_id) for m in messages if m.recipient_id]
        if pairs:
            await self.events.unread(await store.badges(self.pool, pairs))

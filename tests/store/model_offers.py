"""The offer rules of test_model.py's state machine (a mixin, to keep each module small):
either side makes an offer, which supersedes the open one; either side answers one, mostly
the open one, and the model says which refusal each answer must get, in the store's order."""

from __future__ import annotations

import itertools
from collections.abc import Coroutine
from typing import Any, TypeVar

import asyncpg
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, precondition, rule

from parley import store
from parley.config import Limits
from parley.errors import Blocked, ProductUnavailable
from tests.store.model import Model, ModelConversation, ModelMessage

T = TypeVar("T")


class OfferRules:
    conversations = Bundle("conversations")
    # What the machine (test_model.StoreMachine) provides.
    pool: asyncpg.Pool
    world: Model
    model: dict[int, ModelConversation]
    client_ids: itertools.count[int]

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        raise NotImplementedError

    def refused(self, expected: type[Exception], coroutine: Coroutine[Any, Any, Any]) -> None:
        raise NotImplementedError

    def _id(self, conversation: ModelConversation, message: ModelMessage) -> int:
        raise NotImplementedError

    @rule(
        conversation_id=conversations,
        by_buyer=st.booleans(),
        amount=st.integers(min_value=1, max_value=10**6),
    )
    def offer(self, conversation_id: int, by_buyer: bool, amount: int) -> None:
        """Either side makes an offer: it opens and supersedes the open one."""
        conversation = self.model[conversation_id]
        sender = conversation.buyer if by_buyer else conversation.seller
        recipient = conversation.peer(sender)
        client_msg_id = f"o{next(self.client_ids)}"
        making = store.make_offer(
            self.pool,
            conversation_id=conversation_id,
            sender_id=sender,
            client_msg_id=client_msg_id,
            content="",
            metadata={"amount_cents": amount, "currency": "EUR"},
            limits=Limits(),
        )
        if self.world.blocked(sender, recipient):
            self.refused(Blocked, making)
            return
        if self.world.listings[conversation.product] != "active":
            self.refused(ProductUnavailable, making)
            return
        sent, superseded = self.run(making)
        before = conversation.open_offer()
        assert (superseded.id if superseded else None) == (
            self._id(conversation, before) if before else None
        )
        if before is not None:
            before.offer_status = "superseded"
        conversation.add(
            ModelMessage(
                sent.message.seq, sender, recipient, "", client_msg_id,
                kind="offer", offer_status="open", amount=amount,
            ),
            sent.message.created_at,
        )  # fmt: skip

    @precondition(
        lambda self: any(m.kind == "offer" for c in self.model.values() for m in c.messages)
    )
    @rule(
        data=st.data(),
        action=st.sampled_from(["accept", "decline", "counter", "withdraw"]),
        amount=st.integers(min_value=1, max_value=10**6),
    )
    def answer(self, data: st.DataObject, action: str, amount: int) -> None:
        """Either side answers an offer, mostly the open one."""
        conversation = data.draw(st.sampled_from(self._with_offers()))
        offers = [m for m in conversation.messages if m.kind == "offer"]
        current = conversation.open_offer()
        offer = data.draw(st.sampled_from([current] * 3 + offers if current else offers))
        actor = data.draw(st.sampled_from([conversation.buyer, conversation.seller]))
        answering = store.answer_offer(
            self.pool,
            actor,
            self._id(conversation, offer),
            action,  # type: ignore[arg-type]
            amount if action == "counter" else None,
        )
        expected = self.world.answer_refusal(conversation, offer, actor, action)
        if expected is not None:
            self.refused(expected, answering)
            return
        outcome = self.run(answering)
        offer.offer_status = {
            "accept": "accepted", "decline": "declined",
            "counter": "countered", "withdraw": "withdrawn",
        }[action]  # fmt: skip
        assert outcome.offer.offer_status == offer.offer_status
        notice, *counter = outcome.messages
        self._notice(conversation, notice)
        if action == "counter":
            [made] = counter
            conversation.add(
                ModelMessage(
                    made.seq, actor, conversation.peer(actor), "", made.client_msg_id,
                    kind="offer", offer_status="open", amount=amount,
                ),
                made.created_at,
            )  # fmt: skip
        if action == "accept":
            self.world.listings[conversation.product] = "reserved"
            self.world.reserved_for[conversation.product] = conversation.buyer
            declined = {loser.conversation_id: notice for loser, notice in outcome.declined}
            for other in self.model.values():
                loser = other.open_offer()
                if other.product == conversation.product and loser is not None:
                    loser.offer_status = "declined"
                    self._notice(other, declined.pop(other.id))
            assert declined == {}

    def _with_offers(self) -> list[ModelConversation]:
        return [c for c in self.model.values() if any(m.kind == "offer" for m in c.messages)]

    def _notice(self, conversation: ModelConversation, notice: Any) -> None:
        assert (notice.message_type, notice.sender_id) == ("system", None)
        conversation.add(
            ModelMessage(notice.seq, None, None, notice.content, notice.client_msg_id),
            notice.created_at,
        )

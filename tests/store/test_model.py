"""A Hypothesis state machine drives the store and an in-memory model side by side.

Sends, system notices, retries, reads, edits and unsends, deletes, archives, product sales,
offers and every answer to them (model_offers.py), blocks and mutes, in any order; after
every step the badges (total and version, mute and block included), previews, history,
read state, offer states, listings and inbox folders of every user must match the model
(model.py, compared by model_check.py), and each data rule of docs/data.md must hold:
is_read agrees with the watermark, the folder agrees with the listing's status, time
follows seq, and a notice is shown only to the sides it does not leave hidden.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from parley import store
from parley.config import Limits
from parley.errors import (
    Blocked,
    InvalidArgument,
    NotEditable,
    NotFound,
    NotYours,
    OwnProduct,
    ProductUnavailable,
)
from parley.store.pool import create_pool
from parley.validation import has_visible_text
from tests.conftest import TABLES
from tests.store.model import (
    PRODUCTS,
    USERS,
    Model,
    ModelConversation,
    ModelMessage,
)
from tests.store.model_check import compare
from tests.store.model_offers import OfferRules

T = TypeVar("T")

contents = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    min_size=1,
    max_size=12,
).filter(has_visible_text)


class StoreMachine(OfferRules, RuleBasedStateMachine):
    dsn: ClassVar[str]
    conversations = Bundle("conversations")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.pool: asyncpg.Pool = self.run(create_pool(self.dsn, min_size=1, max_size=2))
        self.world = Model()
        self.model = self.world.conversations
        self.client_ids = itertools.count(1)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def refused(self, expected: type[Exception], coroutine: Coroutine[Any, Any, Any]) -> None:
        with pytest.raises(expected):
            self.run(coroutine)

    def teardown(self) -> None:
        self.run(self.pool.close())
        self.loop.close()

    @initialize(target=conversations)
    def cast(self) -> Any:
        """Users, listings, and three conversations to start from: two buyers of one
        listing (whose offers an accept plays against each other) and a third."""

        async def setup() -> list[int]:
            await self.pool.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
            for user in USERS:
                await store.upsert_user(self.pool, user, f"user {user}")
            for product, seller in PRODUCTS.items():
                await store.upsert_product(
                    self.pool, product, seller, f"product {product}", currency="EUR"
                )
            opened = []
            for buyer, product in ((701, 7020), (703, 7020), (702, 7010)):
                conversation, _ = await store.open_conversation(self.pool, buyer, product)
                self.model[conversation.id] = ModelConversation(
                    conversation.id, product, buyer, PRODUCTS[product]
                )
                opened.append(conversation.id)
            return opened

        return multiple(*self.run(setup()))

    # --- rules -------------------------------------------------------------------------------

    @rule(
        target=conversations,
        buyer=st.sampled_from(USERS),
        product=st.sampled_from(sorted(PRODUCTS)),
    )
    def open(self, buyer: int, product: int) -> Any:
        seller = PRODUCTS[product]
        existing = [c for c in self.model.values() if (c.product, c.buyer) == (product, buyer)]
        opening = store.open_conversation(self.pool, buyer, product)
        if buyer == seller:
            self.refused(OwnProduct, opening)
            return multiple()
        if not existing and self.world.listings[product] in ("sold", "deleted"):
            self.refused(ProductUnavailable, opening)
            return multiple()
        if self.world.blocked(buyer, seller):
            self.refused(Blocked, opening)
            return multiple()
        conversation, created = self.run(opening)
        assert created == (not existing)
        if existing:
            assert conversation.id == existing[0].id
            return multiple()
        modelled = ModelConversation(conversation.id, product, buyer, seller)
        modelled.status = "archived" if self.world.listings[product] == "sold" else "active"
        self.model[conversation.id] = modelled
        return conversation.id

    @rule(conversation_id=conversations, by_buyer=st.booleans(), content=contents)
    def send(self, conversation_id: int, by_buyer: bool, content: str) -> None:
        conversation = self.model[conversation_id]
        sender = conversation.buyer if by_buyer else conversation.seller
        recipient = conversation.peer(sender)
        client_msg_id = f"m{next(self.client_ids)}"
        sending = store.send_message(
            self.pool,
            conversation_id=conversation_id,
            sender_id=sender,
            client_msg_id=client_msg_id,
            content=content,
        )
        if self.world.blocked(sender, recipient):
            self.refused(Blocked, sending)
            return
        sent = self.run(sending)
        assert not sent.replayed
        conversation.add(
            ModelMessage(sent.message.seq, sender, recipient, content, client_msg_id),
            sent.message.created_at,
        )

    @rule(conversation_id=conversations, content=contents)
    def notice(self, conversation_id: int, content: str) -> None:
        conversation = self.model[conversation_id]
        client_msg_id = f"n{next(self.client_ids)}"
        sent = self.run(
            store.send_message(
                self.pool,
                conversation_id=conversation_id,
                sender_id=None,
                client_msg_id=client_msg_id,
                content=content,
                message_type="system",
            )
        )
        conversation.add(
            ModelMessage(sent.message.seq, None, None, content, client_msg_id),
            sent.message.created_at,
        )
        # A notice un-hides nothing; those who deleted the conversation are not told of it.
        shown = self.run(store.participants_shown(self.pool, conversation_id))
        assert shown == [u for u, side in conversation.sides.items() if not side.deleted]

    @precondition(lambda self: any(c.messages for c in self.model.values()))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """A send again with its client_msg_id is a replay, a block or a sale since too."""
        conversation = data.draw(st.sampled_from([c for c in self.model.values() if c.messages]))
        message = data.draw(st.sampled_from(conversation.messages))
        if message.unsent:
            return  # nothing left to send again: its content is gone
        if message.kind == "offer":
            again, _ = self.run(
                store.make_offer(
                    self.pool,
                    conversation_id=conversation.id,
                    sender_id=message.sender or 0,
                    client_msg_id=message.client_msg_id,
                    content="",
                    metadata={"amount_cents": message.amount, "currency": "EUR"},
                    limits=Limits(),
                )
            )
        else:
            again = self.run(
                store.send_message(
                    self.pool,
                    conversation_id=conversation.id,
                    sender_id=message.sender,
                    client_msg_id=message.client_msg_id,
                    content=message.content,
                    message_type="text" if message.sender is not None else "system",
                )
            )
        assert again.replayed
        assert again.message.seq == message.seq

    @rule(
        conversation_id=conversations,
        by_buyer=st.booleans(),
        up_to=st.integers(min_value=0, max_value=25),
    )
    def read(self, conversation_id: int, by_buyer: bool, up_to: int) -> None:
        conversation = self.model[conversation_id]
        reader = conversation.buyer if by_buyer else conversation.seller
        side = conversation.sides[reader]
        receipt = self.run(store.mark_read(self.pool, conversation_id, reader, up_to))
        target = min(up_to, len(conversation.messages))
        assert receipt.advanced == (target > side.last_read)
        if receipt.advanced:
            # Everything to the reader up to the watermark is read, cleared messages too.
            for message in conversation.messages:
                if message.recipient == reader and side.last_read < message.seq <= target:
                    message.is_read = True
            side.last_read = target
        assert receipt.up_to_seq == side.last_read
        assert receipt.unread_count == conversation.unread(reader)
        self.world.counters_moved()
        assert receipt.unread_version == self.world.versions[reader]

    @precondition(lambda self: any(c.messages for c in self.model.values()))
    @rule(data=st.data(), content=contents, unsend=st.booleans())
    def change(self, data: st.DataObject, content: str, unsend: bool) -> None:
        """Edit or unsend a message, by its sender or by the other side."""
        conversation = data.draw(st.sampled_from([c for c in self.model.values() if c.messages]))
        # Mostly the newest message, mostly by its sender: the cases that move the preview
        # and the badges; the rest are the refusals.
        message = data.draw(
            st.one_of(st.just(conversation.messages[-1]), st.sampled_from(conversation.messages))
        )
        parties = [conversation.buyer, conversation.seller]
        actor = data.draw(
            st.sampled_from([message.sender] * 3 + parties if message.sender else parties)
        )
        expected: type[Exception] | None = None
        if message.seq <= conversation.sides[actor].cleared:
            expected = NotFound
        elif message.sender != actor:
            expected = NotYours
        elif message.unsent:
            expected = NotEditable
        elif message.kind == "offer" and (not unsend or message.offer_status == "accepted"):
            expected = NotEditable  # only text is edited; an accepted offer is a deal
        message_id = self._id(conversation, message)
        changing: Coroutine[Any, Any, Any]
        if unsend:
            changing = store.unsend_message(self.pool, actor, message_id, Limits())
        else:
            changing = store.edit_message(self.pool, actor, message_id, content, Limits())
        if expected is not None:
            self.refused(expected, changing)
            return
        self.run(changing)
        if unsend:
            message.unsent, message.content, message.is_read = True, "", True
            if message.offer_status == "open":
                message.offer_status = "withdrawn"
        else:
            message.content = content

    def _id(self, conversation: ModelConversation, message: ModelMessage) -> int:
        found = self.run(
            self.pool.fetchval(
                "SELECT id FROM messages WHERE conversation_id = $1 AND seq = $2",
                conversation.id,
                message.seq,
            )
        )
        assert isinstance(found, int)
        return found

    @rule(conversation_id=conversations, by_buyer=st.booleans())
    def delete(self, conversation_id: int, by_buyer: bool) -> None:
        conversation = self.model[conversation_id]
        user = conversation.buyer if by_buyer else conversation.seller
        self.run(store.delete_for(self.pool, user, conversation_id))
        side = conversation.sides[user]
        side.deleted, side.cleared = True, len(conversation.messages)

    @rule(conversation_id=conversations, by_buyer=st.booleans(), archived=st.booleans())
    def archive(self, conversation_id: int, by_buyer: bool, archived: bool) -> None:
        conversation = self.model[conversation_id]
        user = conversation.buyer if by_buyer else conversation.seller
        if not archived and conversation.status == "archived":
            # The listing is gone: the conversation stays in the archive, nothing changes.
            self.refused(ProductUnavailable, store.unarchive(self.pool, user, conversation_id))
            return
        change = store.archive if archived else store.unarchive
        view = self.run(change(self.pool, user, conversation_id))
        conversation.sides[user].archived = archived
        assert view.archived == archived

    @rule(conversation_id=conversations, by_buyer=st.booleans(), muted=st.booleans())
    def mute(self, conversation_id: int, by_buyer: bool, muted: bool) -> None:
        """Mute or unmute: the count stays, the total leaves it out, the version moves."""
        conversation = self.model[conversation_id]
        user = conversation.buyer if by_buyer else conversation.seller
        change = store.mute(self.pool, user, conversation_id, None) if muted else None
        view = self.run(change or store.unmute(self.pool, user, conversation_id))
        side = conversation.sides[user]
        if side.muted != muted:
            side.muted = muted
            self.world.versions[user] += 1
        assert (view.muted_until is not None) == muted

    @rule(data=st.data(), blocking=st.booleans())
    def block(self, data: st.DataObject, blocking: bool) -> None:
        """Block or unblock: mostly the two sides of a conversation, sometimes anyone."""
        pairs = [(c.buyer, c.seller) for c in self.model.values()]
        anyone = st.tuples(st.sampled_from(USERS), st.sampled_from(USERS))
        blocker, blocked = data.draw(st.one_of(st.sampled_from(pairs), anyone) if pairs else anyone)
        if data.draw(st.booleans()):
            blocker, blocked = blocked, blocker
        if blocker == blocked:
            self.refused(InvalidArgument, store.block(self.pool, blocker, blocked))
            return
        change = store.block if blocking else store.unblock
        touched = self.run(change(self.pool, blocker, blocked))
        between = sorted(
            c.id for c in self.model.values() if {c.buyer, c.seller} == {blocker, blocked}
        )
        pair = (blocker, blocked)
        if (pair in self.world.blocks) != blocking:
            (self.world.blocks.add if blocking else self.world.blocks.discard)(pair)
            assert touched == between
            if between:
                self.world.versions[blocker] += 1
        else:
            assert touched == []

    @rule(product=st.sampled_from(sorted(PRODUCTS)), sold=st.booleans())
    def sell_or_relist(self, product: int, sold: bool) -> None:
        status = "sold" if sold else "active"
        listing, changed = self.run(
            store.upsert_product(
                self.pool, product, PRODUCTS[product], currency="EUR", status=status
            )
        )
        # The status alone decides: sold puts a conversation in both archives, relisting
        # (a reserved one too) brings it back to each inbox unless that side archived it.
        self.world.listings[product] = status
        self.world.reserved_for.pop(product, None)
        assert listing.reserved_for is None
        expected_changes = []
        for conversation in self.model.values():
            if conversation.product == product:
                new_status = "archived" if sold else "active"
                if conversation.status != new_status:
                    expected_changes.append(conversation.id)
                conversation.status = new_status
        assert sorted(changed) == sorted(expected_changes)

    @rule(conversation_id=conversations, outsider=st.sampled_from(USERS))
    def outsider_is_turned_away(self, conversation_id: int, outsider: int) -> None:
        conversation = self.model[conversation_id]
        if outsider in conversation.sides:
            return
        self.refused(
            NotFound,
            store.send_message(
                self.pool,
                conversation_id=conversation_id,
                sender_id=outsider,
                client_msg_id=f"x{next(self.client_ids)}",
                content="let me in",
            ),
        )
        self.refused(NotFound, store.mark_read(self.pool, conversation_id, outsider, 10))

    # --- what must hold after every step ----------------------------------------------------

    @invariant()
    def database_matches_model(self) -> None:
        self.world.counters_moved()
        self.run(compare(self.pool, self.world))


def test_store_matches_an_in_memory_model(database_url: str) -> None:
    StoreMachine.dsn = database_url
    run_state_machine_as_test(
        StoreMachine,
        settings=settings(
            max_examples=40,  # ~12 s of one worker's time; CI runs it twice, on two databases
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )

"""A Hypothesis state machine drives the store and an in-memory model side by side.

Sends, system notices, retries, reads, deletes, archives and product sales in any order;
after every step the badges (total and version), previews, history, read state and inbox
folders of every user must match the model, and each data rule of docs/data.md must hold:
is_read agrees with the watermark, the folder agrees with the listing's status, time
follows seq, and a notice is shown only to the sides it does not leave hidden.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
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
from parley.db import create_pool
from parley.errors import NotEditable, NotFound, NotYours, OwnProduct, ProductUnavailable
from parley.validation import has_visible_text
from tests.conftest import TABLES

T = TypeVar("T")

USERS = (701, 702, 703, 704)
PRODUCTS = {7010: 701, 7020: 702, 7030: 703}  # product -> seller

contents = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    min_size=1,
    max_size=12,
).filter(has_visible_text)


@dataclass
class ModelMessage:
    seq: int
    sender: int | None  # None: a system notice, to nobody in particular
    recipient: int | None
    content: str
    client_msg_id: str
    is_read: bool = False
    unsent: bool = False


@dataclass
class ModelSide:
    last_read: int = 0
    cleared: int = 0
    deleted: bool = False
    archived: bool = False


@dataclass
class ModelConversation:
    id: int
    product: int
    buyer: int
    seller: int
    messages: list[ModelMessage] = field(default_factory=list)
    last_at: datetime | None = None
    status: str = "active"
    sides: dict[int, ModelSide] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sides = {self.buyer: ModelSide(), self.seller: ModelSide()}

    def unread(self, user: int) -> int:
        cleared = self.sides[user].cleared
        return sum(
            1 for m in self.messages if m.recipient == user and not m.is_read and m.seq > cleared
        )


class StoreMachine(RuleBasedStateMachine):
    dsn: ClassVar[str]
    conversations = Bundle("conversations")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.pool: asyncpg.Pool = self.run(create_pool(self.dsn, min_size=1, max_size=2))
        self.model: dict[int, ModelConversation] = {}
        self.sold: set[int] = set()
        self.client_ids = itertools.count(1)
        # Each user's badge version: one more for every step that changes their total.
        self.versions = dict.fromkeys(USERS, 0)
        self.totals = dict.fromkeys(USERS, 0)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.pool.close())
        self.loop.close()

    @initialize()
    def cast(self) -> None:
        async def setup() -> None:
            await self.pool.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
            for user in USERS:
                await store.upsert_user(self.pool, user, f"user {user}")
            for product, seller in PRODUCTS.items():
                await store.upsert_product(self.pool, product, seller, f"product {product}")

        self.run(setup())

    # --- rules -------------------------------------------------------------------------------

    @rule(
        target=conversations,
        buyer=st.sampled_from(USERS),
        product=st.sampled_from(sorted(PRODUCTS)),
    )
    def open(self, buyer: int, product: int) -> Any:
        seller = PRODUCTS[product]
        existing = [c for c in self.model.values() if (c.product, c.buyer) == (product, buyer)]
        if buyer == seller:
            with pytest.raises(OwnProduct):
                self.run(store.open_conversation(self.pool, buyer, product))
            return multiple()
        if not existing and product in self.sold:
            with pytest.raises(ProductUnavailable):
                self.run(store.open_conversation(self.pool, buyer, product))
            return multiple()
        conversation, created = self.run(store.open_conversation(self.pool, buyer, product))
        assert created == (not existing)
        if existing:
            assert conversation.id == existing[0].id
            return multiple()
        modelled = ModelConversation(conversation.id, product, buyer, seller)
        modelled.status = "archived" if product in self.sold else "active"
        self.model[conversation.id] = modelled
        return conversation.id

    @rule(conversation_id=conversations, by_buyer=st.booleans(), content=contents)
    def send(self, conversation_id: int, by_buyer: bool, content: str) -> None:
        conversation = self.model[conversation_id]
        sender, recipient = (
            (conversation.buyer, conversation.seller)
            if by_buyer
            else (conversation.seller, conversation.buyer)
        )
        client_msg_id = f"m{next(self.client_ids)}"
        sent = self.run(
            store.send_message(
                self.pool,
                conversation_id=conversation_id,
                sender_id=sender,
                client_msg_id=client_msg_id,
                content=content,
            )
        )
        assert not sent.replayed
        assert sent.message.seq == len(conversation.messages) + 1
        conversation.messages.append(
            ModelMessage(sent.message.seq, sender, recipient, content, client_msg_id)
        )
        assert conversation.last_at is None or sent.message.created_at >= conversation.last_at
        conversation.last_at = sent.message.created_at
        for side in conversation.sides.values():
            side.deleted = side.archived = False

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
        assert sent.message.seq == len(conversation.messages) + 1
        conversation.messages.append(
            ModelMessage(sent.message.seq, None, None, content, client_msg_id)
        )
        assert conversation.last_at is None or sent.message.created_at >= conversation.last_at
        conversation.last_at = sent.message.created_at
        # A notice un-hides nothing; those who deleted the conversation are not told of it.
        shown = self.run(store.participants_shown(self.pool, conversation_id))
        assert shown == [u for u, side in conversation.sides.items() if not side.deleted]

    @precondition(lambda self: any(c.messages for c in self.model.values()))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        conversation = data.draw(st.sampled_from([c for c in self.model.values() if c.messages]))
        message = data.draw(st.sampled_from(conversation.messages))
        if message.unsent:
            return  # nothing left to send again: its content is gone
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
        self._badges_moved()
        assert receipt.unread_version == self.versions[reader]

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
        message_id = self._id(conversation, message)

        async def change() -> None:
            if unsend:
                await store.unsend_message(self.pool, actor, message_id, Limits())
            else:
                await store.edit_message(self.pool, actor, message_id, content, Limits())

        if expected is not None:
            with pytest.raises(expected):
                self.run(change())
            return
        self.run(change())
        if unsend:
            message.unsent, message.content, message.is_read = True, "", True
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
            with pytest.raises(ProductUnavailable):
                self.run(store.unarchive(self.pool, user, conversation_id))
            return
        change = store.archive if archived else store.unarchive
        view = self.run(change(self.pool, user, conversation_id))
        conversation.sides[user].archived = archived
        assert view.archived == archived

    @rule(product=st.sampled_from(sorted(PRODUCTS)), sold=st.booleans())
    def sell_or_relist(self, product: int, sold: bool) -> None:
        status = "sold" if sold else "active"
        _, changed = self.run(
            store.upsert_product(self.pool, product, PRODUCTS[product], status=status)
        )
        # The status alone decides: sold puts a conversation in both archives, relisting
        # brings it back to each inbox unless that side archived it themselves.
        (self.sold.add if sold else self.sold.discard)(product)
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
        with pytest.raises(NotFound):
            self.run(
                store.send_message(
                    self.pool,
                    conversation_id=conversation_id,
                    sender_id=outsider,
                    client_msg_id=f"x{next(self.client_ids)}",
                    content="let me in",
                )
            )
        with pytest.raises(NotFound):
            self.run(store.mark_read(self.pool, conversation_id, outsider, 10))

    # --- what must hold after every step ----------------------------------------------------

    def _badges_moved(self) -> None:
        """The step just taken was one transaction: each user whose total it changed has a
        badge one version newer."""
        for user in USERS:
            total = sum(c.unread(user) for c in self.model.values() if user in c.sides)
            if total != self.totals[user]:
                self.totals[user] = total
                self.versions[user] += 1

    @invariant()
    def database_matches_model(self) -> None:
        self._badges_moved()
        self.run(self._compare())

    async def _compare(self) -> None:
        assert await store.recount_counters(self.pool) == []
        for conversation in self.model.values():
            last = next((m for m in reversed(conversation.messages) if not m.unsent), None)
            for user, side in conversation.sides.items():
                view = await store.get_conversation(self.pool, conversation.id, user)
                assert view.unread_count == conversation.unread(user)
                assert view.last_seq == len(conversation.messages)
                assert view.last_message_text == (last.content if last else None)
                assert view.last_message_at == conversation.last_at
                folder = side.archived or conversation.status == "archived"
                assert (view.deleted, view.archived) == (side.deleted, folder)
                assert view.unread_version == self.versions[user]
                assert (view.last_read_seq, view.cleared_seq) == (side.last_read, side.cleared)
                assert view.status == conversation.status
                history = await store.history(self.pool, conversation.id, user, limit=200)
                assert [(m.seq, m.content) for m in history] == [
                    (m.seq, m.content) for m in conversation.messages if m.seq > side.cleared
                ]
                stored = {
                    m.seq: m
                    for m in await store.messages_after(
                        self.pool, conversation.id, user, 0, limit=200
                    )
                }
                for message in conversation.messages:
                    if message.recipient == user and message.seq in stored and not message.unsent:
                        # is_read and the watermark agree.
                        assert stored[message.seq].is_read == (message.seq <= side.last_read)
                        assert message.is_read == (message.seq <= side.last_read)
        for user in USERS:
            total = sum(c.unread(user) for c in self.model.values() if user in c.sides)
            assert await store.badge_of(self.pool, user) == (total, self.versions[user])
            for archived in (False, True):
                page = await store.inbox(self.pool, user, limit=200, archived=archived)
                assert [c.id for c in page.conversations] == self._inbox(user, archived)

    def _inbox(self, user: int, archived: bool) -> list[int]:
        listed = [
            c
            for c in self.model.values()
            if user in c.sides
            and c.last_at is not None
            and not c.sides[user].deleted
            and (c.sides[user].archived or c.status == "archived") == archived
        ]
        listed.sort(key=lambda c: (c.last_at, c.id), reverse=True)
        return [c.id for c in listed]


def test_store_matches_an_in_memory_model(database_url: str) -> None:
    StoreMachine.dsn = database_url
    run_state_machine_as_test(
        StoreMachine,
        settings=settings(
            max_examples=200,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )

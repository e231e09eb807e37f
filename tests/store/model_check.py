"""After every step of test_model.py: the database against the model. Every conversation as
each side sees it (counters, preview, folder, watermarks, mute, block, history, read
state), each offer's state, each listing's status, and each user's badge and inbox."""

from __future__ import annotations

import asyncpg

from parley import store
from tests.store.model import USERS, Model


async def compare(pool: asyncpg.Pool, world: Model) -> None:
    assert await store.recount_counters(pool) == []
    for conversation in world.conversations.values():
        last = next((m for m in reversed(conversation.messages) if not m.unsent), None)
        offers = await pool.fetch(
            "SELECT seq, offer_status FROM messages"
            " WHERE conversation_id = $1 AND message_type = 'offer' ORDER BY seq",
            conversation.id,
        )
        assert [tuple(r) for r in offers] == [
            (m.seq, m.offer_status) for m in conversation.messages if m.kind == "offer"
        ]
        for user, side in conversation.sides.items():
            view = await store.get_conversation(pool, conversation.id, user)
            assert view.unread_count == conversation.unread(user)
            assert view.last_seq == len(conversation.messages)
            assert view.last_message_text == (last.content if last else None)
            assert view.last_message_at == conversation.last_at
            folder = side.archived or conversation.status == "archived"
            assert (view.deleted, view.archived) == (side.deleted, folder)
            assert view.unread_version == world.versions[user]
            assert (view.last_read_seq, view.cleared_seq) == (side.last_read, side.cleared)
            assert view.status == conversation.status
            assert (view.muted_until is not None) == side.muted
            assert view.blocked == ((user, conversation.peer(user)) in world.blocks)
            history = await store.history(pool, conversation.id, user, limit=200)
            assert [(m.seq, m.content) for m in history] == world.visible_history(
                conversation, user
            )
            stored = {
                m.seq: m
                for m in await store.messages_after(pool, conversation.id, user, 0, limit=200)
            }
            for message in conversation.messages:
                if message.recipient == user and message.seq in stored and not message.unsent:
                    # is_read and the watermark agree.
                    assert stored[message.seq].is_read == (message.seq <= side.last_read)
                    assert message.is_read == (message.seq <= side.last_read)
    for product, status in world.listings.items():
        listing = await store.get_product(pool, product)
        assert (listing.status, listing.reserved_for) == (
            status,
            world.reserved_for.get(product),
        )
    for user in USERS:
        assert await store.badge_of(pool, user) == (
            world.shown_total(user),
            world.versions[user],
        )
        for archived in (False, True):
            page = await store.inbox(pool, user, limit=200, archived=archived)
            assert [c.id for c in page.conversations] == world.inbox(user, archived)

"""10,000 random operations of every kind, run by concurrent workers on their own
connections: sends, batches, offers and every answer to them, reads, deletes, archives,
edits, unsends, reports, opens, blocks, mutes and sales. Refusals are expected; deadlocks,
and errors that are not a ParleyError, are not. Afterwards the recount finds no drift, every
total a device would see is the sum of its user's unsilenced counts, and the offer rules
hold."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from parley import store
from parley.config import Limits
from parley.errors import ParleyError

USERS = (701, 702, 703, 704)
PRODUCTS = {7010: 701, 7020: 702, 7030: 703, 7040: 704}
OPERATIONS = 10_000
WORKERS = 8


async def test_ten_thousand_concurrent_operations_leave_no_drift(pool: asyncpg.Pool) -> None:
    for user in USERS:
        await store.upsert_user(pool, user, f"user {user}")
    for product, seller in PRODUCTS.items():
        await store.upsert_product(pool, product, seller, "thing", currency="EUR")
    conversations = []
    for product, seller in PRODUCTS.items():
        for buyer in USERS:
            if buyer != seller:
                conversation, _ = await store.open_conversation(pool, buyer, product)
                conversations.append((conversation.id, buyer, seller, product))
    limits = Limits()
    sequence = iter(range(OPERATIONS))
    unexpected: list[BaseException] = []

    async def operation(rng: random.Random, n: int) -> None:
        conversation_id, buyer, seller, product = rng.choice(conversations)
        me, peer = (buyer, seller) if rng.random() < 0.5 else (seller, buyer)
        last = await pool.fetchval(
            "SELECT id FROM messages WHERE conversation_id = $1 ORDER BY seq DESC LIMIT 1",
            conversation_id,
        )
        open_offer = await pool.fetchval(
            "SELECT id FROM messages WHERE conversation_id = $1 AND offer_status = 'open'",
            conversation_id,
        )
        kinds: list[Callable[[], Awaitable[object]]] = [
            lambda: store.send_message(
                pool, conversation_id=conversation_id, sender_id=me,
                client_msg_id=f"m{n}", content="hi", limits=limits,
            ),
            lambda: store.send_many(pool, [store.SendRequest(conversation_id, me, f"b{n}", "yo")]),
            lambda: store.make_offer(
                pool, conversation_id=conversation_id, sender_id=me, client_msg_id=f"o{n}",
                content="", metadata={"amount_cents": rng.randint(1, 9999), "currency": "EUR"},
                limits=limits,
            ),
            lambda: store.answer_offer(
                pool, me, open_offer or 1, rng.choice(["accept", "decline", "withdraw"])
            ),
            lambda: store.answer_offer(pool, me, open_offer or 1, "counter", rng.randint(1, 99)),
            lambda: store.mark_read(pool, conversation_id, me, rng.randint(0, 10**6)),
            lambda: store.delete_for(pool, me, conversation_id),
            lambda: store.archive(pool, me, conversation_id),
            lambda: store.edit_message(pool, me, last or 1, "edited", limits),
            lambda: store.unsend_message(pool, me, last or 1, limits),
            lambda: store.block(pool, me, peer),
            lambda: store.unblock(pool, me, peer),
            lambda: store.mute(pool, me, conversation_id, None),
            lambda: store.mute(
                pool, me, conversation_id, datetime.now(UTC) + timedelta(milliseconds=20)
            ),
            lambda: store.unmute(pool, me, conversation_id),
            lambda: store.end_mutes(pool),
            lambda: store.open_conversation(pool, me, product),
            lambda: store.report_message(pool, me, last or 1, "spam"),
            lambda: store.resolve_report(pool, rng.randint(1, 50), "seen"),
            lambda: store.upsert_product(
                pool, product, PRODUCTS[product], "thing", currency="EUR",
                status=rng.choice(["active", "active", "sold"]),
            ),
        ]  # fmt: skip
        # A refusal is a rule saying no, with nothing written.
        with contextlib.suppress(ParleyError):
            await rng.choice(kinds)()

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        for n in sequence:
            try:
                await operation(rng, n)
            except Exception as error:  # deadlocks included
                unexpected.append(error)

    await asyncio.gather(*(worker(seed) for seed in range(WORKERS)))
    assert unexpected == []
    assert await store.recount_counters(pool) == []
    for user in USERS:
        total, _ = await store.badge_of(pool, user)
        shown = await pool.fetchval(
            """
            SELECT coalesce(sum(CASE WHEN buyer_id = $1 THEN buyer_unread_count
                                     ELSE seller_unread_count END), 0)
              FROM conversations
             WHERE (buyer_id = $1 AND NOT blocked_by_buyer AND buyer_muted_until IS NULL)
                OR (seller_id = $1 AND NOT blocked_by_seller AND seller_muted_until IS NULL)
            """,
            user,
        )
        assert total == shown, user
    blocked_flags = await pool.fetchval(
        """
        SELECT count(*) FROM conversations c
         WHERE c.blocked_by_buyer <> EXISTS (
                   SELECT 1 FROM blocks b
                    WHERE b.blocker_id = c.buyer_id AND b.blocked_id = c.seller_id)
            OR c.blocked_by_seller <> EXISTS (
                   SELECT 1 FROM blocks b
                    WHERE b.blocker_id = c.seller_id AND b.blocked_id = c.buyer_id)
        """
    )
    assert blocked_flags == 0
    reserved = await pool.fetch(
        """
        SELECT p.id, p.reserved_for,
               (SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id
                 WHERE c.product_id = p.id AND m.offer_status = 'open') AS open_offers
          FROM products p WHERE p.status = 'reserved'
        """
    )
    for row in reserved:
        assert row["reserved_for"] is not None
        assert row["open_offers"] == 0, row["id"]

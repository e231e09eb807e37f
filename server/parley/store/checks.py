"""Checks for tests and operations: do the cached counters match a recount?"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parley.models import CounterDrift
from parley.store._sql import connection

if TYPE_CHECKING:
    from parley.store._sql import Database


async def recount_counters(db: Database) -> list[CounterDrift]:
    """Compare every conversation's cached counters with a recount from messages.

    Returns one CounterDrift per mismatch (unread counts, last_seq, seq gaps, preview); an
    empty list means the triggers kept everything exact. Reads one consistent snapshot.
    """
    async with (
        connection(db) as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        rows = await conn.fetch(
            """
            SELECT c.id, c.buyer_unread_count, c.seller_unread_count, c.last_seq,
                   coalesce(m.buyer_unread, 0) AS actual_buyer_unread,
                   coalesce(m.seller_unread, 0) AS actual_seller_unread,
                   coalesce(m.max_seq, 0) AS actual_last_seq,
                   coalesce(m.message_count, 0) AS message_count,
                   (c.last_message_text IS NOT DISTINCT FROM left(last.content, 200)
                    AND c.last_message_at IS NOT DISTINCT FROM last.created_at) AS preview_ok
              FROM conversations c
              LEFT JOIN (
                    SELECT m.conversation_id,
                           count(*) FILTER (WHERE m.recipient_id = x.buyer_id AND NOT m.is_read
                                              AND m.seq > x.buyer_cleared_seq) AS buyer_unread,
                           count(*) FILTER (WHERE m.recipient_id = x.seller_id AND NOT m.is_read
                                              AND m.seq > x.seller_cleared_seq) AS seller_unread,
                           max(m.seq) AS max_seq,
                           count(*) AS message_count
                      FROM messages m JOIN conversations x ON x.id = m.conversation_id
                     GROUP BY m.conversation_id) m ON m.conversation_id = c.id
              LEFT JOIN messages last ON last.conversation_id = c.id AND last.seq = c.last_seq
             ORDER BY c.id
            """
        )
    drifts: list[CounterDrift] = []
    for row in rows:
        checks = (
            ("buyer_unread_count", row["buyer_unread_count"], row["actual_buyer_unread"]),
            ("seller_unread_count", row["seller_unread_count"], row["actual_seller_unread"]),
            ("last_seq", row["last_seq"], row["actual_last_seq"]),
            ("seq_gaps", 0, row["actual_last_seq"] - row["message_count"]),
            ("preview", 1, int(row["preview_ok"])),
        )
        drifts.extend(
            CounterDrift(conversation_id=row["id"], field=field, stored=stored, actual=actual)
            for field, stored, actual in checks
            if stored != actual
        )
    return drifts

"""Checks for tests and operations: do the cached counters match a recount?"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parley.models import CounterDrift
from parley.store._sql import connection

if TYPE_CHECKING:
    from parley.store._sql import Database


async def recount_counters(db: Database) -> list[CounterDrift]:
    """Compare every cached counter with a recount from messages.

    Returns one CounterDrift per mismatch: of a conversation (unread counts, last_seq, seq
    gaps, preview (the newest message not unsent), time against seq, messages whose is_read
    disagrees with the watermark, unsent ones aside: those are read),
    or of a user (badge total); an empty list means the triggers kept everything exact.
    Reads one consistent snapshot.
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
                   coalesce(m.read_state_mismatches, 0) AS read_state_mismatches,
                   coalesce(m.time_inversions, 0) AS time_inversions,
                   (c.last_message_text IS NOT DISTINCT FROM left(shown.content, 200)
                    AND c.last_message_type IS NOT DISTINCT FROM shown.message_type
                    AND c.last_message_sender_id IS NOT DISTINCT FROM shown.sender_id
                    AND c.last_message_at IS NOT DISTINCT FROM last.created_at) AS preview_ok
              FROM conversations c
              LEFT JOIN (
                    SELECT m.conversation_id,
                           count(*) FILTER (WHERE m.recipient_id = x.buyer_id AND NOT m.is_read
                                              AND m.seq > x.buyer_cleared_seq) AS buyer_unread,
                           count(*) FILTER (WHERE m.recipient_id = x.seller_id AND NOT m.is_read
                                              AND m.seq > x.seller_cleared_seq) AS seller_unread,
                           max(m.seq) AS max_seq,
                           count(*) AS message_count,
                           count(*) FILTER (
                               WHERE m.recipient_id IS NOT NULL AND m.unsent_at IS NULL
                                 AND m.is_read <> (m.seq <= CASE WHEN m.recipient_id = x.buyer_id
                                                                 THEN x.buyer_last_read_seq
                                                                 ELSE x.seller_last_read_seq END)
                           ) AS read_state_mismatches,
                           count(*) FILTER (WHERE m.created_at < m.earlier_at) AS time_inversions
                      FROM (SELECT *, max(created_at) OVER (PARTITION BY conversation_id
                                                             ORDER BY seq) AS earlier_at
                              FROM messages) m
                      JOIN conversations x ON x.id = m.conversation_id
                     GROUP BY m.conversation_id) m ON m.conversation_id = c.id
              LEFT JOIN messages last ON last.conversation_id = c.id AND last.seq = c.last_seq
              -- The preview shows the newest message not unsent (sql/005).
              LEFT JOIN LATERAL (
                    SELECT v.content, v.message_type, v.sender_id FROM messages v
                     WHERE v.conversation_id = c.id AND v.unsent_at IS NULL
                     ORDER BY v.seq DESC LIMIT 1) shown ON true
             ORDER BY c.id
            """
        )
        badges = await conn.fetch(
            """
            SELECT coalesce(b.user_id, s.user_id) AS user_id,
                   coalesce(b.total, 0) AS stored, coalesce(s.actual, 0) AS actual
              FROM badges b
              FULL JOIN (SELECT u.user_id, sum(u.n) AS actual
                           FROM (SELECT buyer_id AS user_id, buyer_unread_count AS n
                                   FROM conversations
                                 UNION ALL
                                 SELECT seller_id, seller_unread_count FROM conversations) u
                          GROUP BY u.user_id) s ON s.user_id = b.user_id
             WHERE coalesce(b.total, 0) <> coalesce(s.actual, 0)
             ORDER BY 1
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
            ("read_state", 0, row["read_state_mismatches"]),
            ("time_order", 0, row["time_inversions"]),
        )
        drifts.extend(
            CounterDrift(conversation_id=row["id"], field=field, stored=stored, actual=actual)
            for field, stored, actual in checks
            if stored != actual
        )
    drifts.extend(
        CounterDrift(0, "badge_total", row["stored"], row["actual"], user_id=row["user_id"])
        for row in badges
    )
    return drifts

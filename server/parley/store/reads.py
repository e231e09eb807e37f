"""Reading: read receipts (the watermark each side shows the other), and badges.

A message to a side is read exactly when its seq is at or below that side's watermark; a
badge is a user's unread counts with the version they were true at (sql/004_live_state.sql).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from parley.errors import InvalidArgument, NotFound
from parley.models import Badge, DeliveryReceipt, ReadReceipt
from parley.store._sql import BADGE_OF, connection, own_unread, participant, peer, shown_total

if TYPE_CHECKING:
    from parley.store._sql import Database

# One range scan of messages_conversation_seq; the trigger then adjusts the counter once.
MARK_READ_QUERY: Final = """
    UPDATE messages SET is_read = true, read_at = now()
     WHERE conversation_id = $1 AND recipient_id = $2
       AND seq > $3 AND seq <= $4 AND NOT is_read
"""

# The reader's own badge version is read in the same statement: the triggers of the UPDATE
# of messages before it moved it in this transaction, if the reader's counters moved.
# A read implies delivered: the same UPDATE moves the delivered watermark up to the read one
# (SET sees the row as it was, so delivered_at moves only with the watermark).
_ADVANCE_WATERMARK: Final = {
    side: f"UPDATE conversations SET {side}_last_read_seq = $2,"
    f" {side}_delivered_at = CASE WHEN $2 > {side}_delivered_seq THEN now()"
    f" ELSE {side}_delivered_at END,"
    f" {side}_delivered_seq = GREATEST({side}_delivered_seq, $2) WHERE id = $1"
    f" RETURNING {side}_unread_count AS count, {side}_delivered_at AS delivered_at,"
    f" (SELECT coalesce(max(version), 0) FROM badges WHERE user_id = $3) AS version"
    for side in ("buyer", "seller")
}


async def mark_read(
    db: Database, conversation_id: int, user_id: int, up_to_seq: int
) -> ReadReceipt:
    """Mark the other side's messages up to ``up_to_seq`` read; the watermark only moves forward.

    Beyond the last message it stops at the last message. A call at or behind the current
    watermark changes nothing and returns it with ``advanced=False``. Every message to the
    reader at or below the new watermark is read afterwards, those a delete had cleared too
    (they counted for no badge). The unread counter is lowered by the trigger, once for the
    whole statement.
    """
    if up_to_seq < 0:
        raise InvalidArgument("up_to_seq must not be negative")
    async with connection(db) as conn, conn.transaction():
        # Conversation row first: the lock order every writer follows (sql/002_triggers.sql).
        conversation = await conn.fetchrow(
            f"""
            SELECT buyer_id, last_seq, buyer_last_read_seq, seller_last_read_seq,
                   buyer_delivered_seq, seller_delivered_seq,
                   buyer_unread_count, seller_unread_count, now() AS now,
                   (SELECT coalesce(max(version), 0) FROM badges WHERE user_id = $2) AS version
              FROM conversations c
             WHERE id = $1 AND {participant("$2")}
               FOR UPDATE
            """,
            conversation_id,
            user_id,
        )
        if conversation is None:
            raise NotFound(f"conversation {conversation_id} not found")
        side = "buyer" if conversation["buyer_id"] == user_id else "seller"
        watermark = conversation[f"{side}_last_read_seq"]
        target = min(up_to_seq, conversation["last_seq"])
        if target <= watermark:
            return ReadReceipt(
                conversation_id=conversation_id,
                reader_id=user_id,
                up_to_seq=watermark,
                read_at=conversation["now"],
                messages_marked=0,
                unread_count=conversation[f"{side}_unread_count"],
                unread_version=conversation["version"],
                advanced=False,
            )
        status = await conn.execute(MARK_READ_QUERY, conversation_id, user_id, watermark, target)
        after = await conn.fetchrow(_ADVANCE_WATERMARK[side], conversation_id, target, user_id)
        assert after is not None, "the row is locked by this transaction"
    delivered_now = target > conversation[f"{side}_delivered_seq"]
    return ReadReceipt(
        conversation_id=conversation_id,
        reader_id=user_id,
        up_to_seq=target,
        read_at=conversation["now"],
        messages_marked=int(status.rsplit(" ", 1)[1]),
        unread_count=after["count"],
        unread_version=after["version"],
        advanced=True,
        delivered_at=after["delivered_at"] if delivered_now else None,
    )


# The recipient's ($2) delivered watermark, forward only, never past the last message; the
# row comes back only when it moved. One statement, on the conversation's primary key.
_MARK_DELIVERED: Final = f"""
    UPDATE conversations c
       SET buyer_delivered_seq = CASE WHEN c.buyer_id = $2 THEN LEAST($3, c.last_seq)
                                      ELSE c.buyer_delivered_seq END,
           buyer_delivered_at = CASE WHEN c.buyer_id = $2 THEN now() ELSE c.buyer_delivered_at END,
           seller_delivered_seq = CASE WHEN c.seller_id = $2 THEN LEAST($3, c.last_seq)
                                       ELSE c.seller_delivered_seq END,
           seller_delivered_at = CASE WHEN c.seller_id = $2 THEN now()
                                      ELSE c.seller_delivered_at END
     WHERE c.id = $1 AND {participant("$2")}
       AND LEAST($3, c.last_seq) > CASE WHEN c.buyer_id = $2 THEN c.buyer_delivered_seq
                                        ELSE c.seller_delivered_seq END
    RETURNING {peer("$2")} AS sender_id, LEAST($3, c.last_seq) AS up_to_seq, now() AS delivered_at
"""

_DELIVERED_NOW: Final = f"""
    SELECT {peer("$2")} AS sender_id,
           CASE WHEN c.buyer_id = $2 THEN c.buyer_delivered_seq ELSE c.seller_delivered_seq END
               AS up_to_seq,
           CASE WHEN c.buyer_id = $2 THEN c.buyer_delivered_at ELSE c.seller_delivered_at END
               AS delivered_at
      FROM conversations c
     WHERE c.id = $1 AND {participant("$2")}
"""


async def mark_delivered(
    db: Database, conversation_id: int, user_id: int, up_to_seq: int
) -> DeliveryReceipt:
    """Move the user's delivered watermark forward to ``up_to_seq`` (at most the last
    message). At or behind it, nothing changes and the receipt has ``advanced=False``.

    Raises NotFound when the conversation does not exist or the user is not in it.
    """
    if up_to_seq < 0:
        raise InvalidArgument("up_to_seq must not be negative")
    row = await db.fetchrow(_MARK_DELIVERED, conversation_id, user_id, up_to_seq)
    advanced = row is not None
    if row is None:
        row = await db.fetchrow(_DELIVERED_NOW, conversation_id, user_id)
        if row is None:
            raise NotFound(f"conversation {conversation_id} not found")
    return DeliveryReceipt(
        conversation_id=conversation_id,
        recipient_id=user_id,
        sender_id=row["sender_id"],
        up_to_seq=row["up_to_seq"],
        delivered_at=row["delivered_at"],
        advanced=advanced,
    )


# Several conversations of one recipient ($1), as _MARK_DELIVERED does for one: their rows
# locked first in id order (the lock order every writer follows), then one UPDATE; only the
# rows whose watermark moved come back.
_LOCK_CONVERSATIONS: Final = f"""
    SELECT id FROM conversations c WHERE id = ANY($2::bigint[]) AND {participant("$1")}
     ORDER BY id FOR UPDATE
"""
_MARK_DELIVERED_MANY: Final = f"""
    UPDATE conversations c
       SET buyer_delivered_seq = CASE WHEN c.buyer_id = $1 THEN LEAST(r.up_to_seq, c.last_seq)
                                      ELSE c.buyer_delivered_seq END,
           buyer_delivered_at = CASE WHEN c.buyer_id = $1 THEN now() ELSE c.buyer_delivered_at END,
           seller_delivered_seq = CASE WHEN c.seller_id = $1 THEN LEAST(r.up_to_seq, c.last_seq)
                                       ELSE c.seller_delivered_seq END,
           seller_delivered_at = CASE WHEN c.seller_id = $1 THEN now()
                                      ELSE c.seller_delivered_at END
      FROM unnest($2::bigint[], $3::bigint[]) AS r(conversation_id, up_to_seq)
     WHERE c.id = r.conversation_id AND {participant("$1")}
       AND LEAST(r.up_to_seq, c.last_seq) > CASE WHEN c.buyer_id = $1 THEN c.buyer_delivered_seq
                                                 ELSE c.seller_delivered_seq END
    RETURNING c.id AS conversation_id, {peer("$1")} AS sender_id,
              LEAST(r.up_to_seq, c.last_seq) AS up_to_seq, now() AS delivered_at
"""


async def mark_delivered_many(
    db: Database, user_id: int, up_to: dict[int, int]
) -> list[DeliveryReceipt]:
    """``mark_delivered`` for several conversations (each to its seq) in one transaction:
    the receipts that moved, in conversation order. Conversations the user is not in, and
    watermarks at or ahead of the given seq, are left as they are and not returned."""
    if any(seq < 0 for seq in up_to.values()):
        raise InvalidArgument("up_to_seq must not be negative")
    ids = sorted(up_to)
    async with connection(db) as conn, conn.transaction():
        await conn.execute(_LOCK_CONVERSATIONS, user_id, ids)
        rows = await conn.fetch(_MARK_DELIVERED_MANY, user_id, ids, [up_to[i] for i in ids])
    return sorted(
        (
            DeliveryReceipt(
                conversation_id=row["conversation_id"],
                recipient_id=user_id,
                sender_id=row["sender_id"],
                up_to_seq=row["up_to_seq"],
                delivered_at=row["delivered_at"],
                advanced=True,
            )
            for row in rows
        ),
        key=lambda receipt: receipt.conversation_id,
    )


# One primary-key probe: badges.total is kept by the triggers.
UNREAD_TOTAL_QUERY: Final = BADGE_OF


async def unread_total(db: Database, user_id: int) -> int:
    """The user's badge: unread messages over all their conversations, both roles."""
    total, _ = await badge_of(db, user_id)
    return total


async def badge_of(db: Database, user_id: int) -> tuple[int, int]:
    """The user's unread total and the version it was true at, in one statement."""
    row = await db.fetchrow(BADGE_OF, user_id)
    assert row is not None, "an aggregate always has a row"
    return int(row["total"]), int(row["version"])


# Each recipient's count in one conversation, total and version, for many at once.
BADGES_QUERY: Final = f"""
    SELECT r.user_id, r.conversation_id, {own_unread("r.user_id")} AS count,
           {shown_total("r.user_id")} AS total, coalesce(b.version, 0) AS version
      FROM unnest($1::bigint[], $2::bigint[]) AS r(user_id, conversation_id)
      JOIN conversations c ON c.id = r.conversation_id
      LEFT JOIN badges b ON b.user_id = r.user_id
"""


async def badges(db: Database, pairs: list[tuple[int, int]]) -> list[Badge]:
    """The Badge of each (user, conversation) pair, in one query."""
    if not pairs:
        return []
    rows = await db.fetch(BADGES_QUERY, [p[0] for p in pairs], [p[1] for p in pairs])
    return [
        Badge(row["user_id"], row["conversation_id"], row["count"], row["total"], row["version"])
        for row in rows
    ]

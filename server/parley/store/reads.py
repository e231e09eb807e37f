"""Reading: read receipts (the watermark each side shows the other), and badges."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from parley.errors import InvalidArgument, NotFound
from parley.models import ReadReceipt
from parley.store._sql import connection, own_unread, participant, sum_of_unread

if TYPE_CHECKING:
    from parley.store._sql import Database

# One range scan of messages_conversation_seq; the trigger then adjusts the counter once.
MARK_READ_QUERY: Final = """
    UPDATE messages SET is_read = true, read_at = now()
     WHERE conversation_id = $1 AND recipient_id = $2
       AND seq > $3 AND seq <= $4 AND NOT is_read
"""

_ADVANCE_WATERMARK: Final = {
    "buyer": "UPDATE conversations SET buyer_last_read_seq = $2 WHERE id = $1"
    " RETURNING buyer_unread_count",
    "seller": "UPDATE conversations SET seller_last_read_seq = $2 WHERE id = $1"
    " RETURNING seller_unread_count",
}


async def mark_read(
    db: Database, conversation_id: int, user_id: int, up_to_seq: int
) -> ReadReceipt:
    """Mark the other side's messages up to ``up_to_seq`` read; the watermark only moves forward.

    Beyond the last message it stops at the last message. A call at or behind the current
    watermark changes nothing and returns it with ``advanced=False``. The unread counter is
    lowered by the trigger, once for the whole statement.
    """
    if up_to_seq < 0:
        raise InvalidArgument("up_to_seq must not be negative")
    async with connection(db) as conn, conn.transaction():
        # Conversation row first: the lock order every writer follows (sql/002_triggers.sql).
        conversation = await conn.fetchrow(
            f"""
            SELECT buyer_id, last_seq, buyer_last_read_seq, seller_last_read_seq,
                   buyer_cleared_seq, seller_cleared_seq, buyer_unread_count, seller_unread_count,
                   now() AS now
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
                advanced=False,
            )
        status = await conn.execute(
            MARK_READ_QUERY,
            conversation_id,
            user_id,
            max(watermark, conversation[f"{side}_cleared_seq"]),
            target,
        )
        count = await conn.fetchval(_ADVANCE_WATERMARK[side], conversation_id, target)
    return ReadReceipt(
        conversation_id=conversation_id,
        reader_id=user_id,
        up_to_seq=target,
        read_at=conversation["now"],
        messages_marked=int(status.rsplit(" ", 1)[1]),
        unread_count=count,
        advanced=True,
    )


UNREAD_TOTAL_QUERY: Final = f"SELECT {sum_of_unread('$1')}"


async def unread_total(db: Database, user_id: int) -> int:
    """The user's badge: unread messages over all their conversations, both roles."""
    return int(await db.fetchval(UNREAD_TOTAL_QUERY, user_id))


async def badge(db: Database, user_id: int, conversation_id: int) -> tuple[int, int]:
    """The user's unread count in one conversation and over all of them, in one statement."""
    row = await db.fetchrow(
        f"""
        SELECT {own_unread("$1")} AS count, {sum_of_unread("$1")} AS total
          FROM conversations c
         WHERE c.id = $2 AND {participant("$1")}
        """,
        user_id,
        conversation_id,
    )
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return int(row["count"]), int(row["total"])


# Each recipient's count in one conversation and total over all of them, for many at once.
BADGES_QUERY: Final = f"""
    SELECT r.user_id, r.conversation_id,
           {own_unread("r.user_id")} AS count, {sum_of_unread("r.user_id")} AS total
      FROM unnest($1::bigint[], $2::bigint[]) AS r(user_id, conversation_id)
      JOIN conversations c ON c.id = r.conversation_id
"""


async def badges(db: Database, pairs: list[tuple[int, int]]) -> list[tuple[int, int, int, int]]:
    """(user, conversation, count, total) for each (user, conversation) pair, in one query."""
    if not pairs:
        return []
    rows = await db.fetch(BADGES_QUERY, [p[0] for p in pairs], [p[1] for p in pairs])
    return [
        (row["user_id"], row["conversation_id"], int(row["count"]), int(row["total"]))
        for row in rows
    ]

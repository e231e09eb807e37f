"""What a user controls about who reaches them: block (a person) and mute (a conversation).

Both silence conversations for the user (sql/008): their own counts still move, but they
leave the user's pushed total. Each change moves the user's badge version in the same
transaction, so (total, version) stays one moment. A block also stops every message between
the two users (checked on the locked conversation row by the seq trigger) and hides their
conversations from the blocker's inbox; the blocked user is not told.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from parley.errors import InvalidArgument, NotFound
from parley.models import Conversation, User
from parley.store._sql import PAIR_LOCK, connection, participant
from parley.store.conversations import get_conversation
from parley.validation import MAX_LISTED_BLOCKS, check_id

if TYPE_CHECKING:
    from parley.store._sql import Database

_PAIR_CONVERSATIONS: Final = """
    SELECT id FROM conversations
     WHERE (buyer_id = $1 AND seller_id = $2) OR (buyer_id = $2 AND seller_id = $1)
     ORDER BY id FOR UPDATE
"""
_FLAG: Final = """
    UPDATE conversations
       SET blocked_by_buyer  = CASE WHEN buyer_id  = $1 THEN $3 ELSE blocked_by_buyer END,
           blocked_by_seller = CASE WHEN seller_id = $1 THEN $3 ELSE blocked_by_seller END
     WHERE id = ANY($2::bigint[])
"""
_NEW_VERSION: Final = "UPDATE badges SET version = version + 1 WHERE user_id = $1"
# A mute the user set, or took off; NULL ``until`` in the SET means unmuted.
_MUTE: Final = f"""
    UPDATE conversations c
       SET buyer_muted_until  = CASE WHEN buyer_id  = $2 THEN $3 ELSE buyer_muted_until END,
           seller_muted_until = CASE WHEN seller_id = $2 THEN $3 ELSE seller_muted_until END
     WHERE c.id = $1 AND {participant("$2")}
       AND (CASE WHEN buyer_id = $2 THEN buyer_muted_until ELSE seller_muted_until END)
           IS DISTINCT FROM $3
    RETURNING c.id
"""
# Rows first, in id order (the lock order), then each side's update.
_LOCK_ENDED: Final = """
    SELECT id FROM conversations
     WHERE buyer_muted_until <= now() OR seller_muted_until <= now()
     ORDER BY id FOR UPDATE
"""
_END_MUTES: Final = {
    side: f"""
    UPDATE conversations SET {side}_muted_until = NULL
     WHERE {side}_muted_until <= now()
    RETURNING {side}_id AS user_id, id AS conversation_id"""
    for side in ("buyer", "seller")
}


async def block(db: Database, blocker_id: int, blocked_id: int) -> list[int]:
    """Block a user: no message passes between the two, no conversation starts, and their
    conversations leave the blocker's inbox and total. Returns those conversations' ids.
    Blocking again changes nothing."""
    return await _set_block(db, blocker_id, blocked_id, on=True)


async def unblock(db: Database, blocker_id: int, blocked_id: int) -> list[int]:
    """Take a block back: the conversations come back to the blocker's inbox and total (a
    block the other side made stands)."""
    return await _set_block(db, blocker_id, blocked_id, on=False)


async def _set_block(db: Database, blocker_id: int, blocked_id: int, *, on: bool) -> list[int]:
    check_id(blocked_id, "user_id")
    if blocker_id == blocked_id:
        raise InvalidArgument("you cannot block yourself")
    async with connection(db) as conn, conn.transaction():
        await conn.execute(PAIR_LOCK, blocker_id, blocked_id)
        if await conn.fetchval("SELECT 1 FROM users WHERE id = $1", blocked_id) is None:
            raise NotFound(f"user {blocked_id} not found")
        ids = [row["id"] for row in await conn.fetch(_PAIR_CONVERSATIONS, blocker_id, blocked_id)]
        if on:
            status = await conn.execute(
                "INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING",
                blocker_id,
                blocked_id,
            )
        else:
            status = await conn.execute(
                "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2",
                blocker_id,
                blocked_id,
            )
        if status.endswith(" 0") or not ids:
            return []
        await conn.execute(_FLAG, blocker_id, ids, on)
        await conn.execute(_NEW_VERSION, blocker_id)
    return ids


async def blocked_users(db: Database, user_id: int, limit: int = MAX_LISTED_BLOCKS) -> list[User]:
    """The users ``user_id`` blocked, most recent first (at most ``limit``)."""
    rows = await db.fetch(
        """
        SELECT u.id, u.display_name, u.avatar_url
          FROM blocks b JOIN users u ON u.id = b.blocked_id
         WHERE b.blocker_id = $1
         ORDER BY b.created_at DESC, b.blocked_id
         LIMIT $2
        """,
        user_id,
        limit,
    )
    return [
        User(id=row["id"], display_name=row["display_name"], avatar_url=row["avatar_url"])
        for row in rows
    ]


async def mute(
    db: Database, user_id: int, conversation_id: int, until: datetime | None
) -> Conversation:
    """Mute the conversation for the user until ``until`` (None: until unmuted): its count
    still moves, but it leaves their total. Muting again moves the end."""
    if until is not None and until <= datetime.now(UTC):
        raise InvalidArgument("until must be in the future")
    return await _set_mute(db, user_id, conversation_id, until or datetime.max.replace(tzinfo=UTC))


async def unmute(db: Database, user_id: int, conversation_id: int) -> Conversation:
    return await _set_mute(db, user_id, conversation_id, None)


async def _set_mute(
    db: Database, user_id: int, conversation_id: int, until: datetime | None
) -> Conversation:
    async with connection(db) as conn, conn.transaction():
        changed = await conn.fetchval(_MUTE, conversation_id, user_id, until)
        if changed is not None:
            await conn.execute(_NEW_VERSION, user_id)
        return await get_conversation(conn, conversation_id, user_id)


async def end_mutes(db: Database) -> list[tuple[int, int]]:
    """End every mute whose time is up, each user's version moved once: the (user,
    conversation) pairs whose mute ended. Safe to run from every process at once."""
    async with connection(db) as conn, conn.transaction():
        await conn.execute(_LOCK_ENDED)
        ended = [
            (row["user_id"], row["conversation_id"])
            for side in ("buyer", "seller")
            for row in await conn.fetch(_END_MUTES[side])
        ]
        for user_id in sorted({user for user, _ in ended}):
            await conn.execute(_NEW_VERSION, user_id)
    return ended

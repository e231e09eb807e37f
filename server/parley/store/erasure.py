"""A user's own data: what Parley holds about them, streamed (a data-access request), and their
erasure (sql/016_erasure.sql).

Erasure is one transaction. The user row is locked first, then their conversations in id
order (the lock order every writer follows, sql/004), then the messages. Their open offers
are withdrawn (a link each), and the content of every message they sent, and of every earlier
version, is emptied. The rows stay, with their seqs and their links' digests: the other party
keeps the conversation, and verify stays ok.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec

from parley.errors import Held, NotFound
from parley.store._sql import MESSAGE_COLUMNS, connection
from parley.store.disputes import message_pieces
from parley.validation import check_id

if TYPE_CHECKING:
    from parley.store._sql import Connection, Database

ERASED_NAME: Final = "Deleted user"
FORMAT: Final = "parley.user-export/1"

_LOCK_USER: Final = "SELECT erased_at FROM users WHERE id = $1 FOR UPDATE"
_HELD: Final = """
    SELECT r.id FROM reports r JOIN messages m ON m.id = r.message_id
     WHERE m.sender_id = $1 AND r.status = 'open' LIMIT 1
"""
_LOCK_CONVERSATIONS: Final = """
    SELECT id FROM conversations WHERE $1 IN (buyer_id, seller_id) ORDER BY id FOR UPDATE
"""
_WITHDRAW_OFFERS: Final = """
    UPDATE messages SET offer_status = 'withdrawn' WHERE sender_id = $1 AND offer_status = 'open'
"""
_ERASE_VERSIONS: Final = """
    UPDATE message_versions v SET content = '', metadata = '{}'::jsonb, erased_at = now()
      FROM messages m
     WHERE m.id = v.message_id AND m.sender_id = $1 AND v.erased_at IS NULL
"""
# An offer keeps its amount and currency: the deal, which the other party holds too.
_ERASE_MESSAGES: Final = """
    UPDATE messages
       SET content = '',
           metadata = CASE WHEN message_type = 'offer' AND unsent_at IS NULL
                           THEN metadata ELSE '{}'::jsonb END,
           erased_at = now()
     WHERE sender_id = $1 AND erased_at IS NULL
"""
_BLANK_USER: Final = """
    UPDATE users SET display_name = $2, avatar_url = NULL, show_presence = false,
                     erased_at = now()
     WHERE id = $1
"""


async def erase_user(db: Database, user_id: int) -> int:
    """Erase ``user_id``; how many of their messages were redacted. Erasing again changes
    nothing. Held while a report on one of their messages is open."""
    check_id(user_id, "user_id")
    async with connection(db) as conn, conn.transaction():
        row = await conn.fetchrow(_LOCK_USER, user_id)
        if row is None:
            raise NotFound(f"user {user_id} not found")
        report = await conn.fetchval(_HELD, user_id)
        if report is not None:
            raise Held(f"report {report} on this user's messages is open: resolve it first")
        await conn.execute(_LOCK_CONVERSATIONS, user_id)
        await conn.execute(_WITHDRAW_OFFERS, user_id)
        await conn.execute(_ERASE_VERSIONS, user_id)
        status = await conn.execute(_ERASE_MESSAGES, user_id)
        await conn.execute(_BLANK_USER, user_id, ERASED_NAME)
    return int(status.split()[-1])


_PROFILE: Final = """
    SELECT id, display_name, avatar_url, show_presence, last_seen_at, created_at, updated_at,
           erased_at
      FROM users WHERE id = $1
"""
# A user's conversations as they appear in their export and in the admin reads (admin.py
# pages them by id).
USER_CONVERSATIONS: Final = """
    SELECT c.id, c.product_id, p.title AS product_title,
           CASE WHEN c.buyer_id = $1 THEN 'buyer' ELSE 'seller' END AS role,
           CASE WHEN c.buyer_id = $1 THEN c.seller_id ELSE c.buyer_id END AS other_user_id,
           c.created_at, c.last_message_at, c.last_seq
      FROM conversations c JOIN products p ON p.id = c.product_id
     WHERE $1 IN (c.buyer_id, c.seller_id)
"""
_ALL_CONVERSATIONS: Final = USER_CONVERSATIONS + " ORDER BY c.id"
_REPORTS: Final = """
    SELECT id, message_id, reason, status, resolution, created_at, resolved_at
      FROM reports WHERE reporter_id = $1 ORDER BY id
"""
_BLOCKS: Final = "SELECT blocked_id, created_at FROM blocks WHERE blocker_id = $1 ORDER BY 2"
_MESSAGES: Final = f"""
    SELECT {MESSAGE_COLUMNS},
           coalesce((SELECT json_agg(json_build_object(
                        'change', v.change, 'content', v.content, 'metadata', v.metadata,
                        'changed_at', v.changed_at) ORDER BY v.id)
                       FROM message_versions v WHERE v.message_id = m.id), '[]')::text
               AS versions
      FROM messages m WHERE m.sender_id = $1 ORDER BY m.id
"""

_encode = msgspec.json.Encoder().encode


async def user_export(conn: Connection, user_id: int) -> AsyncGenerator[bytes, None]:
    """The user's data as JSON pieces; NotFound before the first. Holds a read-only
    transaction on ``conn`` until the pieces are read (as store/disputes.py does)."""
    check_id(user_id, "user_id")
    transaction = conn.transaction(isolation="repeatable_read", readonly=True)
    await transaction.start()
    try:
        profile = await conn.fetchrow(_PROFILE, user_id)
        if profile is None:
            raise NotFound(f"user {user_id} not found")
        head: dict[str, Any] = {
            "format": FORMAT,
            "exported_at": datetime.now(UTC),
            "profile": dict(profile),
            "conversations": [dict(r) for r in await conn.fetch(_ALL_CONVERSATIONS, user_id)],
            "reports": [dict(r) for r in await conn.fetch(_REPORTS, user_id)],
            "blocks": [dict(r) for r in await conn.fetch(_BLOCKS, user_id)],
        }
    except BaseException:
        await transaction.rollback()
        raise
    return _pieces(conn, transaction, user_id, _encode(head)[:-1] + b',"messages":[')


async def _pieces(
    conn: Connection, transaction: Any, user_id: int, head: bytes
) -> AsyncGenerator[bytes, None]:
    try:
        yield head
        async for message in message_pieces(conn, _MESSAGES, user_id):
            yield message
        yield b"]}"
    finally:
        await transaction.rollback()

"""The marketplace's reads of any conversation (internal API): a user's conversations, one
conversation with both sides' state, and its messages, paged. Nothing is hidden from them:
cleared, unsent and erased messages are listed as stored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from parley.errors import NotFound
from parley.models import Message
from parley.store._sql import MESSAGE_COLUMNS, connection
from parley.store.disputes import CONVERSATION, conversation_record
from parley.store.erasure import USER_CONVERSATIONS
from parley.validation import check_id, check_page_limit

if TYPE_CHECKING:
    from parley.store._sql import Database

_USER_CONVERSATIONS: Final = USER_CONVERSATIONS + " AND c.id > $2 ORDER BY c.id LIMIT $3"
_MESSAGES: Final = f"""
    SELECT {MESSAGE_COLUMNS} FROM messages
     WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3
"""


async def user_conversations(
    db: Database, user_id: int, after: int, limit: int
) -> list[dict[str, Any]]:
    """The user's conversations, as buyer and as seller, by id after ``after``."""
    check_id(user_id, "user_id")
    check_page_limit(limit)
    async with connection(db) as conn:
        if await conn.fetchval("SELECT 1 FROM users WHERE id = $1", user_id) is None:
            raise NotFound(f"user {user_id} not found")
        rows = await conn.fetch(_USER_CONVERSATIONS, user_id, after, limit)
    return [dict(row) for row in rows]


async def conversation(db: Database, conversation_id: int) -> dict[str, Any]:
    check_id(conversation_id, "conversation_id")
    row = await db.fetchrow(CONVERSATION, conversation_id)
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return conversation_record(row)


async def messages(db: Database, conversation_id: int, after_seq: int, limit: int) -> list[Message]:
    """Every message of the conversation by seq after ``after_seq``, as stored."""
    check_id(conversation_id, "conversation_id")
    check_page_limit(limit)
    async with connection(db) as conn:
        if (
            await conn.fetchval("SELECT 1 FROM conversations WHERE id = $1", conversation_id)
            is None
        ):
            raise NotFound(f"conversation {conversation_id} not found")
        rows = await conn.fetch(_MESSAGES, conversation_id, after_seq, limit)
    return [Message(**row) for row in rows]

"""Changes to a message already sent: edit and unsend, by its sender, within the window.

Each is one transaction: the conversation row is locked first (the lock order of sql/004),
then the message; the version before the change goes to message_versions, which only grows;
the triggers (sql/005, sql/004) move the preview, the recipient's counter and badge.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from parley.config import Limits
from parley.errors import EditWindowClosed, NotEditable, NotFound, NotYours
from parley.models import Message
from parley.safety import KINDS
from parley.store._sql import MESSAGE_COLUMNS, connection, own_cleared, participant
from parley.validation import check_id, validate_message

if TYPE_CHECKING:
    from parley.store._sql import Connection, Database

# The message as its conversation's participant may see it, with the conversation locked.
_LOCK_FOR_CHANGE: Final = f"""
    SELECT c.id AS locked_conversation, {own_cleared("$2")} AS cleared_seq
      FROM conversations c
     WHERE c.id = (SELECT conversation_id FROM messages WHERE id = $1) AND {participant("$2")}
       FOR UPDATE OF c
"""
_MESSAGE: Final = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 FOR UPDATE"
_KEEP_VERSION: Final = """
    INSERT INTO message_versions (message_id, change, content, metadata, changed_by)
    SELECT id, $2, content, metadata, $3 FROM messages WHERE id = $1
"""
_EDIT: Final = f"""
    UPDATE messages SET content = $2, edited_at = now(), safety = $3::text[] WHERE id = $1
    RETURNING {MESSAGE_COLUMNS}
"""
# Unread at the time, it becomes read: the recipient's counter and badge drop once (sql/004).
# An open offer taken back is withdrawn.
_UNSEND: Final = f"""
    UPDATE messages
       SET content = '', metadata = '{{}}'::jsonb, unsent_at = now(),
           is_read = true, read_at = coalesce(read_at, now()),
           offer_status = CASE offer_status WHEN 'open' THEN 'withdrawn' ELSE offer_status END
     WHERE id = $1
    RETURNING {MESSAGE_COLUMNS}
"""


async def edit_message(
    db: Database,
    user_id: int,
    message_id: int,
    content: str,
    limits: Limits,
    now: datetime | None = None,
    safety: Sequence[str] = (),
) -> Message:
    """Replace a text message's content; the old content is kept in message_versions.
    ``safety``: what was found in the new content; the message keeps what its earlier
    content had too (a warning the recipient saw does not go away with an edit)."""
    validate_message("text", content, {}, limits)
    async with connection(db) as conn, conn.transaction():
        message = await _changeable(conn, user_id, message_id, limits, now)
        if message.message_type != "text":
            raise NotEditable(f"only text messages are edited; this one is {message.message_type}")
        if message.content == content:
            return message  # a retry of the same edit: nothing to keep twice
        await conn.execute(_KEEP_VERSION, message_id, "edit", user_id)
        kinds = [kind for kind in KINDS if kind in {*message.safety, *safety}]
        return await changed_message(conn, _EDIT, message_id, content, kinds)


async def unsend_message(
    db: Database, user_id: int, message_id: int, limits: Limits, now: datetime | None = None
) -> tuple[Message, bool]:
    """Take a message back: both sides see it unsent; its content is kept in
    message_versions. Returns the message and whether it was unread (a badge dropped)."""
    async with connection(db) as conn, conn.transaction():
        message = await _changeable(conn, user_id, message_id, limits, now)
        if message.offer_status == "accepted":
            raise NotEditable("an accepted offer is a deal: it stays")
        await conn.execute(_KEEP_VERSION, message_id, "unsend", user_id)
        unsent = await changed_message(conn, _UNSEND, message_id)
        return unsent, not message.is_read


async def message_versions(db: Database, message_id: int) -> list[tuple[str, str, datetime]]:
    """Every earlier version of a message, oldest first: (change, content, changed_at)."""
    rows = await db.fetch(
        "SELECT change, content, changed_at FROM message_versions"
        " WHERE message_id = $1 ORDER BY id",
        message_id,
    )
    return [(row["change"], row["content"], row["changed_at"]) for row in rows]


async def _changeable(
    conn: Connection,
    user_id: int,
    message_id: int,
    limits: Limits,
    now: datetime | None,
) -> Message:
    """The message, locked with its conversation, if ``user_id`` may change it now."""
    check_id(message_id, "message_id")
    locked = await conn.fetchrow(_LOCK_FOR_CHANGE, message_id, user_id)
    message = await conn.fetchrow(_MESSAGE, message_id) if locked else None
    if locked is None or message is None or message["seq"] <= locked["cleared_seq"]:
        # Outsiders, and messages the caller cleared, are indistinguishable from none.
        raise NotFound(f"message {message_id} not found")
    if message["sender_id"] != user_id:
        raise NotYours("only the sender can change a message")
    if message["unsent_at"] is not None:
        raise NotEditable("the message was unsent")
    window = timedelta(seconds=limits.edit_window_seconds)
    if (now or datetime.now(UTC)) - message["created_at"] > window:
        raise EditWindowClosed(
            f"messages can be changed for {limits.edit_window_seconds:.0f} s after sending"
        )
    return Message(**message)


async def changed_message(conn: Connection, query: str, *args: object) -> Message:
    """The message an UPDATE ... RETURNING of a row this transaction has locked gives back."""
    row = await conn.fetchrow(query, *args)
    assert row is not None, "the message is locked by this transaction"
    return Message(**row)

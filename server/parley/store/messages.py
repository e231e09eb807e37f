"""Messages: send one, send many in one commit (group commit), and read them back by seq.

Triggers (sql/) assign each message its seq and move the preview and the unread counters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import asyncpg
import msgspec

from parley.config import Limits
from parley.errors import (
    Blocked,
    ClientMsgIdConflict,
    InvalidArgument,
    InvalidMetadata,
    NotFound,
    ParleyError,
    ProductUnavailable,
)
from parley.models import Badge, Message, SentMessage
from parley.store._sql import (
    MESSAGE_COLUMNS,
    UNBLOCKED,
    connection,
    own_cleared,
    participant,
    peer,
)
from parley.validation import (
    MAX_ID,
    check_client_msg_id,
    check_page_limit,
    check_sender,
    metadata_json,
    validate_message,
)

if TYPE_CHECKING:
    from parley.store._sql import Connection, Database


class SendRequest(msgspec.Struct, frozen=True):
    """One user's message.send, as send_many takes it."""

    conversation_id: int
    sender_id: int
    client_msg_id: str
    content: str
    message_type: str = "text"
    metadata: dict[str, Any] = {}
    safety: tuple[str, ...] = ()  # what parley/safety.py found in it


INSERT_SYSTEM: Final = f"""
    INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type,
                          content, metadata, client_msg_id)
    SELECT c.id, NULL, NULL, 'system', $2, $3, $4 FROM conversations c WHERE c.id = $1
    RETURNING {MESSAGE_COLUMNS}
"""

INSERT_USER: Final = f"""
    INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type,
                          content, metadata, client_msg_id, safety)
    SELECT c.id, $2, {peer("$2")}, $3, $4, $5, $6, $7::text[]
      FROM conversations c
     WHERE c.id = $1 AND {participant("$2")} AND {UNBLOCKED}
    RETURNING {MESSAGE_COLUMNS}
"""


async def send_message(
    db: Database,
    *,
    conversation_id: int,
    sender_id: int | None,
    client_msg_id: str,
    content: str,
    message_type: str = "text",
    metadata: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
    safety: Sequence[str] = (),
) -> SentMessage:
    """Store a message; triggers assign its seq and update preview and counters.

    ``sender_id`` None sends a system message (from the marketplace, to both sides); users
    cannot send system messages. Idempotent on (sender, client_msg_id): a retry of the same
    message returns the stored one with ``replayed=True`` and writes nothing; reusing the id
    for different content raises ClientMsgIdConflict. Raises NotFound when the conversation
    does not exist or the sender is not in it, InvalidMessage subclasses for bad content.
    """
    metadata = {} if metadata is None else metadata
    validate_message(message_type, content, metadata, limits or Limits())
    check_sender(message_type, sender_id)
    check_client_msg_id(client_msg_id)
    try:
        if sender_id is None:
            row = await db.fetchrow(
                INSERT_SYSTEM, conversation_id, content, metadata, client_msg_id
            )
        else:
            row = await db.fetchrow(
                INSERT_USER,
                conversation_id,
                sender_id,
                message_type,
                content,
                metadata,
                client_msg_id,
                list(safety),
            )
    except asyncpg.CheckViolationError as error:
        refusal: ParleyError | None = insert_refusal(error)
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name != "messages_sender_client_msg_id":
            raise
        # No ON CONFLICT DO NOTHING here: the seq trigger would keep its increment for the
        # skipped row. The failed INSERT rolled back whole, so nothing was written.
        refusal = None
    else:
        if row is not None:
            return SentMessage(message=Message(**row), replayed=False)
        refusal = await not_sent(db, conversation_id, sender_id)
        if isinstance(refusal, NotFound):
            raise refusal
    # Nothing was written. A retry of a message stored before is a replay, even if it would
    # be refused now (a block since, an offer on a listing sold since).
    original = await db.fetchrow(EXISTING_ONE, sender_id, client_msg_id)
    if original is not None:
        return replay(Message(**original), conversation_id, message_type, content)
    assert refusal is not None, "a unique violation means the row exists"
    raise refusal


async def not_sent(db: Database, conversation_id: int, sender_id: int | None) -> ParleyError:
    """Why a user's INSERT stored no row: a block stands, or (outsiders, unknown ids alike)
    there is no such conversation of theirs."""
    found = await db.fetchval(
        f"SELECT 1 FROM conversations c WHERE c.id = $1 AND {participant('$2')}",
        conversation_id,
        sender_id,
    )
    if found:
        return Blocked("you cannot message this user")
    return NotFound(f"conversation {conversation_id} not found")


def insert_refusal(error: asyncpg.CheckViolationError) -> ParleyError:
    """The refusal a rule of sql/007 raised on an INSERT of an offer, as the caller's error;
    any other CHECK is a bug, and raises as it is."""
    if error.constraint_name == "offers_need_an_active_product":
        return ProductUnavailable(str(error))
    if error.constraint_name == "offers_in_the_listing_currency":
        return InvalidMetadata(str(error))
    if error.constraint_name == "messages_not_across_a_block":
        return Blocked("you cannot message this user")
    raise error


def replay(original: Message, conversation_id: int, message_type: str, content: str) -> SentMessage:
    """A send whose (sender, client_msg_id) is taken: the same message again is a replay of
    ``original``; anything else reusing the id is a ClientMsgIdConflict."""
    if (
        original.conversation_id != conversation_id
        or original.message_type != message_type
        or original.content != content
    ):
        raise ClientMsgIdConflict(
            f"client_msg_id {original.client_msg_id!r} was already used for a different message"
        )
    return SentMessage(message=original, replayed=True)


EXISTING_ONE: Final = f"""
    SELECT {MESSAGE_COLUMNS} FROM messages
     WHERE sender_id IS NOT DISTINCT FROM $1 AND client_msg_id = $2
"""

# Many sends in one statement and one commit, each inserted message with its recipient's badge
# right after it (sql/010_send_many.sql): one round trip between the batch and its events.
SEND_MANY_QUERY: Final = """
    SELECT * FROM send_many($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                            $6::text[], $7::text[])
"""
_MESSAGE_FIELDS: Final = len(Message.__struct_fields__)

_EXISTING_MANY: Final = f"""
    SELECT {MESSAGE_COLUMNS} FROM messages
     WHERE (sender_id, client_msg_id) IN (SELECT * FROM unnest($1::bigint[], $2::text[]))
"""


class SentBatch(NamedTuple):
    """What send_many did: each request's SentMessage or the ParleyError it would have raised
    from send_message, in order; and the badge of each (recipient, conversation) that a new
    message moved, as it was at the commit. A batch that fell back to one send at a time has
    no badges: the caller reads them."""

    results: list[SentMessage | ParleyError]
    badges: dict[tuple[int, int], Badge]


async def send_many(
    db: Database, requests: list[SendRequest], limits: Limits | None = None
) -> SentBatch:
    """Store many users' messages in one statement and one commit (group commit), with the
    same rules, idempotency and triggers, per message, as send_message. Should another
    process insert one of the same (sender, client_msg_id) at the same moment, the batch
    falls back to sending one by one.
    """
    limits = limits or Limits()
    results: list[SentMessage | ParleyError | None] = [None] * len(requests)
    metadata: dict[int, str] = {}
    first: dict[tuple[int, str], int] = {}
    for index, request in enumerate(requests):
        try:
            check_client_msg_id(request.client_msg_id)
            validate_message(request.message_type, request.content, request.metadata, limits)
            check_sender(request.message_type, request.sender_id)
        except ParleyError as error:
            results[index] = error
            continue
        metadata[index] = metadata_json(request.metadata).decode()
        first.setdefault((request.sender_id, request.client_msg_id), index)
    batch = sorted(first.values())
    if not batch:
        return SentBatch([result for result in results if result is not None], {})
    try:
        rows = await db.fetch(
            SEND_MANY_QUERY,
            [requests[i].conversation_id for i in batch],
            [requests[i].sender_id for i in batch],
            [requests[i].message_type for i in batch],
            [requests[i].content for i in batch],
            [metadata[i] for i in batch],
            [requests[i].client_msg_id for i in batch],
            [",".join(requests[i].safety) for i in batch],
        )
    except (asyncpg.UniqueViolationError, asyncpg.CheckViolationError):
        # One send of the batch broke a rule the statement checks (an offer on a sold
        # listing): the statement wrote nothing; each send goes alone, to be told apart.
        return SentBatch(
            [
                result if result is not None else await _send_one(db, request, limits)
                for result, request in zip(results, requests, strict=True)
            ],
            {},
        )
    stored: dict[tuple[int, str], Message] = {}
    badges: dict[tuple[int, int], Badge] = {}
    for row in rows:
        stored[(row["sender_id"], row["client_msg_id"])] = Message(*row[:_MESSAGE_FIELDS])
        key = (row["recipient_id"], row["conversation_id"])
        badges[key] = Badge(*key, row["badge_count"], row["badge_total"], row["badge_version"])
    missing = [key for key in first if key not in stored]
    existing: dict[tuple[int, str], Message] = {}
    if missing:
        found = await db.fetch(
            _EXISTING_MANY, [key[0] for key in missing], [key[1] for key in missing]
        )
        existing = {(row["sender_id"], row["client_msg_id"]): Message(**row) for row in found}
    for index, request in enumerate(requests):
        if results[index] is not None:
            continue
        key = (request.sender_id, request.client_msg_id)
        message = stored.get(key)
        if message is not None and first[key] == index:
            results[index] = SentMessage(message=message, replayed=False)
            continue
        original = message or existing.get(key)
        if original is None:
            results[index] = await not_sent(db, request.conversation_id, request.sender_id)
            continue
        try:
            results[index] = replay(
                original, request.conversation_id, request.message_type, request.content
            )
        except ClientMsgIdConflict as conflict:
            results[index] = conflict
    return SentBatch([result for result in results if result is not None], badges)


async def _send_one(
    db: Database, request: SendRequest, limits: Limits
) -> SentMessage | ParleyError:
    try:
        return await send_message(
            db,
            conversation_id=request.conversation_id,
            sender_id=request.sender_id,
            client_msg_id=request.client_msg_id,
            content=request.content,
            message_type=request.message_type,
            metadata=request.metadata,
            limits=limits,
            safety=request.safety,
        )
    except ParleyError as error:
        return error


# A backwards range scan of messages_conversation_seq.
HISTORY_QUERY: Final = f"""
    SELECT {MESSAGE_COLUMNS} FROM messages
     WHERE conversation_id = $1 AND seq > $2 AND seq < $3
     ORDER BY seq DESC
     LIMIT $4
"""

_AFTER_QUERY: Final = f"""
    SELECT {MESSAGE_COLUMNS} FROM messages
     WHERE conversation_id = $1 AND seq > $2
     ORDER BY seq
     LIMIT $3
"""


async def history(
    db: Database,
    conversation_id: int,
    user_id: int,
    before_seq: int | None = None,
    limit: int = 50,
) -> list[Message]:
    """Up to ``limit`` messages before ``before_seq`` (newest page if None), oldest first.

    Messages the user cleared by deleting the conversation are not returned.
    """
    check_page_limit(limit)
    if before_seq is not None and before_seq < 1:
        raise InvalidArgument("before_seq must be a positive seq")
    newest = MAX_ID if before_seq is None else before_seq
    async with connection(db) as conn:
        cleared = await cleared_seq(conn, conversation_id, user_id)
        rows = await conn.fetch(HISTORY_QUERY, conversation_id, cleared, newest, limit)
    return [Message(**row) for row in reversed(rows)]


async def messages_after(
    db: Database, conversation_id: int, user_id: int, after_seq: int, limit: int = 200
) -> list[Message]:
    """Up to ``limit`` messages with seq > ``after_seq``, oldest first (for catching up)."""
    check_page_limit(limit)
    if after_seq < 0:
        raise InvalidArgument("after_seq must not be negative")
    async with connection(db) as conn:
        cleared = await cleared_seq(conn, conversation_id, user_id)
        rows = await conn.fetch(_AFTER_QUERY, conversation_id, max(after_seq, cleared), limit)
    return [Message(**row) for row in rows]


async def cleared_seq(conn: Connection, conversation_id: int, user_id: int) -> int:
    cleared = await conn.fetchval(
        f"""
        SELECT {own_cleared("$2")}
          FROM conversations c WHERE c.id = $1 AND {participant("$2")}
        """,
        conversation_id,
        user_id,
    )
    if cleared is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return int(cleared)

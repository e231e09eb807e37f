"""Every SQL statement Parley runs: one async function per operation, each one statement or
one transaction, all parameterised. Triggers (sql/002_triggers.sql) keep the counters."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import asyncpg
import msgspec

from parley.config import Limits
from parley.errors import (
    ClientMsgIdConflict,
    ContentTooLong,
    EmptyContent,
    Forbidden,
    InvalidArgument,
    InvalidMetadata,
    InvalidText,
    MetadataTooLarge,
    NotFound,
    OwnProduct,
    ParleyError,
    ProductUnavailable,
    UnknownMessageType,
)
from parley.models import (
    MESSAGE_TYPES,
    Conversation,
    CounterDrift,
    InboxPage,
    Message,
    Product,
    ReadReceipt,
    SentMessage,
    User,
)

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    _Connection = PoolConnectionProxy[asyncpg.Record]

MAX_PAGE: Final = 200
_MAX_METADATA_DEPTH: Final = 16
_MAX_CLIENT_MSG_ID: Final = 64
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MESSAGE_COLUMNS: Final = (
    "id, conversation_id, seq, sender_id, recipient_id, message_type, content, metadata,"
    " client_msg_id, is_read, read_at, created_at"
)

# ---------------------------------------------------------------------------------------------
# Users and products (mirrored from the marketplace)


async def upsert_user(
    pool: asyncpg.Pool, user_id: int, display_name: str = "", avatar_url: str | None = None
) -> User:
    """Create or update a user as the marketplace knows them."""
    _check_id(user_id, "user_id")
    _check_text(display_name, "display_name")
    row = await pool.fetchrow(
        """
        INSERT INTO users (id, display_name, avatar_url) VALUES ($1, $2, $3)
        ON CONFLICT (id) DO UPDATE
            SET display_name = EXCLUDED.display_name, avatar_url = EXCLUDED.avatar_url
        RETURNING id, display_name, avatar_url
        """,
        user_id,
        display_name,
        avatar_url,
    )
    assert row is not None
    return User(**row)


# The hello: the user and their badge in one read (no commit), for every connect.
_USER_AND_BADGE: Final = """
    SELECT u.id, u.display_name, u.avatar_url,
           (SELECT coalesce(sum(buyer_unread_count), 0) FROM conversations
             WHERE buyer_id = u.id AND buyer_unread_count > 0)
         + (SELECT coalesce(sum(seller_unread_count), 0) FROM conversations
             WHERE seller_id = u.id AND seller_unread_count > 0) AS unread_total
      FROM users u WHERE u.id = $1
"""


async def ensure_user(pool: asyncpg.Pool, user_id: int) -> tuple[User, int]:
    """The user and their unread total; a user the marketplace has not synced yet is created
    with an empty profile (a valid token proves the marketplace knows them).

    One read for a known user, so a reconnect storm costs no commits.
    """
    _check_id(user_id, "user_id")
    row = await pool.fetchrow(_USER_AND_BADGE, user_id)
    if row is None:
        await pool.execute(
            "INSERT INTO users (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", user_id
        )
        row = await pool.fetchrow(_USER_AND_BADGE, user_id)
        assert row is not None
    user = User(id=row["id"], display_name=row["display_name"], avatar_url=row["avatar_url"])
    return user, int(row["unread_total"])


async def upsert_product(
    pool: asyncpg.Pool,
    product_id: int,
    seller_id: int,
    title: str = "",
    *,
    price_cents: int | None = None,
    currency: str = "USD",
    image_url: str | None = None,
    status: str = "active",
) -> tuple[Product, list[int]]:
    """Create or update a product; return it and the ids of conversations whose status changed.

    A product that becomes sold or deleted archives its conversations (for both sides);
    relisting it makes them active again. Only a change of status does this, so a
    marketplace re-sending the same state does not undo a user's unarchive.

    Raises NotFound for an unknown seller, Forbidden when the product would change seller,
    InvalidArgument for a bad status, price or currency.
    """
    _check_id(product_id, "product_id")
    _check_id(seller_id, "seller_id")
    _check_text(title, "title")
    if status not in ("active", "sold", "deleted"):
        raise InvalidArgument(f"product status must be active, sold or deleted, not {status!r}")
    if not _CURRENCY.match(currency):
        raise InvalidArgument(
            f"currency must be three capital letters (ISO 4217), not {currency!r}"
        )
    if price_cents is not None and price_cents < 0:
        raise InvalidArgument("price_cents must not be negative")
    async with pool.acquire() as conn, conn.transaction():
        try:
            row = await conn.fetchrow(
                """
                INSERT INTO products
                       (id, seller_id, title, price_cents, currency, image_url, status)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (id) DO UPDATE
                    SET title = EXCLUDED.title, price_cents = EXCLUDED.price_cents,
                        currency = EXCLUDED.currency, image_url = EXCLUDED.image_url,
                        status = EXCLUDED.status
                    WHERE products.seller_id = EXCLUDED.seller_id
                RETURNING id, seller_id, title, price_cents, currency, image_url, status
                """,
                product_id,
                seller_id,
                title,
                price_cents,
                currency,
                image_url,
                status,
            )
        except asyncpg.ForeignKeyViolationError:
            raise NotFound(f"seller {seller_id} is unknown; upsert the user first") from None
        if row is None:
            raise Forbidden(f"product {product_id} belongs to another seller; sellers are fixed")
        changed = await conn.fetch(
            """
            UPDATE conversations
               SET status = $2,
                   archived_by_buyer = archived_by_buyer OR $2 = 'archived',
                   archived_by_seller = archived_by_seller OR $2 = 'archived'
             WHERE product_id = $1 AND status <> $2
            RETURNING id
            """,
            product_id,
            "active" if status == "active" else "archived",
        )
    return Product(**row), [r["id"] for r in changed]


# ---------------------------------------------------------------------------------------------
# Conversations

_CONVERSATION_VIEW: Final = """
    SELECT c.*,
           p.seller_id AS p_seller_id, p.title AS p_title, p.price_cents AS p_price_cents,
           p.currency AS p_currency, p.image_url AS p_image_url, p.status AS p_status,
           u.id AS u_id, u.display_name AS u_display_name, u.avatar_url AS u_avatar_url
      FROM conversations c
      JOIN products p ON p.id = c.product_id
      JOIN users u ON u.id = CASE WHEN c.buyer_id = $2 THEN c.seller_id ELSE c.buyer_id END
"""


# The get-or-create lookup: one probe of the conversations_one_per_triple unique index.
FIND_CONVERSATION_QUERY: Final = (
    _CONVERSATION_VIEW
    + " WHERE c.product_id = $1 AND c.buyer_id = $2 AND c.seller_id = p.seller_id"
)


async def get_conversation(pool: asyncpg.Pool, conversation_id: int, user_id: int) -> Conversation:
    """The conversation as ``user_id`` sees it.

    Raises NotFound for non-participants exactly as for unknown ids.
    """
    row = await pool.fetchrow(
        _CONVERSATION_VIEW + " WHERE c.id = $1 AND $2 IN (c.buyer_id, c.seller_id)",
        conversation_id,
        user_id,
    )
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return _conversation_view(row, user_id)


async def participants(pool: asyncpg.Pool, conversation_id: int) -> tuple[int, int]:
    """(buyer_id, seller_id) of a conversation, for service-side events; NotFound if none."""
    row = await pool.fetchrow(
        "SELECT buyer_id, seller_id FROM conversations WHERE id = $1", conversation_id
    )
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return int(row["buyer_id"]), int(row["seller_id"])


async def peer_of(pool: asyncpg.Pool, conversation_id: int, user_id: int) -> int:
    """The other participant; NotFound for non-participants as for unknown conversations."""
    peer = await pool.fetchval(
        """
        SELECT CASE WHEN buyer_id = $2 THEN seller_id ELSE buyer_id END
          FROM conversations WHERE id = $1 AND $2 IN (buyer_id, seller_id)
        """,
        conversation_id,
        user_id,
    )
    if peer is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return int(peer)


async def open_conversation(
    pool: asyncpg.Pool, buyer_id: int, product_id: int
) -> tuple[Conversation, bool]:
    """Get or create the one conversation of (product, buyer, product's seller).

    Returns the conversation and whether it was created now. Race-safe: concurrent calls for
    the same triple all return the same row. Raises NotFound for an unknown product,
    OwnProduct when the seller asks about their own product, ProductUnavailable when a new
    conversation would start about a product that is not active (an existing one is returned).
    """
    _check_id(product_id, "product_id")
    async with pool.acquire() as conn:
        existing = await _find_conversation(conn, buyer_id, product_id)
        if existing is not None:
            return existing, False
        product = await conn.fetchrow(
            "SELECT seller_id, status FROM products WHERE id = $1", product_id
        )
        if product is None:
            raise NotFound(f"product {product_id} not found")
        if product["seller_id"] == buyer_id:
            raise OwnProduct("sellers cannot open a conversation about their own product")
        if product["status"] != "active":
            raise ProductUnavailable(f"product {product_id} is {product['status']}")
        try:
            created = await conn.fetchval(
                """
                INSERT INTO conversations (product_id, buyer_id, seller_id)
                SELECT p.id, $2, p.seller_id FROM products p
                 WHERE p.id = $1 AND p.status = 'active' AND p.seller_id <> $2
                ON CONFLICT (product_id, buyer_id, seller_id) DO NOTHING
                RETURNING id
                """,
                product_id,
                buyer_id,
            )
        except asyncpg.ForeignKeyViolationError:
            raise NotFound(f"user {buyer_id} is unknown") from None
        # Not created: a concurrent call won the insert (this new statement sees its commit),
        # or the product changed between our two reads.
        conversation = await _find_conversation(conn, buyer_id, product_id)
        if conversation is None:
            raise ProductUnavailable(f"product {product_id} is no longer available")
        return conversation, created is not None


async def _find_conversation(
    conn: _Connection, buyer_id: int, product_id: int
) -> Conversation | None:
    row = await conn.fetchrow(FIND_CONVERSATION_QUERY, product_id, buyer_id)
    return None if row is None else _conversation_view(row, buyer_id)


# Each branch walks its side's inbox index backwards from the cursor and stops at $5 rows.
INBOX_QUERY: Final = """
    SELECT page.*,
           p.seller_id AS p_seller_id, p.title AS p_title, p.price_cents AS p_price_cents,
           p.currency AS p_currency, p.image_url AS p_image_url, p.status AS p_status,
           u.id AS u_id, u.display_name AS u_display_name, u.avatar_url AS u_avatar_url
      FROM ((SELECT * FROM conversations c
              WHERE c.buyer_id = $1 AND c.archived_by_buyer = $2
                AND NOT c.deleted_by_buyer AND c.last_message_at IS NOT NULL
                AND (c.last_message_at, c.id) < ($3, $4)
              ORDER BY c.last_message_at DESC, c.id DESC
              LIMIT $5)
            UNION ALL
            (SELECT * FROM conversations c
              WHERE c.seller_id = $1 AND c.archived_by_seller = $2
                AND NOT c.deleted_by_seller AND c.last_message_at IS NOT NULL
                AND (c.last_message_at, c.id) < ($3, $4)
              ORDER BY c.last_message_at DESC, c.id DESC
              LIMIT $5)) page
      JOIN products p ON p.id = page.product_id
      JOIN users u ON u.id = CASE WHEN page.buyer_id = $1 THEN page.seller_id
                                  ELSE page.buyer_id END
     ORDER BY page.last_message_at DESC, page.id DESC
     LIMIT $5
"""


async def inbox(
    pool: asyncpg.Pool,
    user_id: int,
    cursor: str | None = None,
    limit: int = 20,
    archived: bool = False,
) -> InboxPage:
    """One page of the user's conversations, as buyer and seller together, newest activity first.

    Conversations without messages, and those the user deleted (until a new message arrives),
    are left out. ``archived=True`` lists the user's archive instead. ``next_cursor`` is None
    on the last page; pass it back unchanged to get the next one.
    """
    _check_limit(limit)
    before_at, before_id = _decode_cursor(cursor)
    rows = await pool.fetch(
        INBOX_QUERY,
        user_id,
        archived,
        before_at,
        before_id,
        limit + 1,
    )
    conversations = [_conversation_view(row, user_id) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = conversations[-1]
        assert last.last_message_at is not None
        next_cursor = _encode_cursor(last.last_message_at, last.id)
    return InboxPage(conversations=conversations, next_cursor=next_cursor)


async def delete_for(pool: asyncpg.Pool, user_id: int, conversation_id: int) -> Conversation:
    """Hide the conversation and its history so far from ``user_id`` only; the data is kept.

    The user's badge for it drops to zero (without sending read receipts). A new message
    from either side brings the conversation back, showing only what came after the delete.
    """
    row = await pool.fetchrow(
        """
        UPDATE conversations
           SET deleted_by_buyer  = deleted_by_buyer  OR buyer_id  = $2,
               deleted_by_seller = deleted_by_seller OR seller_id = $2,
               buyer_cleared_seq =
                   CASE WHEN buyer_id = $2 THEN last_seq ELSE buyer_cleared_seq END,
               seller_cleared_seq =
                   CASE WHEN seller_id = $2 THEN last_seq ELSE seller_cleared_seq END,
               buyer_unread_count =
                   CASE WHEN buyer_id = $2 THEN 0 ELSE buyer_unread_count END,
               seller_unread_count =
                   CASE WHEN seller_id = $2 THEN 0 ELSE seller_unread_count END
         WHERE id = $1 AND $2 IN (buyer_id, seller_id)
        RETURNING id
        """,
        conversation_id,
        user_id,
    )
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return await get_conversation(pool, conversation_id, user_id)


async def archive(pool: asyncpg.Pool, user_id: int, conversation_id: int) -> Conversation:
    """Move the conversation to the user's archive (their side only)."""
    return await _set_archived(pool, user_id, conversation_id, True)


async def unarchive(pool: asyncpg.Pool, user_id: int, conversation_id: int) -> Conversation:
    """Bring the conversation back to the user's inbox (their side only)."""
    return await _set_archived(pool, user_id, conversation_id, False)


async def _set_archived(
    pool: asyncpg.Pool, user_id: int, conversation_id: int, archived: bool
) -> Conversation:
    row = await pool.fetchrow(
        """
        UPDATE conversations
           SET archived_by_buyer  = CASE WHEN buyer_id  = $2 THEN $3 ELSE archived_by_buyer END,
               archived_by_seller = CASE WHEN seller_id = $2 THEN $3 ELSE archived_by_seller END
         WHERE id = $1 AND $2 IN (buyer_id, seller_id)
        RETURNING id
        """,
        conversation_id,
        user_id,
        archived,
    )
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return await get_conversation(pool, conversation_id, user_id)


# Two index-only scans of the partial unread indexes: only conversations with a badge.
UNREAD_TOTAL_QUERY: Final = """
    SELECT (SELECT coalesce(sum(buyer_unread_count), 0) FROM conversations
             WHERE buyer_id = $1 AND buyer_unread_count > 0)
         + (SELECT coalesce(sum(seller_unread_count), 0) FROM conversations
             WHERE seller_id = $1 AND seller_unread_count > 0)
"""


async def unread_total(pool: asyncpg.Pool, user_id: int) -> int:
    """The user's badge: unread messages over all their conversations, both roles."""
    total = await pool.fetchval(
        UNREAD_TOTAL_QUERY,
        user_id,
    )
    return int(total)


async def badge(pool: asyncpg.Pool, user_id: int, conversation_id: int) -> tuple[int, int]:
    """The user's unread count in one conversation and over all of them, in one statement."""
    row = await pool.fetchrow(
        """
        SELECT CASE WHEN c.buyer_id = $1 THEN c.buyer_unread_count
                    ELSE c.seller_unread_count END AS count,
               (SELECT coalesce(sum(buyer_unread_count), 0) FROM conversations
                 WHERE buyer_id = $1 AND buyer_unread_count > 0)
             + (SELECT coalesce(sum(seller_unread_count), 0) FROM conversations
                 WHERE seller_id = $1 AND seller_unread_count > 0) AS total
          FROM conversations c
         WHERE c.id = $2 AND $1 IN (c.buyer_id, c.seller_id)
        """,
        user_id,
        conversation_id,
    )
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return int(row["count"]), int(row["total"])


# ---------------------------------------------------------------------------------------------
# Messages


def validate_message(
    message_type: str, content: str, metadata: Mapping[str, Any], limits: Limits
) -> None:
    """Check a message against the per-type rules without touching the database.

    text and system need non-blank content; image needs ``metadata.url`` (https) and may
    have a caption; offer needs ``metadata.amount`` (a positive whole number of minor units)
    and ``metadata.currency`` (ISO 4217). Raises a subclass of InvalidMessage.
    """
    if message_type not in MESSAGE_TYPES:
        raise UnknownMessageType(
            f"message_type must be one of {', '.join(sorted(MESSAGE_TYPES))}, not {message_type!r}"
        )
    if not isinstance(content, str):
        raise InvalidText("content must be a string")
    _check_text(content, "content")
    if len(content) > limits.max_content_chars:
        raise ContentTooLong(
            f"content has {len(content)} characters; the limit is {limits.max_content_chars}"
        )
    if message_type in ("text", "system") and not content.strip():
        raise EmptyContent(f"a {message_type} message needs non-blank content")
    if not isinstance(metadata, Mapping):
        raise InvalidMetadata("metadata must be a JSON object")
    _check_json(metadata, depth=0)
    size = len(_metadata_bytes(metadata))
    if size > limits.max_metadata_bytes:
        raise MetadataTooLarge(
            f"metadata is {size} bytes as JSON; the limit is {limits.max_metadata_bytes}"
        )
    if message_type == "image":
        url = metadata.get("url")
        if not isinstance(url, str) or not _is_https_url(url):
            raise InvalidMetadata("an image message needs metadata.url, an https:// URL")
    elif message_type == "offer":
        amount = metadata.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InvalidMetadata("an offer needs metadata.amount, a positive whole number")
        if amount > 2**53:
            raise InvalidMetadata("metadata.amount is too large")
        currency = metadata.get("currency")
        if not isinstance(currency, str) or not _CURRENCY.match(currency):
            raise InvalidMetadata("an offer needs metadata.currency, three capital letters")


async def send_message(
    pool: asyncpg.Pool,
    *,
    conversation_id: int,
    sender_id: int | None,
    client_msg_id: str,
    content: str,
    message_type: str = "text",
    metadata: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
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
    if (message_type == "system") != (sender_id is None):
        raise Forbidden("only the marketplace sends system messages, and only system messages")
    if not isinstance(client_msg_id, str) or not 0 < len(client_msg_id) <= _MAX_CLIENT_MSG_ID:
        raise InvalidArgument(f"client_msg_id must be 1 to {_MAX_CLIENT_MSG_ID} characters")
    _check_text(client_msg_id, "client_msg_id")
    try:
        if sender_id is None:
            row = await pool.fetchrow(
                f"""
                INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type,
                                      content, metadata, client_msg_id)
                SELECT c.id, NULL, NULL, 'system', $2, $3, $4 FROM conversations c WHERE c.id = $1
                RETURNING {_MESSAGE_COLUMNS}
                """,
                conversation_id,
                content,
                metadata,
                client_msg_id,
            )
        else:
            row = await pool.fetchrow(
                f"""
                INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type,
                                      content, metadata, client_msg_id)
                SELECT c.id, $2, CASE WHEN c.buyer_id = $2 THEN c.seller_id ELSE c.buyer_id END,
                       $3, $4, $5, $6
                  FROM conversations c
                 WHERE c.id = $1 AND $2 IN (c.buyer_id, c.seller_id)
                RETURNING {_MESSAGE_COLUMNS}
                """,
                conversation_id,
                sender_id,
                message_type,
                content,
                metadata,
                client_msg_id,
            )
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name != "messages_sender_client_msg_id":
            raise
        # No ON CONFLICT DO NOTHING here: the seq trigger would keep its increment for the
        # skipped row. The failed INSERT rolled back whole, so nothing was written.
        return await _replay(pool, conversation_id, sender_id, client_msg_id, message_type, content)
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return SentMessage(message=Message(**row), replayed=False)


class SendRequest(msgspec.Struct, frozen=True):
    """One user's message.send, as send_many takes it."""

    conversation_id: int
    sender_id: int
    client_msg_id: str
    content: str
    message_type: str = "text"
    metadata: dict[str, Any] = {}


# Many sends in one statement and one commit. Rows go in conversation-id order (then arrival
# order), so concurrent batches take conversation locks in one order and cannot deadlock;
# a send whose (sender, client_msg_id) exists, or whose sender is not a participant, yields
# no row and is looked up afterwards.
SEND_MANY_QUERY: Final = f"""
    INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type, content,
                          metadata, client_msg_id)
    SELECT c.id, u.sender_id,
           CASE WHEN c.buyer_id = u.sender_id THEN c.seller_id ELSE c.buyer_id END,
           u.message_type, u.content, u.metadata::jsonb, u.client_msg_id
      FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[])
           WITH ORDINALITY AS u(conversation_id, sender_id, message_type, content, metadata,
                                client_msg_id, arrival)
      JOIN conversations c ON c.id = u.conversation_id AND u.sender_id IN (c.buyer_id, c.seller_id)
     WHERE NOT EXISTS (SELECT 1 FROM messages m
                        WHERE m.sender_id = u.sender_id AND m.client_msg_id = u.client_msg_id)
     ORDER BY c.id, u.arrival
    RETURNING {_MESSAGE_COLUMNS}
"""

_EXISTING_QUERY: Final = f"""
    SELECT {_MESSAGE_COLUMNS} FROM messages
     WHERE (sender_id, client_msg_id) IN (SELECT * FROM unnest($1::bigint[], $2::text[]))
"""


async def send_many(
    pool: asyncpg.Pool, requests: list[SendRequest], limits: Limits | None = None
) -> list[SentMessage | ParleyError]:
    """Store many users' messages in one statement and one commit (group commit).

    Returns, in order, each request's SentMessage or the ParleyError it would have raised
    from send_message: the same rules, idempotency and triggers, per message. Should another
    process insert one of the same (sender, client_msg_id) at the same moment, the batch
    falls back to sending one by one.
    """
    limits = limits or Limits()
    results: list[SentMessage | ParleyError | None] = [None] * len(requests)
    metadata_json: dict[int, str] = {}
    first: dict[tuple[int, str], int] = {}
    for index, request in enumerate(requests):
        try:
            if not isinstance(request.client_msg_id, str) or not (
                0 < len(request.client_msg_id) <= _MAX_CLIENT_MSG_ID
            ):
                raise InvalidArgument(f"client_msg_id must be 1 to {_MAX_CLIENT_MSG_ID} characters")
            _check_text(request.client_msg_id, "client_msg_id")
            validate_message(request.message_type, request.content, request.metadata, limits)
            if request.message_type == "system":
                raise Forbidden("only the marketplace sends system messages")
        except ParleyError as error:
            results[index] = error
            continue
        metadata_json[index] = _metadata_bytes(request.metadata).decode()
        first.setdefault((request.sender_id, request.client_msg_id), index)
    batch = sorted(first.values())
    if not batch:
        return [result for result in results if result is not None]
    try:
        rows = await pool.fetch(
            SEND_MANY_QUERY,
            [requests[i].conversation_id for i in batch],
            [requests[i].sender_id for i in batch],
            [requests[i].message_type for i in batch],
            [requests[i].content for i in batch],
            [metadata_json[i] for i in batch],
            [requests[i].client_msg_id for i in batch],
        )
    except asyncpg.UniqueViolationError:
        return [
            result if result is not None else await _send_one(pool, request, limits)
            for result, request in zip(results, requests, strict=True)
        ]
    stored = {(row["sender_id"], row["client_msg_id"]): Message(**row) for row in rows}
    missing = [key for key in first if key not in stored]
    existing: dict[tuple[int, str], Message] = {}
    if missing:
        found = await pool.fetch(
            _EXISTING_QUERY, [key[0] for key in missing], [key[1] for key in missing]
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
            results[index] = NotFound(f"conversation {request.conversation_id} not found")
        elif (
            original.conversation_id != request.conversation_id
            or original.message_type != request.message_type
            or original.content != request.content
        ):
            results[index] = ClientMsgIdConflict(
                f"client_msg_id {request.client_msg_id!r} was already used for a different message"
            )
        else:
            results[index] = SentMessage(message=original, replayed=True)
    return [result for result in results if result is not None]


async def _send_one(
    pool: asyncpg.Pool, request: SendRequest, limits: Limits
) -> SentMessage | ParleyError:
    try:
        return await send_message(
            pool,
            conversation_id=request.conversation_id,
            sender_id=request.sender_id,
            client_msg_id=request.client_msg_id,
            content=request.content,
            message_type=request.message_type,
            metadata=request.metadata,
            limits=limits,
        )
    except ParleyError as error:
        return error


# Each recipient's count in one conversation and total over all of them, for many at once.
BADGES_QUERY: Final = """
    SELECT r.user_id, r.conversation_id,
           CASE WHEN c.buyer_id = r.user_id THEN c.buyer_unread_count
                ELSE c.seller_unread_count END AS count,
           (SELECT coalesce(sum(buyer_unread_count), 0) FROM conversations
             WHERE buyer_id = r.user_id AND buyer_unread_count > 0)
         + (SELECT coalesce(sum(seller_unread_count), 0) FROM conversations
             WHERE seller_id = r.user_id AND seller_unread_count > 0) AS total
      FROM unnest($1::bigint[], $2::bigint[]) AS r(user_id, conversation_id)
      JOIN conversations c ON c.id = r.conversation_id
"""


async def badges(
    pool: asyncpg.Pool, pairs: list[tuple[int, int]]
) -> list[tuple[int, int, int, int]]:
    """(user, conversation, count, total) for each (user, conversation) pair, in one query."""
    if not pairs:
        return []
    rows = await pool.fetch(BADGES_QUERY, [p[0] for p in pairs], [p[1] for p in pairs])
    return [
        (row["user_id"], row["conversation_id"], int(row["count"]), int(row["total"]))
        for row in rows
    ]


async def _replay(
    pool: asyncpg.Pool,
    conversation_id: int,
    sender_id: int | None,
    client_msg_id: str,
    message_type: str,
    content: str,
) -> SentMessage:
    row = await pool.fetchrow(
        f"""
        SELECT {_MESSAGE_COLUMNS} FROM messages
         WHERE sender_id IS NOT DISTINCT FROM $1 AND client_msg_id = $2
        """,
        sender_id,
        client_msg_id,
    )
    assert row is not None, "a unique violation means the row exists"
    original = Message(**row)
    if (
        original.conversation_id != conversation_id
        or original.message_type != message_type
        or original.content != content
    ):
        raise ClientMsgIdConflict(
            f"client_msg_id {client_msg_id!r} was already used for a different message"
        )
    return SentMessage(message=original, replayed=True)


# A backwards range scan of messages_conversation_seq.
HISTORY_QUERY: Final = f"""
    SELECT {_MESSAGE_COLUMNS} FROM messages
     WHERE conversation_id = $1 AND seq > $2 AND seq < $3
     ORDER BY seq DESC
     LIMIT $4
"""


async def history(
    pool: asyncpg.Pool,
    conversation_id: int,
    user_id: int,
    before_seq: int | None = None,
    limit: int = 50,
) -> list[Message]:
    """Up to ``limit`` messages before ``before_seq`` (newest page if None), oldest first.

    Messages the user cleared by deleting the conversation are not returned.
    """
    _check_limit(limit)
    if before_seq is not None and before_seq < 1:
        raise InvalidArgument("before_seq must be a positive seq")
    async with pool.acquire() as conn:
        cleared = await _cleared_seq(conn, conversation_id, user_id)
        rows = await conn.fetch(
            HISTORY_QUERY,
            conversation_id,
            cleared,
            before_seq if before_seq is not None else 2**62,
            limit,
        )
    return [Message(**row) for row in reversed(rows)]


async def messages_after(
    pool: asyncpg.Pool, conversation_id: int, user_id: int, after_seq: int, limit: int = 200
) -> list[Message]:
    """Up to ``limit`` messages with seq > ``after_seq``, oldest first (for catching up)."""
    _check_limit(limit)
    if after_seq < 0:
        raise InvalidArgument("after_seq must not be negative")
    async with pool.acquire() as conn:
        cleared = await _cleared_seq(conn, conversation_id, user_id)
        rows = await conn.fetch(
            f"""
            SELECT {_MESSAGE_COLUMNS} FROM messages
             WHERE conversation_id = $1 AND seq > $2
             ORDER BY seq
             LIMIT $3
            """,
            conversation_id,
            max(after_seq, cleared),
            limit,
        )
    return [Message(**row) for row in rows]


async def _cleared_seq(conn: _Connection, conversation_id: int, user_id: int) -> int:
    cleared = await conn.fetchval(
        """
        SELECT CASE WHEN buyer_id = $2 THEN buyer_cleared_seq ELSE seller_cleared_seq END
          FROM conversations WHERE id = $1 AND $2 IN (buyer_id, seller_id)
        """,
        conversation_id,
        user_id,
    )
    if cleared is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return int(cleared)


# One range scan of messages_conversation_seq; the trigger then adjusts the counter once.
MARK_READ_QUERY: Final = """
    UPDATE messages SET is_read = true, read_at = now()
     WHERE conversation_id = $1 AND recipient_id = $2
       AND seq > $3 AND seq <= $4 AND NOT is_read
"""


async def mark_read(
    pool: asyncpg.Pool, conversation_id: int, user_id: int, up_to_seq: int
) -> ReadReceipt:
    """Mark the other side's messages up to ``up_to_seq`` read; the watermark only moves forward.

    Beyond the last message it stops at the last message. A call at or behind the current
    watermark changes nothing and returns it with ``advanced=False``. The unread counter is
    lowered by the trigger, once for the whole statement.
    """
    if up_to_seq < 0:
        raise InvalidArgument("up_to_seq must not be negative")
    async with pool.acquire() as conn, conn.transaction():
        # Conversation row first: the lock order every writer follows (sql/002_triggers.sql).
        conversation = await conn.fetchrow(
            """
            SELECT buyer_id, last_seq, buyer_last_read_seq, seller_last_read_seq,
                   buyer_cleared_seq, seller_cleared_seq, buyer_unread_count, seller_unread_count,
                   now() AS now
              FROM conversations
             WHERE id = $1 AND $2 IN (buyer_id, seller_id)
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
        unread_count = await conn.fetchval(_ADVANCE_WATERMARK[side], conversation_id, target)
    return ReadReceipt(
        conversation_id=conversation_id,
        reader_id=user_id,
        up_to_seq=target,
        read_at=conversation["now"],
        messages_marked=int(status.rsplit(" ", 1)[1]),
        unread_count=unread_count,
        advanced=True,
    )


_ADVANCE_WATERMARK: Final = {
    "buyer": "UPDATE conversations SET buyer_last_read_seq = $2 WHERE id = $1"
    " RETURNING buyer_unread_count",
    "seller": "UPDATE conversations SET seller_last_read_seq = $2 WHERE id = $1"
    " RETURNING seller_unread_count",
}


# ---------------------------------------------------------------------------------------------
# Checks for tests and operations


async def recount_counters(pool: asyncpg.Pool) -> list[CounterDrift]:
    """Compare every conversation's cached counters with a recount from messages.

    Returns one CounterDrift per mismatch (unread counts, last_seq, seq gaps, preview); an
    empty list means the triggers kept everything exact. Reads one consistent snapshot.
    """
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
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


# ---------------------------------------------------------------------------------------------
# Helpers


def _conversation_view(row: asyncpg.Record, user_id: int) -> Conversation:
    side, other = ("buyer", "seller") if row["buyer_id"] == user_id else ("seller", "buyer")
    return Conversation(
        id=row["id"],
        product_id=row["product_id"],
        buyer_id=row["buyer_id"],
        seller_id=row["seller_id"],
        status=row["status"],
        last_seq=row["last_seq"],
        last_message_text=row["last_message_text"],
        last_message_type=row["last_message_type"],
        last_message_sender_id=row["last_message_sender_id"],
        last_message_at=row["last_message_at"],
        role=side,  # type: ignore[arg-type]
        unread_count=row[f"{side}_unread_count"],
        last_read_seq=row[f"{side}_last_read_seq"],
        peer_last_read_seq=row[f"{other}_last_read_seq"],
        cleared_seq=row[f"{side}_cleared_seq"],
        archived=row[f"archived_by_{side}"],
        deleted=row[f"deleted_by_{side}"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        product=Product(
            id=row["product_id"],
            seller_id=row["p_seller_id"],
            title=row["p_title"],
            price_cents=row["p_price_cents"],
            currency=row["p_currency"],
            image_url=row["p_image_url"],
            status=row["p_status"],
        ),
        peer=User(
            id=row["u_id"], display_name=row["u_display_name"], avatar_url=row["u_avatar_url"]
        ),
    )


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR_END: Final = (datetime.max.replace(tzinfo=UTC), 2**63 - 1)


def _encode_cursor(at: datetime, conversation_id: int) -> str:
    # Exact integer microseconds: a float timestamp could round past the boundary row.
    return f"{(at - _EPOCH) // timedelta(microseconds=1)}.{conversation_id}"


def _decode_cursor(cursor: str | None) -> tuple[datetime, int]:
    if cursor is None:
        return _CURSOR_END
    try:
        micros, conversation_id = (int(part) for part in cursor.split("."))
        return _EPOCH + timedelta(microseconds=micros), conversation_id
    except (ValueError, OverflowError):
        raise InvalidArgument("cursor is not one this server handed out") from None


def _metadata_bytes(metadata: Mapping[str, Any]) -> bytes:
    return msgspec.json.encode(metadata)


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE}")


def _check_id(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise InvalidArgument(f"{name} must be a positive 64-bit integer")


def _check_text(text: str, name: str) -> None:
    """Refuse what Postgres text cannot hold: NUL, and lone surrogates (not valid UTF-8)."""
    if "\x00" in text:
        raise InvalidText(f"{name} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidText(f"{name} contains a lone surrogate (not valid Unicode)") from None


def _check_json(value: Any, depth: int) -> None:
    if depth > _MAX_METADATA_DEPTH:
        raise InvalidMetadata(f"metadata nests deeper than {_MAX_METADATA_DEPTH} levels")
    if isinstance(value, str):
        try:
            _check_text(value, "metadata")
        except InvalidText as error:
            raise InvalidMetadata(str(error)) from None
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidMetadata("metadata keys must be strings")
            _check_json(key, depth + 1)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMetadata("metadata numbers must be finite")
    elif value is not None and not isinstance(value, bool | int):
        raise InvalidMetadata(f"metadata cannot hold a {type(value).__name__}")


def _is_https_url(url: str) -> bool:
    if len(url) > 2048:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname)

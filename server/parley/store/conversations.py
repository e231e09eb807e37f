"""Conversations: get-or-create, the caller's view, the inbox, and the per-side delete and
archive."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

import asyncpg

from parley.errors import Blocked, InvalidArgument, NotFound, OwnProduct, ProductUnavailable
from parley.models import Conversation, InboxPage, Product, User
from parley.store._sql import (
    VIEW_COLUMNS,
    blocked_between,
    connection,
    participant,
    refuse_if_blocked,
    view_joins,
)
from parley.validation import MAX_ID, check_id, check_page_limit

if TYPE_CHECKING:
    from parley.store._sql import Database

# The conversation as user $2 sees it.
_VIEW: Final = f"SELECT c.*, {VIEW_COLUMNS} FROM conversations c {view_joins('c', '$2')}"

# The get-or-create lookup: one probe of the conversations_one_per_triple unique index.
FIND_CONVERSATION_QUERY: Final = (
    _VIEW + " WHERE c.product_id = $1 AND c.buyer_id = $2 AND c.seller_id = p.seller_id"
)
_GET_QUERY: Final = _VIEW + f" WHERE c.id = $1 AND {participant('$2')}"


async def get_conversation(db: Database, conversation_id: int, user_id: int) -> Conversation:
    """The conversation as ``user_id`` sees it.

    Raises NotFound for non-participants exactly as for unknown ids.
    """
    row = await db.fetchrow(_GET_QUERY, conversation_id, user_id)
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return conversation_view(row, user_id)


async def participants(db: Database, conversation_id: int) -> tuple[int, int]:
    """(buyer_id, seller_id) of a conversation, for service-side events; NotFound if none."""
    row = await db.fetchrow(
        "SELECT buyer_id, seller_id FROM conversations WHERE id = $1", conversation_id
    )
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return int(row["buyer_id"]), int(row["seller_id"])


async def participants_shown(db: Database, conversation_id: int) -> list[int]:
    """The participants who have not deleted the conversation (those it is shown to)."""
    row = await db.fetchrow(
        "SELECT buyer_id, seller_id, deleted_by_buyer, deleted_by_seller"
        " FROM conversations WHERE id = $1",
        conversation_id,
    )
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return [
        user
        for user, deleted in (
            (row["buyer_id"], row["deleted_by_buyer"]),
            (row["seller_id"], row["deleted_by_seller"]),
        )
        if not deleted
    ]


async def open_conversation(
    db: Database, buyer_id: int, product_id: int
) -> tuple[Conversation, bool]:
    """Get or create the one conversation of (product, buyer, product's seller).

    Returns the conversation and whether it was created now. Race-safe: concurrent calls for
    the same triple all return the same row. Raises NotFound for an unknown product,
    OwnProduct when the seller asks about their own product, ProductUnavailable when a new
    conversation would start about a product sold or deleted (an existing one is returned;
    a reserved one may still be asked about), Blocked when either side blocked the other.
    """
    check_id(product_id, "product_id")
    async with connection(db) as conn:
        existing = await _find_conversation(conn, buyer_id, product_id)
        if existing is not None:
            if existing.blocked or await blocked_between(conn, buyer_id, existing.seller_id):
                raise Blocked("you cannot message this user")
            return existing, False
        product = await conn.fetchrow(
            "SELECT seller_id, status FROM products WHERE id = $1", product_id
        )
        if product is None:
            raise NotFound(f"product {product_id} not found")
        if product["seller_id"] == buyer_id:
            raise OwnProduct("sellers cannot open a conversation about their own product")
        if product["status"] not in ("active", "reserved"):
            raise ProductUnavailable(f"product {product_id} is {product['status']}")
        try:
            async with conn.transaction():
                # Under the pair's lock, so no block lands beside the new conversation.
                await refuse_if_blocked(conn, buyer_id, product["seller_id"])
                created = await conn.fetchval(
                    """
                    INSERT INTO conversations (product_id, buyer_id, seller_id)
                    SELECT p.id, $2, p.seller_id FROM products p
                     WHERE p.id = $1 AND p.status IN ('active', 'reserved')
                       AND p.seller_id <> $2
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


async def find_conversation(db: Database, buyer_id: int, product_id: int) -> Conversation | None:
    """The conversation of (product, buyer, product's seller) as the buyer sees it, if it
    exists; opens nothing and checks no block (for demo mode's own bookkeeping)."""
    return await _find_conversation(db, buyer_id, product_id)


async def _find_conversation(conn: Database, buyer_id: int, product_id: int) -> Conversation | None:
    row = await conn.fetchrow(FIND_CONVERSATION_QUERY, product_id, buyer_id)
    return None if row is None else conversation_view(row, buyer_id)


def _inbox_side(side: str) -> str:
    # Walks the side's inbox index backwards from the cursor and stops at $5 rows. The folder
    # expression is the index's (sql/004_live_state.sql): archived by the side, or the
    # listing is gone.
    return f"""
        (SELECT * FROM conversations c
          WHERE c.{side}_id = $1 AND (c.archived_by_{side} OR c.status = 'archived') = $2
            AND NOT c.deleted_by_{side} AND c.last_message_at IS NOT NULL
            AND NOT c.blocked_by_{side}
            AND (c.last_message_at, c.id) < ($3, $4)
          ORDER BY c.last_message_at DESC, c.id DESC
          LIMIT $5)"""


INBOX_QUERY: Final = f"""
    SELECT page.*, {VIEW_COLUMNS}
      FROM ({_inbox_side("buyer")} UNION ALL {_inbox_side("seller")}) page
      {view_joins("page", "$1")}
     ORDER BY page.last_message_at DESC, page.id DESC
     LIMIT $5
"""


def _own(flag: str) -> str:
    return f"CASE WHEN c.buyer_id = $1 THEN c.{flag}_by_buyer ELSE c.{flag}_by_seller END"


# The inbox filtered by the product's title and the other side's name, folded as search
# folds them (sql/017): every conversation of the user is read, which a person's inbox
# (thousands at most) allows.
FILTERED_INBOX_QUERY: Final = f"""
    SELECT c.*, {VIEW_COLUMNS}
      FROM conversations c {view_joins("c", "$1")}
     WHERE {participant("$1")}
       AND ({_own("archived")} OR c.status = 'archived') = $2
       AND NOT {_own("deleted")} AND NOT {_own("blocked")}
       AND c.last_message_at IS NOT NULL
       AND (c.last_message_at, c.id) < ($3, $4)
       AND (strpos(parley_fold(p.title), parley_fold($6)) > 0
            OR strpos(parley_fold(u.display_name), parley_fold($6)) > 0)
     ORDER BY c.last_message_at DESC, c.id DESC
     LIMIT $5
"""


async def inbox(
    db: Database,
    user_id: int,
    cursor: str | None = None,
    limit: int = 20,
    archived: bool = False,
    query: str | None = None,
) -> InboxPage:
    """One page of the user's conversations, as buyer and seller together, newest activity first.

    Conversations without messages, and those the user deleted (until a new message arrives),
    are left out. ``archived=True`` lists the user's archive instead: what they archived, and
    every conversation whose listing is sold or deleted. ``next_cursor`` is None on the last
    page; pass it back unchanged to get the next one. ``query`` keeps only conversations
    whose product title or other party's name holds it (case and accents aside).
    """
    check_page_limit(limit)
    before_at, before_id = decode_cursor(cursor)
    args = (user_id, archived, before_at, before_id, limit + 1)
    if query:
        rows = await db.fetch(FILTERED_INBOX_QUERY, *args, query)
    else:
        rows = await db.fetch(INBOX_QUERY, *args)
    conversations = [conversation_view(row, user_id) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = conversations[-1]
        assert last.last_message_at is not None
        next_cursor = encode_cursor(last.last_message_at, last.id)
    return InboxPage(conversations=conversations, next_cursor=next_cursor)


async def delete_for(db: Database, user_id: int, conversation_id: int) -> Conversation:
    """Hide the conversation and its history so far from ``user_id`` only; the data is kept.

    The user's badge for it drops to zero (without sending read receipts). A new message
    from either side brings the conversation back, showing only what came after the delete.
    """
    row = await db.fetchrow(
        f"""
        UPDATE conversations c
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
         WHERE id = $1 AND {participant("$2")}
        RETURNING id
        """,
        conversation_id,
        user_id,
    )
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return await get_conversation(db, conversation_id, user_id)


async def archive(db: Database, user_id: int, conversation_id: int) -> Conversation:
    """Move the conversation to the user's archive (their side only)."""
    return await _set_archived(db, user_id, conversation_id, True)


async def unarchive(db: Database, user_id: int, conversation_id: int) -> Conversation:
    """Bring the conversation back to the user's inbox (their side only).

    Raises ProductUnavailable while its listing is sold or deleted: such a conversation
    stays in both sides' archive, and nothing is changed.
    """
    return await _set_archived(db, user_id, conversation_id, False)


async def _set_archived(
    db: Database, user_id: int, conversation_id: int, archived: bool
) -> Conversation:
    row = await db.fetchrow(
        f"""
        WITH target AS (
            SELECT c.id, c.status FROM conversations c WHERE c.id = $1 AND {participant("$2")}
        ), changed AS (
            UPDATE conversations c
               SET archived_by_buyer  = CASE WHEN buyer_id = $2 THEN $3 ELSE archived_by_buyer END,
                   archived_by_seller =
                       CASE WHEN seller_id = $2 THEN $3 ELSE archived_by_seller END
              FROM target t
             WHERE c.id = t.id AND ($3 OR t.status = 'active')
            RETURNING c.id)
        SELECT t.status, EXISTS (SELECT 1 FROM changed) AS changed FROM target t
        """,
        conversation_id,
        user_id,
        archived,
    )
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    if not row["changed"]:
        raise ProductUnavailable(
            f"conversation {conversation_id}'s listing is sold or deleted: it stays archived"
        )
    return await get_conversation(db, conversation_id, user_id)


def conversation_view(row: asyncpg.Record, user_id: int) -> Conversation:
    """A row of conversations plus VIEW_COLUMNS, as ``user_id`` sees it."""
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
        unread_version=row["unread_version"],
        last_read_seq=row[f"{side}_last_read_seq"],
        peer_last_read_seq=row[f"{other}_last_read_seq"],
        peer_delivered_seq=row[f"{other}_delivered_seq"],
        cleared_seq=row[f"{side}_cleared_seq"],
        # The side's folder: archived by them, or the listing is gone (sql/004_live_state.sql).
        archived=row[f"archived_by_{side}"] or row["status"] == "archived",
        deleted=row[f"deleted_by_{side}"],
        muted_until=row[f"{side}_muted_until"],
        blocked=row[f"blocked_by_{side}"],
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
            reserved_for=row["p_reserved_for"],
        ),
        peer=User(
            id=row["u_id"], display_name=row["u_display_name"], avatar_url=row["u_avatar_url"]
        ),
    )


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR_END: Final = (datetime.max.replace(tzinfo=UTC), MAX_ID)


def encode_cursor(at: datetime, conversation_id: int) -> str:
    # Exact integer microseconds: a float timestamp could round past the boundary row.
    return f"{(at - _EPOCH) // timedelta(microseconds=1)}.{conversation_id}"


# "<microseconds since 1970>.<conversation id>", as encode_cursor writes it: ASCII digits.
_CURSOR: Final = re.compile(r"(0|[1-9][0-9]{0,17})\.([1-9][0-9]{0,18})")


def decode_cursor(cursor: str | None) -> tuple[datetime, int]:
    """The (last_message_at, id) a page starts below; InvalidArgument for a forged cursor."""
    if cursor is None:
        return _CURSOR_END
    match = _CURSOR.fullmatch(cursor) if isinstance(cursor, str) else None
    if match is None or int(match[2]) > MAX_ID:
        raise InvalidArgument("cursor is not one this server handed out")
    try:
        return _EPOCH + timedelta(microseconds=int(match[1])), int(match[2])
    except OverflowError:
        raise InvalidArgument("cursor is not one this server handed out") from None

"""SQL that more than one store module uses, written once.

Fragments are composed from these constants only; every value is a bind parameter.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final, TypeAlias

import asyncpg

from parley.errors import Blocked

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    # Every store function takes either a pool (it acquires what it needs) or a connection
    # (it runs on it, inside the caller's transaction if one is open), so a use case can run
    # several of them in one transaction.
    Database: TypeAlias = asyncpg.Pool[asyncpg.Record] | Connection

MESSAGE_COLUMNS: Final = (
    "id, conversation_id, seq, sender_id, recipient_id, message_type, content, metadata,"
    " client_msg_id, is_read, read_at, created_at, edited_at, unsent_at, offer_status, safety"
)

PRODUCT_COLUMNS: Final = (
    "id, seller_id, title, price_cents, currency, image_url, status, reserved_for"
)

# What a Conversation record needs beside the conversation row (aliased c, or page in the
# inbox): its product, the other participant as ``user`` sees them, and the version of
# ``user``'s badge the unread count belongs to (read in the same statement, so they agree).
VIEW_COLUMNS: Final = """
           p.seller_id AS p_seller_id, p.title AS p_title, p.price_cents AS p_price_cents,
           p.currency AS p_currency, p.image_url AS p_image_url, p.status AS p_status,
           p.reserved_for AS p_reserved_for,
           u.id AS u_id, u.display_name AS u_display_name, u.avatar_url AS u_avatar_url,
           coalesce(bv.version, 0) AS unread_version
"""


def view_joins(alias: str, user: str) -> str:
    """The product, the peer and the badge of conversation ``alias``, for VIEW_COLUMNS."""
    return f"""
      JOIN products p ON p.id = {alias}.product_id
      JOIN users u ON u.id = {peer(user, alias)}
      LEFT JOIN badges bv ON bv.user_id = {user}
    """


def participant(user: str, alias: str = "c") -> str:
    """The guard on every per-user statement: non-participants match nothing, exactly as
    for an id that does not exist, so no existence is leaked."""
    return f"{user} IN ({alias}.buyer_id, {alias}.seller_id)"


def peer(user: str, alias: str = "c") -> str:
    """The other participant of conversation ``alias`` from ``user``'s side."""
    return f"CASE WHEN {alias}.buyer_id = {user} THEN {alias}.seller_id ELSE {alias}.buyer_id END"


def silenced(user: str) -> str:
    """The unread counts of the user's conversations silenced for them (muted, or blocked by
    them), which their total leaves out (sql/008): two probes of partial indexes that hold
    only silenced conversations."""
    return f"""coalesce((SELECT sum(s.n) FROM (
        SELECT buyer_unread_count AS n FROM conversations
         WHERE buyer_id = {user} AND (blocked_by_buyer OR buyer_muted_until IS NOT NULL)
        UNION ALL
        SELECT seller_unread_count FROM conversations
         WHERE seller_id = {user} AND (blocked_by_seller OR seller_muted_until IS NOT NULL)
        ) s), 0)"""


def shown_total(user: str, badge: str = "b") -> str:
    """The total the user's devices show: every conversation's count but the silenced."""
    return f"(coalesce({badge}.total, 0) - {silenced(user)})::bigint"


# Neither side of conversation ``alias`` blocked the other.
UNBLOCKED: Final = "NOT (c.blocked_by_buyer OR c.blocked_by_seller)"

# The user's badge: (total, version) from their badges row, or (0, 0) before they have one.
BADGE_OF: Final = f"""
    SELECT {shown_total("$1")} AS total, coalesce(b.version, 0) AS version
      FROM (SELECT 1) one LEFT JOIN badges b ON b.user_id = $1
"""


def own_unread(user: str, alias: str = "c") -> str:
    """The user's own unread counter of conversation ``alias``."""
    return (
        f"CASE WHEN {alias}.buyer_id = {user} THEN {alias}.buyer_unread_count"
        f" ELSE {alias}.seller_unread_count END"
    )


def own_cleared(user: str, alias: str = "c") -> str:
    """The seq up to which the user cleared conversation ``alias`` (by deleting it)."""
    return (
        f"CASE WHEN {alias}.buyer_id = {user} THEN {alias}.buyer_cleared_seq"
        f" ELSE {alias}.seller_cleared_seq END"
    )


# One lock per pair of users, whichever order they come in: a block and the creation of a
# conversation between the same two take it, so neither misses the other.
PAIR_LOCK: Final = """
    SELECT pg_advisory_xact_lock(
        hashtextextended(least($1::bigint, $2::bigint) || ':' || greatest($1::bigint, $2::bigint),
                         8008))
"""
BLOCK_BETWEEN: Final = """
    SELECT 1 FROM blocks
     WHERE (blocker_id = $1 AND blocked_id = $2) OR (blocker_id = $2 AND blocked_id = $1)
"""


async def blocked_between(db: Database, first: int, second: int) -> bool:
    """Whether either of the two users blocked the other."""
    return await db.fetchval(BLOCK_BETWEEN, first, second) is not None


async def refuse_if_blocked(conn: Connection, first: int, second: int) -> None:
    """Blocked, when a block stands between the two; under their pair lock, for a write
    that must not happen beside one (the caller's transaction holds the lock until commit)."""
    await conn.execute(PAIR_LOCK, first, second)
    if await blocked_between(conn, first, second):
        raise Blocked("you cannot message this user")


@contextlib.asynccontextmanager
async def connection(db: Database) -> AsyncIterator[Connection]:
    """A connection for several statements: one from the pool, or ``db`` itself."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db

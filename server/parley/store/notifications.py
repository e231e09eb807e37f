"""The notification outbox (sql/011_notifications.sql): closing due windows from the
recipient's state, claiming pending rows under a lease, recording attempts, and the internal
API's reads.

Every write after a claim names the claim's lease token, so a process whose lease ran out (it
stalled, or was killed and is back) can no longer change a row another process took over.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from parley.errors import NotFound, NotRetryable
from parley.models import Notification
from parley.store._sql import BADGE_OF, connection, own_unread, peer

if TYPE_CHECKING:
    from parley.store._sql import Database

# A notification names at most this many conversations (newest first); unread_total counts all.
CONVERSATIONS_SHOWN: Final = 20


@dataclass(frozen=True, slots=True)
class Claim:
    """A pending notification this process holds until its lease ends."""

    id: int
    user_id: int
    lease_token: UUID
    attempts: int
    body: str


@dataclass(frozen=True, slots=True)
class Window:
    """What a closing window found: the conversations to name, or why there are none."""

    user_id: int
    unread_total: int
    version: int
    conversations: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Closed:
    """A window closed: the row written, and the claim to deliver it (None when skipped)."""

    notification_id: int
    skip_reason: str | None
    claim: Claim | None


# The recipient whose window has been open longest, past the delay, that no other close holds.
_NEXT_DUE_WINDOW: Final = """
    SELECT user_id, unread_since FROM badges
     WHERE unread_since <= now() - make_interval(secs => $1)
     ORDER BY unread_since
     LIMIT 1
       FOR UPDATE SKIP LOCKED
"""

# The conversations where the recipient ($1) has unread messages (messages_recipient_unread),
# as they see them now, newest first: the other side's name, the product, the recipient's own
# count, and whether the recipient silenced it.
_UNREAD_CONVERSATIONS: Final = f"""
    SELECT c.id AS conversation_id, {own_unread("$1")} AS unread_count,
           CASE WHEN c.buyer_id = $1 THEN c.blocked_by_buyer OR c.buyer_muted_until IS NOT NULL
                ELSE c.blocked_by_seller OR c.seller_muted_until IS NOT NULL END AS silenced,
           p.id AS product_id, p.title AS product_title, p.image_url AS product_image_url,
           u.id AS from_id, u.display_name AS from_display_name,
           m.id AS message_id, c.last_seq, c.last_message_type, c.last_message_text,
           c.last_message_at
      FROM conversations c
      JOIN products p ON p.id = c.product_id
      JOIN users u ON u.id = {peer("$1")}
      LEFT JOIN messages m ON m.conversation_id = c.id AND m.seq = c.last_seq
     WHERE c.id IN (SELECT DISTINCT conversation_id FROM messages
                     WHERE recipient_id = $1 AND NOT is_read)
       AND $1 IN (c.buyer_id, c.seller_id)
     ORDER BY c.last_message_at DESC, c.id DESC
"""

_WRITE_CLOSED: Final = """
    INSERT INTO notifications (user_id, status, window_opened_at, body, skip_reason,
                               next_attempt_at, lease_until, lease_token, finished_at)
    SELECT $1, CASE WHEN $4::text IS NULL THEN 'pending' ELSE 'skipped' END, $2, $3, $4,
           CASE WHEN $4::text IS NULL THEN now() END,
           CASE WHEN $4::text IS NULL THEN now() + make_interval(secs => $5) END,
           CASE WHEN $4::text IS NULL THEN gen_random_uuid() END,
           CASE WHEN $4::text IS NOT NULL THEN now() END
    RETURNING id, lease_token
"""

_END_WINDOW: Final = "UPDATE badges SET unread_since = NULL WHERE user_id = $1"


async def close_next_window(
    db: Database,
    delay_seconds: float,
    lease_seconds: float,
    skip_before_reading: Callable[[int], Awaitable[str | None]],
    build: Callable[[Window], str],
) -> Closed | None:
    """Close the longest-open due window, if any, in one transaction: skipped for the reason
    ``skip_before_reading(user_id)`` gives, or, from the recipient's state, skipped as
    `read` (nothing unread) or `silenced` (what is unread is muted or blocked by them), or
    pending with the body ``build`` makes, held by this process for ``lease_seconds``."""
    async with connection(db) as conn, conn.transaction():
        due = await conn.fetchrow(_NEXT_DUE_WINDOW, delay_seconds)
        if due is None:
            return None
        user_id = due["user_id"]
        reason = await skip_before_reading(user_id)
        body = None
        if reason is None:
            rows = await conn.fetch(_UNREAD_CONVERSATIONS, user_id)
            shown = [dict(row) for row in rows if row["unread_count"] > 0 and not row["silenced"]]
            if shown:
                badge = await conn.fetchrow(BADGE_OF, user_id)
                assert badge is not None  # BADGE_OF always answers one row
                window = Window(
                    user_id, badge["total"], badge["version"], shown[:CONVERSATIONS_SHOWN]
                )
                body = build(window)
            else:
                unread = any(row["unread_count"] > 0 for row in rows)
                reason = "silenced" if unread else "read"
        written = await conn.fetchrow(
            _WRITE_CLOSED, user_id, due["unread_since"], body, reason, lease_seconds
        )
        assert written is not None  # INSERT ... SELECT of one row
        await conn.execute(_END_WINDOW, user_id)
    claim = None
    if body is not None:
        claim = Claim(written["id"], user_id, written["lease_token"], 0, body)
    return Closed(written["id"], reason, claim)


_CLAIM: Final = """
    UPDATE notifications n
       SET lease_until = now() + make_interval(secs => $1),
           lease_token = gen_random_uuid(), updated_at = now()
      FROM (SELECT id FROM notifications
             WHERE status = 'pending' AND next_attempt_at <= now()
               AND (lease_until IS NULL OR lease_until < now())
             ORDER BY next_attempt_at, id
             LIMIT $2
               FOR UPDATE SKIP LOCKED) due
     WHERE n.id = due.id
    RETURNING n.id, n.user_id, n.lease_token, n.attempts, n.body
"""


async def claim_due(db: Database, lease_seconds: float, limit: int) -> list[Claim]:
    """Take up to ``limit`` pending rows whose attempt is due and that no live lease holds:
    retries, and the claims of a process that died."""
    rows = await db.fetch(_CLAIM, lease_seconds, limit)
    return [Claim(**row) for row in rows]


_DELIVERED: Final = """
    UPDATE notifications
       SET status = 'delivered', attempts = attempts + 1, lease_until = NULL,
           finished_at = now(), updated_at = now()
     WHERE id = $1 AND lease_token = $2 AND status = 'pending'
"""

# Another attempt at now() + $4 seconds, or, after the last one, failed.
_ATTEMPT_FAILED: Final = """
    UPDATE notifications
       SET attempts = attempts + 1, last_error = left($3, 500), lease_until = NULL,
           status = CASE WHEN attempts + 1 >= $5 THEN 'failed' ELSE 'pending' END,
           next_attempt_at = CASE WHEN attempts + 1 >= $5 THEN NULL
                                  ELSE now() + make_interval(secs => $4) END,
           finished_at = CASE WHEN attempts + 1 >= $5 THEN now() END,
           updated_at = now()
     WHERE id = $1 AND lease_token = $2 AND status = 'pending'
    RETURNING status
"""


async def delivered(db: Database, claim: Claim) -> bool:
    """Record a 2xx; False when the lease was lost (another process owns the row now)."""
    return await db.execute(_DELIVERED, claim.id, claim.lease_token) == "UPDATE 1"


async def attempt_failed(
    db: Database, claim: Claim, error: str, retry_in_seconds: float, max_attempts: int
) -> str | None:
    """Record a failed attempt: the row's new status ('pending' or 'failed'), or None when
    the lease was lost."""
    status: str | None = await db.fetchval(
        _ATTEMPT_FAILED, claim.id, claim.lease_token, error, retry_in_seconds, max_attempts
    )
    return status


_COLUMNS: Final = (
    "id, user_id, status, window_opened_at, created_at, attempts, next_attempt_at,"
    " last_error, skip_reason, finished_at, body"
)

_LIST: Final = f"""
    SELECT {_COLUMNS} FROM notifications
     WHERE ($1::text IS NULL OR status = $1) AND ($2::bigint IS NULL OR user_id = $2)
       AND id > $3
     ORDER BY id
     LIMIT $4
"""


async def list_notifications(
    db: Database, status: str | None, user_id: int | None, after: int, limit: int
) -> list[Notification]:
    """A page of notifications in id order, filtered by status and recipient."""
    rows = await db.fetch(_LIST, status, user_id, after, limit)
    return [Notification(**row) for row in rows]


_RETRY: Final = f"""
    UPDATE notifications
       SET status = 'pending', attempts = 0, next_attempt_at = now(), lease_until = NULL,
           finished_at = NULL, updated_at = now()
     WHERE id = $1 AND status = 'failed'
    RETURNING {_COLUMNS}
"""


async def retry(db: Database, notification_id: int) -> Notification:
    """Send a failed notification again, with a fresh round of attempts and the same id.

    Raises NotFound for an unknown id and NotRetryable for a row that has not failed.
    """
    async with connection(db) as conn, conn.transaction():
        row = await conn.fetchrow(_RETRY, notification_id)
        if row is not None:
            return Notification(**row)
        status = await conn.fetchval(
            "SELECT status FROM notifications WHERE id = $1", notification_id
        )
    if status is None:
        raise NotFound(f"no notification {notification_id}")
    raise NotRetryable(f"notification {notification_id} is {status}; only a failed one is retried")


async def count_pending(db: Database) -> int:
    """Rows not yet delivered, skipped or failed (the pending index holds only those)."""
    count: int = await db.fetchval("SELECT count(*) FROM notifications WHERE status = 'pending'")
    return count


_PURGE: Final = """
    DELETE FROM notifications
     WHERE id IN (SELECT id FROM notifications
                   WHERE finished_at < now() - make_interval(secs => $1)
                   LIMIT 1000)
"""


async def purge_finished(db: Database, older_than_seconds: float) -> int:
    """Delete up to 1,000 rows that finished longer ago than ``older_than_seconds``."""
    result: str = await db.execute(_PURGE, older_than_seconds)
    return int(result.rsplit(" ", 1)[-1])

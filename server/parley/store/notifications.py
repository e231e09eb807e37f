"""The notification outbox (sql/011_notifications.sql): claiming due rows under a lease,
closing a window from the recipient's state, recording attempts, and the internal API's reads.

Every write after the claim names the claim's lease token, so a process whose lease ran out
(it stalled, or was killed and is back) can no longer change a row another process took over.
"""

from __future__ import annotations

from collections.abc import Callable
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
    """A due notification this process holds until its lease ends."""

    id: int
    user_id: int
    lease_token: UUID
    attempts: int
    body: str | None  # None: the window is still open, the body is to be built


_CLAIM: Final = """
    UPDATE notifications n
       SET lease_until = now() + make_interval(secs => $2),
           lease_token = gen_random_uuid(), updated_at = now()
      FROM (SELECT id FROM notifications
             WHERE status = 'pending'
               AND coalesce(next_attempt_at, created_at + make_interval(secs => $1)) <= now()
               AND (lease_until IS NULL OR lease_until < now())
             ORDER BY created_at, id
             LIMIT $3
               FOR UPDATE SKIP LOCKED) due
     WHERE n.id = due.id
    RETURNING n.id, n.user_id, n.lease_token, n.attempts, n.body
"""


async def claim_due(
    db: Database, delay_seconds: float, lease_seconds: float, limit: int
) -> list[Claim]:
    """Take up to ``limit`` due rows that no live lease holds, oldest window first."""
    rows = await db.fetch(_CLAIM, delay_seconds, lease_seconds, limit)
    return [Claim(**row) for row in rows]


# The recipient's badge row, FOR SHARE: every statement that raises their unread count holds
# it until it commits, so this waits for the senders in flight (sql/011's rule).
_WAIT_FOR_SENDERS: Final = "SELECT 1 FROM badges WHERE user_id = $1 FOR SHARE"

_LOCK_OPEN_WINDOW: Final = """
    SELECT 1 FROM notifications
     WHERE id = $1 AND lease_token = $2 AND built_at IS NULL
       FOR UPDATE
"""

# The conversations where the recipient ($1) has unread messages (messages_recipient_unread),
# as they see them now, newest first: the other side's name, the product, the recipient's own
# count, and whether the recipient silenced it.
_WINDOW_CONVERSATIONS: Final = f"""
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

_BUILT: Final = """
    UPDATE notifications SET built_at = now(), body = $3, updated_at = now()
     WHERE id = $1 AND lease_token = $2
"""

_SKIPPED: Final = """
    UPDATE notifications
       SET status = 'skipped', skip_reason = $3, lease_until = NULL, finished_at = now(),
           updated_at = now()
     WHERE id = $1 AND lease_token = $2 AND status = 'pending'
"""


@dataclass(frozen=True, slots=True)
class Window:
    """What a closing window found: the conversations to name, or why there are none."""

    unread_total: int
    version: int
    conversations: list[dict[str, Any]]
    skip_reason: str | None


async def close_window(
    db: Database, claim: Claim, build: Callable[[Window], str]
) -> tuple[Window, str | None] | None:
    """Close ``claim``'s window: under the row's lock, read the recipient's state; store the
    body ``build(window)`` returns, or mark the row skipped. None: the lease is lost.

    The recipient's badge row, taken first, orders this against the statements that raise
    their unread count (sql/011), so every message that found this window open is seen here.
    """
    async with connection(db) as conn, conn.transaction():
        await conn.execute(_WAIT_FOR_SENDERS, claim.user_id)
        if await conn.fetchval(_LOCK_OPEN_WINDOW, claim.id, claim.lease_token) is None:
            return None
        rows = await conn.fetch(_WINDOW_CONVERSATIONS, claim.user_id)
        badge = await conn.fetchrow(BADGE_OF, claim.user_id)
        assert badge is not None  # BADGE_OF always answers one row
        unread = [row for row in rows if row["unread_count"] > 0]
        shown = [row for row in unread if not row["silenced"]]
        reason = None if shown else ("silenced" if unread else "read")
        window = Window(
            badge["total"],
            badge["version"],
            [dict(row) for row in shown[:CONVERSATIONS_SHOWN]],
            reason,
        )
        if reason is not None:
            await conn.execute(_SKIPPED, claim.id, claim.lease_token, reason)
            return window, None
        body = build(window)
        await conn.execute(_BUILT, claim.id, claim.lease_token, body)
        return window, body


async def skip(db: Database, claim: Claim, reason: str) -> bool:
    """Mark the claimed row skipped for ``reason``; False when the lease was lost."""
    return await db.execute(_SKIPPED, claim.id, claim.lease_token, reason) == "UPDATE 1"


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
    "id, user_id, status, created_at, built_at, attempts, next_attempt_at,"
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

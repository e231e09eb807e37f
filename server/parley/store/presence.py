"""What outlives presence: when each user was last seen, whether they show it at all, and
who may see whom.

A viewer sees a user's presence only while the two share a conversation, neither has
blocked the other, and the user shows presence. Everything else (an outsider, an unknown
id, a blocked pair, a hidden user) gets the same answer, so nothing is learned from it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Final

from parley.errors import NotFound
from parley.models import UserSettings
from parley.validation import check_id

if TYPE_CHECKING:
    from parley.store._sql import Database

# Each (viewer, target) pair that may see, with the target's last_seen_at. Both probes go
# through the inbox indexes (a participant's conversations) and the blocks primary key.
_VISIBLE: Final = """
    SELECT p.viewer, p.target, t.last_seen_at
      FROM unnest($1::bigint[], $2::bigint[]) AS p(viewer, target)
      JOIN users t ON t.id = p.target AND t.show_presence
     WHERE EXISTS (SELECT 1 FROM conversations c
                    WHERE (c.buyer_id = p.viewer AND c.seller_id = p.target)
                       OR (c.buyer_id = p.target AND c.seller_id = p.viewer))
       AND NOT EXISTS (SELECT 1 FROM blocks b
                        WHERE (b.blocker_id = p.viewer AND b.blocked_id = p.target)
                           OR (b.blocker_id = p.target AND b.blocked_id = p.viewer))
"""


async def presence_visible(
    db: Database, pairs: list[tuple[int, int]]
) -> dict[tuple[int, int], datetime | None]:
    """Of the (viewer, target) pairs, those where the viewer may see the target's presence,
    each with the target's last_seen_at."""
    if not pairs:
        return {}
    rows = await db.fetch(_VISIBLE, [v for v, _ in pairs], [t for _, t in pairs])
    return {(row["viewer"], row["target"]): row["last_seen_at"] for row in rows}


async def seen_now(db: Database, user_id: int) -> datetime | None:
    """The user's last socket closed: their last_seen_at is now (None: no such user)."""
    seen: datetime | None = await db.fetchval(
        "UPDATE users SET last_seen_at = now() WHERE id = $1 RETURNING last_seen_at", user_id
    )
    return seen


# The row locked first, so "changed" compares with what this statement replaced.
_SETTINGS: Final = """
    WITH before AS (SELECT show_presence FROM users WHERE id = $1 FOR UPDATE)
    UPDATE users u SET show_presence = coalesce($2, u.show_presence)
      FROM before WHERE u.id = $1
    RETURNING u.show_presence, u.show_presence <> before.show_presence AS changed
"""


async def update_settings(
    db: Database, user_id: int, show_presence: bool | None
) -> tuple[UserSettings, bool]:
    """Change the user's settings (None keeps a value): them after, and whether they changed."""
    check_id(user_id, "user_id")
    row = await db.fetchrow(_SETTINGS, user_id, show_presence)
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return UserSettings(show_presence=row["show_presence"]), bool(row["changed"])

"""Reports for moderation: a participant reports the other side's message once; the
marketplace lists them with the evidence and resolves them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from parley.errors import Forbidden, InvalidArgument, NotFound
from parley.models import REPORT_STATUSES, Message, MessageVersion, Report, ReportCase
from parley.store._sql import MESSAGE_COLUMNS, connection, own_cleared, participant
from parley.validation import MAX_ID, check_id, check_page_limit, check_reason, check_resolution

if TYPE_CHECKING:
    from parley.store._sql import Database

_REPORT_COLUMNS: Final = (
    "id, message_id, reporter_id, reason, status, resolution, created_at, resolved_at,"
    " CASE WHEN reporter_id IS NULL THEN 'system' ELSE 'user' END AS reporter"
)
# The message, if the reporter is a participant who can see it (not one they cleared).
_VISIBLE: Final = f"""
    SELECT m.sender_id
      FROM messages m JOIN conversations c ON c.id = m.conversation_id
     WHERE m.id = $1 AND {participant("$2")}
       AND m.seq > {own_cleared("$2")}
"""
_INSERT: Final = f"""
    INSERT INTO reports (message_id, reporter_id, reason) VALUES ($1, $2, $3)
    ON CONFLICT (reporter_id, message_id) DO NOTHING
    RETURNING {_REPORT_COLUMNS}
"""
_EXISTING: Final = (
    f"SELECT {_REPORT_COLUMNS} FROM reports WHERE reporter_id = $2 AND message_id = $1"
)
_PAGE: Final = f"""
    SELECT {_REPORT_COLUMNS} FROM reports WHERE status = $1 AND id > $2 ORDER BY id LIMIT $3
"""
_MESSAGES: Final = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ANY($1::bigint[])"
_VERSIONS: Final = """
    SELECT message_id, change, content, metadata, changed_at FROM message_versions
     WHERE message_id = ANY($1::bigint[]) ORDER BY id
"""
_RESOLVE: Final = f"""
    UPDATE reports
       SET status = 'resolved', resolution = coalesce($2, resolution),
           resolved_at = coalesce(resolved_at, now())
     WHERE id = $1
    RETURNING {_REPORT_COLUMNS}
"""


async def report_message(
    db: Database, reporter_id: int, message_id: int, reason: str
) -> tuple[Report, bool]:
    """Report the other side's message; a second report of it by the same user returns the
    first. Returns the report and whether it is new."""
    check_id(message_id, "message_id")
    check_reason(reason)
    async with connection(db) as conn, conn.transaction():
        visible = await conn.fetchrow(_VISIBLE, message_id, reporter_id)
        if visible is None:
            raise NotFound(f"message {message_id} not found")
        if visible["sender_id"] in (reporter_id, None):
            raise Forbidden("only the other side's messages can be reported")
        row = await conn.fetchrow(_INSERT, message_id, reporter_id, reason)
        if row is not None:
            return Report(**row), True
        existing = await conn.fetchrow(_EXISTING, message_id, reporter_id)
        assert existing is not None, "the conflicting report exists"
        return Report(**existing), False


async def report_cases(
    db: Database, status: str = "open", after_id: int = 0, limit: int = 50
) -> list[ReportCase]:
    """Reports with ``status``, oldest first, after ``after_id``: each with its message and
    the message's earlier versions."""
    if status not in REPORT_STATUSES:
        raise InvalidArgument(f"status must be one of {', '.join(REPORT_STATUSES)}")
    if not 0 <= after_id <= MAX_ID:
        raise InvalidArgument("after must be a whole number from 0 to 2^63 - 1")
    check_page_limit(limit)
    async with connection(db) as conn:
        reports = [Report(**row) for row in await conn.fetch(_PAGE, status, after_id, limit)]
        ids = sorted({report.message_id for report in reports})
        messages = {row["id"]: Message(**row) for row in await conn.fetch(_MESSAGES, ids)}
        versions: dict[int, list[MessageVersion]] = {}
        for row in await conn.fetch(_VERSIONS, ids):
            versions.setdefault(row["message_id"], []).append(
                MessageVersion(row["change"], row["content"], row["metadata"], row["changed_at"])
            )
    return [
        ReportCase(report, messages[report.message_id], versions.get(report.message_id, []))
        for report in reports
    ]


async def resolve_report(db: Database, report_id: int, resolution: str | None) -> Report:
    """Close a report (again: no change, but a new resolution text is kept)."""
    check_id(report_id, "report_id")
    if resolution is not None:
        check_resolution(resolution)
    row = await db.fetchrow(_RESOLVE, report_id, resolution)
    if row is None:
        raise NotFound(f"report {report_id} not found")
    return Report(**row)


# Parley's own report on a sender ($1) whose flagged messages today (UTC) number more than
# $3: at most one a day (reports_system_once_a_day), about the message ($2) that passed it.
_FLAGGED_TODAY: Final = """
    SELECT count(*) FROM messages
     WHERE sender_id = $1 AND safety <> '{}'
       AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
"""
_SYSTEM_REPORT: Final = f"""
    INSERT INTO reports (message_id, reporter_id, subject_id, system_day, reason)
    VALUES ($2, NULL, $1, (now() AT TIME ZONE 'UTC')::date, $3)
    ON CONFLICT (subject_id, system_day) WHERE reporter_id IS NULL DO NOTHING
    RETURNING {_REPORT_COLUMNS}
"""


async def report_flagged_sender(
    db: Database, sender_id: int, message_id: int, report_after: int
) -> Report | None:
    """Parley's own report (reporter ``system``) on a sender who has sent more than
    ``report_after`` messages with off-platform contact today; once a day at most. The new
    report, or None when there is none to make."""
    flagged = await db.fetchval(_FLAGGED_TODAY, sender_id)
    if flagged <= report_after:
        return None
    reason = f"{flagged} messages with off-platform contact today"
    row = await db.fetchrow(_SYSTEM_REPORT, sender_id, message_id, reason)
    return None if row is None else Report(**row)

"""Use cases for moderation: a participant reports a message; Parley reports a sender of too
many messages with off-platform contact; the marketplace lists the open reports, with the
message and its earlier versions, and resolves them."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from parley import store
from parley.models import Message, Report, ReportCase
from parley.usecases.base import use_case

log = logging.getLogger(__name__)


class Moderation:
    def __init__(self, pool: asyncpg.Pool, report_after: int = 3) -> None:
        self.pool = pool
        self.report_after = report_after
        self._checks: set[asyncio.Task[None]] = set()

    def flagged(self, message: Message) -> None:
        """A message with off-platform contact was sent: in the background (nobody waits
        for it), report its sender once it passes ``report_after`` of them today."""
        task = asyncio.create_task(self._report_if_past(message))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _report_if_past(self, message: Message) -> None:
        assert message.sender_id is not None
        try:
            report = await store.report_flagged_sender(
                self.pool, message.sender_id, message.id, self.report_after
            )
        except (asyncpg.PostgresError, OSError) as error:  # the next flagged message checks again
            log.warning("flagged sender %d not checked: %r", message.sender_id, error)
            return
        if report is not None:
            log.info("reported user %d: %s", message.sender_id, report.reason)

    async def idle(self) -> None:
        """Wait for the checks under way (for shutdown and tests)."""
        while self._checks:
            await asyncio.gather(*self._checks, return_exceptions=True)

    @use_case
    async def report(self, user_id: int, message_id: int, reason: str) -> tuple[Report, bool]:
        """Report the other side's message, once; the same report again returns the first."""
        return await store.report_message(self.pool, user_id, message_id, reason)

    @use_case
    async def cases(self, status: str, after_id: int, limit: int) -> list[ReportCase]:
        return await store.report_cases(self.pool, status, after_id, limit)

    @use_case
    async def resolve(self, report_id: int, resolution: str | None) -> Report:
        return await store.resolve_report(self.pool, report_id, resolution)

"""Use cases for moderation: a participant reports a message; the marketplace lists the
open reports, with the message and its earlier versions, and resolves them."""

from __future__ import annotations

import asyncpg

from parley import store
from parley.models import Report, ReportCase
from parley.usecases.base import use_case


class Moderation:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

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

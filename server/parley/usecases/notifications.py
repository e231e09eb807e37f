"""Offline notifications: every process's dispatcher closes the outbox's due windows
(sql/011_notifications.sql) and delivers them as signed webhooks, at least once.

A window falls due PARLEY_NOTIFY_DELAY_SECONDS after its first message. It is skipped when
the recipient is online, or when nothing is still unread and not silenced; else its body is
built from the recipient's state at that moment and stored, and every attempt sends those
same bytes with the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import msgspec

from parley import metrics
from parley.config import Settings
from parley.store import notifications as store
from parley.store.notifications import Claim, Window

log = logging.getLogger(__name__)

CLAIM_BATCH: Final = 16  # windows closed, and retries claimed, per pass
CLOSERS: Final = 4  # windows closed at once per process (one pool connection each)
RETRY_CAP_SECONDS: Final = 10 * 3600.0  # the longest wait between two attempts
PURGE_EVERY_SECONDS: Final = 300.0
PENDING_GAUGE_EVERY_SECONDS: Final = 5.0
_encode = msgspec.json.Encoder().encode


def webhook_id(notification_id: int) -> str:
    """The `webhook-id` of a notification: the same on every attempt, so receivers dedupe."""
    return f"ntf_{notification_id}"


def retry_delay(settings: Settings, attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: PARLEY_WEBHOOK_RETRY_
    SECONDS times 4 per earlier failure (5 s, 20 s, 80 s, 5 min, 21 min, ...; at most 10 h),
    each spread by ±20 % so that receivers that come back are not hit all at once."""
    delay: float = min(settings.webhook_retry_seconds * 4 ** (attempts - 1), RETRY_CAP_SECONDS)
    return delay * random.uniform(0.8, 1.2)


def notification_body(window: Window, timestamp: datetime) -> str:
    """The webhook's JSON body (docs/notifications.md)."""
    conversations = [
        {
            "conversation_id": row["conversation_id"],
            "product": {
                "id": row["product_id"],
                "title": row["product_title"],
                "image_url": row["product_image_url"],
            },
            "from": {"id": row["from_id"], "display_name": row["from_display_name"]},
            "unread_count": row["unread_count"],
            "last_message": {
                "id": row["message_id"],
                "seq": row["last_seq"],
                "message_type": row["last_message_type"],
                "preview": row["last_message_text"],
                "created_at": row["last_message_at"],
            },
        }
        for row in window.conversations
    ]
    body: dict[str, Any] = {
        "type": "notification.unread",
        "timestamp": timestamp,
        "data": {
            "user_id": window.user_id,
            "unread_total": window.unread_total,
            "version": window.version,
            "conversations": conversations,
        },
    }
    return _encode(body).decode()


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt: delivered on a 2xx; otherwise what went wrong, for the row's last_error."""

    delivered: bool
    status: int | None
    error: str | None


# Deliver one notification once: (webhook id, body) -> what happened (web/webhook.py).
Deliver = Callable[[str, bytes], Awaitable[Outcome]]


@dataclass
class Notifier:
    """One process's dispatcher. ``is_online(user_id)``: whether the user has a live socket;
    ``deliver``: one attempt, or None when no webhook is configured (every window is then
    closed as skipped, `no_webhook`)."""

    pool: asyncpg.Pool
    settings: Settings
    is_online: Callable[[int], bool]
    deliver: Deliver | None

    async def run(self) -> None:
        """Claim and handle due rows for as long as the process runs; rest when none are due."""
        next_purge = next_gauge = 0.0
        while True:
            handled = 0
            try:
                now = time.monotonic()
                if now >= next_gauge:
                    metrics.NOTIFICATIONS_PENDING.set(await store.count_pending(self.pool))
                    next_gauge = now + PENDING_GAUGE_EVERY_SECONDS
                if now >= next_purge:
                    await store.purge_finished(self.pool, self.settings.notify_retention_seconds)
                    next_purge = now + PURGE_EVERY_SECONDS
                handled = await self.dispatch_once()
            except (asyncpg.PostgresError, OSError) as error:
                log.warning("notification dispatch could not reach Postgres: %r", error)
            except Exception:
                log.exception("notification dispatch failed; trying again")
            if handled < CLAIM_BATCH:
                await asyncio.sleep(self.settings.notify_poll_seconds)

    async def dispatch_once(self) -> int:
        """Close the due windows (up to CLAIM_BATCH), claim due retries, and make every
        attempt they need together; how many rows this handled."""
        settings = self.settings
        claims: list[Claim] = []
        now = datetime.now(UTC)

        async def close(count: int) -> int:
            for closed in range(count):
                result = await store.close_next_window(
                    self.pool,
                    settings.notify_delay_seconds,
                    settings.notify_lease_seconds,
                    self._skip_before_reading,
                    lambda window: notification_body(window, now),
                )
                if result is None:
                    return closed
                if result.claim is None:
                    metrics.NOTIFICATIONS.labels("skipped", result.skip_reason or "").inc()
                else:
                    claims.append(result.claim)
            return count

        # A few closes at once: each is a short transaction of its own, mostly waiting.
        async with asyncio.TaskGroup() as group:
            closers = [group.create_task(close(CLAIM_BATCH // CLOSERS)) for _ in range(CLOSERS)]
        closed = sum(closer.result() for closer in closers)
        retries = []
        if self.deliver is not None:
            retries = await store.claim_due(self.pool, settings.notify_lease_seconds, CLAIM_BATCH)
        if claims or retries:
            async with asyncio.TaskGroup() as group:
                for claim in claims + retries:
                    group.create_task(self._attempt(claim))
        return max(closed, len(retries))

    def _skip_before_reading(self, user_id: int) -> str | None:
        if self.deliver is None:
            return "no_webhook"
        if self.is_online(user_id):
            return "online"
        return None

    async def _attempt(self, claim: Claim) -> None:
        try:
            await self._attempt_once(claim)
        except (asyncpg.PostgresError, OSError) as error:
            # The lease ends and another pass (here or in another process) takes it over.
            log.warning("notification %s: %r; it is taken up again", claim.id, error)

    async def _attempt_once(self, claim: Claim) -> None:
        assert self.deliver is not None  # a window is closed pending only with a webhook
        started = time.perf_counter()
        outcome = await self.deliver(webhook_id(claim.id), claim.body.encode())
        metrics.WEBHOOK_SECONDS.observe(time.perf_counter() - started)
        metrics.WEBHOOK_ATTEMPTS.labels("delivered" if outcome.delivered else "failed").inc()
        if outcome.delivered:
            if await store.delivered(self.pool, claim):
                metrics.NOTIFICATIONS.labels("delivered", "").inc()
            return
        attempts = claim.attempts + 1
        status = await store.attempt_failed(
            self.pool,
            claim,
            outcome.error or "failed",
            retry_delay(self.settings, attempts),
            self.settings.webhook_max_attempts,
        )
        if status == "failed":
            metrics.NOTIFICATIONS.labels("failed", "").inc()
            log.warning(
                "notification %s failed after %s attempts: %s", claim.id, attempts, outcome.error
            )

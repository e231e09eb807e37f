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
IN_FLIGHT: Final = 64  # webhook attempts under way at once per process
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
    """One process's dispatcher. ``is_online(user_id)``: whether the user has a live socket
    on any gateway (presence);
    ``deliver``: one attempt, or None when no webhook is configured (every window is then
    closed as skipped, `no_webhook`)."""

    pool: asyncpg.Pool
    settings: Settings
    is_online: Callable[[int], Awaitable[bool]]
    deliver: Deliver | None

    async def run(self) -> None:
        """Close due windows and claim due retries for as long as the process runs, with at
        most IN_FLIGHT attempts under way: a receiver that hangs slows its own deliveries,
        never the closing of windows beyond that bound. Rests when nothing is due."""
        slots = asyncio.Semaphore(IN_FLIGHT)
        next_purge = next_gauge = 0.0
        async with asyncio.TaskGroup() as attempts:
            while True:
                handled = 0
                try:
                    now = time.monotonic()
                    if now >= next_gauge:
                        metrics.NOTIFICATIONS_PENDING.set(await store.count_pending(self.pool))
                        next_gauge = now + PENDING_GAUGE_EVERY_SECONDS
                    if now >= next_purge:
                        retention = self.settings.notify_retention_seconds
                        await store.purge_finished(self.pool, retention)
                        next_purge = now + PURGE_EVERY_SECONDS
                    handled = await self.dispatch_once(attempts, slots)
                except (asyncpg.PostgresError, OSError) as error:
                    log.warning("notification dispatch could not reach Postgres: %r", error)
                except Exception:
                    log.exception("notification dispatch failed; trying again")
                if handled < CLAIM_BATCH:
                    await asyncio.sleep(self.settings.notify_poll_seconds)

    async def dispatch_once(self, attempts: asyncio.TaskGroup, slots: asyncio.Semaphore) -> int:
        """Close due windows (up to CLAIM_BATCH, CLOSERS at once) and claim due retries,
        starting an attempt in ``attempts`` for each, each holding one of ``slots``, taken
        before its row is (so no lease runs while it waits for a slot); how many rows."""
        settings = self.settings
        now = datetime.now(UTC)

        def start(claim: Claim) -> None:
            attempts.create_task(self._attempt(claim, slots))

        async def close(count: int) -> int:
            for closed in range(count):
                await slots.acquire()
                try:
                    result = await store.close_next_window(
                        self.pool,
                        settings.notify_delay_seconds,
                        settings.notify_lease_seconds,
                        self._skip_before_reading,
                        lambda window: notification_body(window, now),
                    )
                except BaseException:
                    slots.release()
                    raise
                if result is None or result.claim is None:
                    slots.release()
                if result is None:
                    return closed
                if result.claim is None:
                    metrics.NOTIFICATIONS.labels("skipped", result.skip_reason or "").inc()
                else:
                    start(result.claim)
            return count

        # A few closes at once: each is a short transaction of its own, mostly waiting.
        async with asyncio.TaskGroup() as group:
            closers = [group.create_task(close(CLAIM_BATCH // CLOSERS)) for _ in range(CLOSERS)]
        closed = sum(closer.result() for closer in closers)
        claimed: list[Claim] = []
        if self.deliver is not None:
            wanted = 0
            while wanted < CLAIM_BATCH and not slots.locked():
                await slots.acquire()  # never waits: a slot is free
                wanted += 1
            try:
                if wanted:
                    claimed = await store.claim_due(
                        self.pool, settings.notify_lease_seconds, wanted
                    )
            finally:
                for _ in range(wanted - len(claimed)):
                    slots.release()
            for claim in claimed:
                start(claim)
        return max(closed, len(claimed))

    async def _skip_before_reading(self, user_id: int) -> str | None:
        if self.deliver is None:
            return "no_webhook"
        try:
            if await self.is_online(user_id):
                return "online"
        except Exception as error:  # presence unknown: better a notification too many
            log.warning("presence of user %d unknown: %r", user_id, error)
        return None

    async def _attempt(self, claim: Claim, slots: asyncio.Semaphore) -> None:
        try:
            await self._attempt_once(claim)
        except (asyncpg.PostgresError, OSError) as error:
            # The lease ends and another pass (here or in another process) takes it over.
            log.warning("notification %s: %r; it is taken up again", claim.id, error)
        except Exception:
            log.exception("notification %s: the attempt failed; it is taken up again", claim.id)
        finally:
            slots.release()

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

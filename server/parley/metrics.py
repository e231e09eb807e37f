"""Prometheus metrics, safe across worker processes.

With PROMETHEUS_MULTIPROC_DIR set (parley serve --workers sets it), every process writes its
values to files there and /metrics adds them up across workers.
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

CONNECTIONS: Final = Gauge(
    "parley_connections",
    "Authenticated WebSockets open now",
    multiprocess_mode="livesum",
)
FRAMES_IN: Final = Counter("parley_frames_in", "Client frames received, by type", ["type"])
FRAMES_OUT: Final = Counter("parley_frames_out", "Frames queued to clients, by type", ["type"])
ERRORS: Final = Counter("parley_errors", "Error replies sent, by code", ["code"])
SEND_SECONDS: Final = Histogram(
    "parley_send_seconds",
    "message.send from frame received to reply queued (validation, commit, nothing else)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SEND_BATCH: Final = Histogram(
    "parley_send_batch_size",
    "Messages written per statement and commit by the send batcher",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
BROKER_PUBLISHED: Final = Counter("parley_broker_published", "Messages handed to the broker")
BROKER_RECEIVED: Final = Counter("parley_broker_received", "Messages received from the broker")
BROKER_PUBLISH_FAILURES: Final = Counter(
    "parley_broker_publish_failures", "Publishes dropped because the broker was unreachable"
)
BROKER_UP: Final = Gauge(
    "parley_broker_up",
    "1 while the broker is connected and subscribed; the least over workers",
    multiprocess_mode="livemin",
)
BROKER_RECONNECTS: Final = Counter(
    "parley_broker_reconnects", "Times the broker subscriber reconnected (clients resync)"
)
SLOW_CONSUMERS: Final = Counter(
    "parley_slow_consumers_closed", "Sockets closed because the client stopped reading (4420)"
)
NOTIFICATIONS: Final = Counter(
    "parley_notifications",
    "Notifications finished, by status (delivered, skipped, failed) and skip reason",
    ["status", "reason"],
)
NOTIFICATIONS_PENDING: Final = Gauge(
    "parley_notifications_pending",
    "Notifications not yet delivered, skipped or failed (the outbox's backlog)",
    multiprocess_mode="max",
)
WEBHOOK_ATTEMPTS: Final = Counter(
    "parley_webhook_attempts", "Webhook attempts, by result (delivered, failed)", ["result"]
)
WEBHOOK_SECONDS: Final = Histogram(
    "parley_webhook_attempt_seconds",
    "One webhook attempt, from connecting to the reply read (at most 10 s)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DB_POOL: Final = Gauge(
    "parley_db_pool_connections",
    "Postgres pool connections, by state",
    ["state"],
    multiprocess_mode="livesum",
)


def frame_type(frame: str) -> str:
    """The type of an encoded server frame; msgspec always writes the tag first."""
    end = frame.find('"', 9)
    return frame[9:end] if frame.startswith('{"type":"') and end > 0 else "unknown"


def render() -> tuple[bytes, str]:
    """The exposition text for /metrics, summed over workers when there are several."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

"""What every socket of this process shares: settings, the use cases, the hub, token
checks, per-user rate limits, and the graceful drain at shutdown."""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar, Protocol

from parley.config import Settings
from parley.fanout.hub import Hub
from parley.gateway.auth import TokenVerifier
from parley.gateway.ratelimit import PerUser
from parley.gateway.tokens import TokenDeadlines
from parley.presence.service import Presence
from parley.usecases.chat import Chat

log = logging.getLogger(__name__)


class Drainable(Protocol):
    """A socket as the drain sees it (gateway/session.py's Session)."""

    def drain(self) -> None: ...


class Gateway:
    """What every socket of this process shares."""

    # The gateways serving in this process, for the server's graceful shutdown.
    running: ClassVar[set[Gateway]] = set()

    def __init__(self, settings: Settings, chat: Chat, hub: Hub, presence: Presence) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.chat = chat
        self.hub = hub
        self.presence = presence
        self.verifier = TokenVerifier.from_settings(settings)
        self.message_rates = PerUser(self.limits.messages_per_second, self.limits.message_burst)
        self.token_deadlines = TokenDeadlines()
        self.slow_consumers_closed = 0
        self.sessions: set[Drainable] = set()
        self.draining = False

    async def drain(self, within: float) -> None:
        """Graceful shutdown: every socket finishes its request in flight, flushes what it
        owes the client, then closes with 1012 so the client reconnects elsewhere."""
        self.draining = True
        log.info("draining %d sockets", len(self.sessions))
        for session in list(self.sessions):
            session.drain()
        try:
            async with asyncio.timeout(within):
                while self.sessions:
                    await self.hub.changed()
        except TimeoutError:
            log.warning(
                "%d sockets still open after %.0f s of draining", len(self.sessions), within
            )

    def forget_user(self, user_id: int) -> None:
        if self.hub.sockets_of(user_id) == 0:
            self.message_rates.forget(user_id)

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        # Browsers always send Origin; other clients authenticate by token alone. The page
        # Parley serves itself (same scheme-less host and port) is always allowed.
        allowed = self.settings.allowed_origins
        if origin is None or "*" in allowed or origin in allowed:
            return True
        return host is not None and origin.partition("://")[2] == host

    @property
    def public_limits(self) -> dict[str, int | float]:
        limits = self.limits
        return {
            "max_frame_bytes": limits.max_frame_bytes,
            "max_content_chars": limits.max_content_chars,
            "max_metadata_bytes": limits.max_metadata_bytes,
            "messages_per_second": limits.messages_per_second,
            "message_burst": limits.message_burst,
            "frames_per_second": limits.frames_per_second,
            "connections_per_user": limits.connections_per_user,
            "typing_interval_ms": round(limits.typing_interval_seconds * 1000),
            "typing_expiry_ms": round(limits.typing_expiry_seconds * 1000),
            "edit_window_ms": round(limits.edit_window_seconds * 1000),
        }

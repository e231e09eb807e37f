"""Where "online" lives: each gateway claims the users it holds sockets of, and a user is
online while any live gateway claims them. Every change of that answer is a transition
with a per-user version that only grows, so whoever hears two in the wrong order keeps the
newer one.

MemoryPresence serves one process (the memory:// broker); redis.py serves many.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import NamedTuple


class Transition(NamedTuple):
    """``user_id`` went online or offline; ``version`` orders a user's transitions."""

    user_id: int
    online: bool
    version: int


class State(NamedTuple):
    online: bool
    version: int


class PresenceBackend(abc.ABC):
    """The online state of users across gateways, as claims by this gateway."""

    async def stop(self) -> None:  # noqa: B027 (most backends hold nothing to close)
        """Disconnect; this gateway's claims are left to expire."""

    @abc.abstractmethod
    async def claim(self, user_id: int) -> Transition | None:
        """This gateway now holds a socket of the user: the transition, if they were offline."""

    @abc.abstractmethod
    async def release(self, user_id: int) -> Transition | None:
        """This gateway holds no socket of the user any more: the transition, if no other
        gateway does."""

    @abc.abstractmethod
    async def states(self, user_ids: Iterable[int]) -> dict[int, State]:
        """Each user's state now; a user nobody claims is offline at their last version."""

    async def refresh(self, user_ids: Iterable[int]) -> list[Transition]:
        """This gateway still holds these users: renew its claims. The transitions of those
        whose claim had lapsed (a pause past the TTL, a Redis that lost its data)."""
        return []

    async def sweep(self) -> list[Transition]:
        """Drop the claims of gateways that stopped renewing them: the users that left."""
        return []


class MemoryPresence(PresenceBackend):
    """One process: it holds every socket there is, and nothing outlives it."""

    def __init__(self) -> None:
        self._online: set[int] = set()
        self._versions: dict[int, int] = {}

    def _moved(self, user_id: int, online: bool) -> Transition:
        version = self._versions[user_id] = self._versions.get(user_id, 0) + 1
        return Transition(user_id, online, version)

    async def claim(self, user_id: int) -> Transition | None:
        if user_id in self._online:
            return None
        self._online.add(user_id)
        return self._moved(user_id, True)

    async def release(self, user_id: int) -> Transition | None:
        if user_id not in self._online:
            return None
        self._online.discard(user_id)
        return self._moved(user_id, False)

    async def states(self, user_ids: Iterable[int]) -> dict[int, State]:
        return {u: State(u in self._online, self._versions.get(u, 0)) for u in user_ids}

"""Tokens expire while sockets stay open: each socket is told shortly before its token runs
out (``token.expiring``), may send ``hello`` again with a fresh one, and is closed (4411)
if none comes. One timer serves the whole process: a heap of deadlines, not a timer per
socket, so an idle socket costs nothing more."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
import weakref
from typing import Final, Protocol

# How long before its token runs out a socket is told (at most half the token's life).
WARN_BEFORE_SECONDS: Final = 60.0


class Watched(Protocol):
    """What the deadlines need of a socket."""

    @property
    def token_expires_at(self) -> float: ...

    def token_expiring(self, expires_at: float) -> None: ...

    def token_expired(self) -> None: ...


class TokenDeadlines:
    def __init__(self, warn_before: float = WARN_BEFORE_SECONDS) -> None:
        self.warn_before = warn_before
        # (when, order, final, the token's expiry, the socket): weakly, so a socket that has
        # gone is not kept alive by a deadline hours away.
        self._heap: list[tuple[float, int, bool, float, weakref.ref[Watched]]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, socket: Watched, issued_at: float | None = None) -> None:
        """Schedule the warning for the socket's current token (its close is scheduled when
        the warning is given: one entry per socket at a time)."""
        expires_at = socket.token_expires_at
        now = time.time() if issued_at is None else issued_at
        warn_at = max(now, expires_at - min(self.warn_before, (expires_at - now) / 2))
        self._push(warn_at, False, expires_at, weakref.ref(socket))
        self._arm()

    def _push(self, at: float, final: bool, expires_at: float, ref: weakref.ref[Watched]) -> None:
        heapq.heappush(self._heap, (at, next(self._order), final, expires_at, ref))

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._heap:
            delay = max(0.0, self._heap[0][0] - time.time())
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = time.time()
        while self._heap and self._heap[0][0] <= now:
            _, _, final, expires_at, ref = heapq.heappop(self._heap)
            socket = ref()
            if socket is None or socket.token_expires_at != expires_at:
                continue  # renewed (or gone) since: a newer entry stands for it
            if final:
                socket.token_expired()
            else:
                socket.token_expiring(expires_at)
                self._push(expires_at, True, expires_at, ref)
        self._arm()

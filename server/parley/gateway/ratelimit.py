"""Rate limits: token buckets, per socket for frames and per user for messages (per process)."""

from __future__ import annotations

import time

from parley.errors import RateLimited


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; take() says how long to wait if empty."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.updated = float(burst), time.monotonic()

    def take(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate if self.rate > 0 else float("inf")

    def spend(self, what: str) -> None:
        """Take a token or raise RateLimited, saying when to retry."""
        if (wait := self.take()) > 0:
            raise RateLimited(f"too many {what}", wait)


class PerUser:
    """One bucket per user with a socket here, shared by all their sockets in this process."""

    __slots__ = ("_buckets", "burst", "rate")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[int, TokenBucket] = {}

    def of(self, user_id: int) -> TokenBucket:
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = self._buckets[user_id] = TokenBucket(self.rate, self.burst)
        return bucket

    def forget(self, user_id: int) -> None:
        """The user's last socket here closed."""
        self._buckets.pop(user_id, None)

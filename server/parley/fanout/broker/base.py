"""The broker interface: per-channel pub/sub between gateway processes.

Modelled on encode/broadcaster: a thin backend per URL scheme behind seven methods. The
hub (parley/hub.py) owns local fan-out; a backend only moves opaque payloads.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

GAP_ALL = "*"


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message on a channel. An empty payload is a gap: messages on ``channel`` (on every
    channel, for GAP_ALL) may have been lost, and clients should catch up from Postgres."""

    channel: str
    payload: bytes


class Broker(abc.ABC):
    """A pub/sub backend. Publishes to channels nobody here subscribed to may be dropped."""

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def disconnect(self) -> None: ...

    @abc.abstractmethod
    async def subscribe(self, channel: str) -> None: ...

    @abc.abstractmethod
    async def unsubscribe(self, channel: str) -> None: ...

    @abc.abstractmethod
    async def publish(self, channel: str, payload: bytes) -> None: ...

    async def publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        """Publish several messages; backends override this to batch the round trips."""
        for channel, payload in messages:
            await self.publish(channel, payload)

    @abc.abstractmethod
    async def next_published(self) -> Envelope:
        """Wait for the next message on any subscribed channel."""

    def status(self) -> str:
        """``"ok"`` while publishes reach every gateway and subscriptions are live; otherwise
        what is wrong, naming the broker (password masked), e.g. ``"unreachable: redis://…"``.
        /readyz answers 503 until it is ``"ok"``."""
        return "ok"

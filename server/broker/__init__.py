"""Pub/sub backends, chosen by URL scheme: memory:// (one process) or redis:// (many)."""

from __future__ import annotations

from urllib.parse import urlsplit

from server.broker.base import Broker, BrokerError, Envelope
from server.broker.memory import MemoryBroker

__all__ = ["Broker", "BrokerError", "Envelope", "MemoryBroker", "broker_from_url"]


def broker_from_url(url: str) -> Broker:
    """The backend for ``url``; raises ValueError naming the schemes it knows."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBroker(url)
    raise ValueError(f"unknown broker URL scheme {scheme!r} in {url!r}; use memory://")

"""Pub/sub backends, chosen by URL scheme: memory:// (one process), redis:// (many), or
redis+cluster:// (many, sharded over a Redis Cluster)."""

from __future__ import annotations

from urllib.parse import urlsplit

from parley.fanout.broker.base import GAP_ALL, Broker, Envelope
from parley.fanout.broker.memory import MemoryBroker
from parley.logs import masked_url

__all__ = ["GAP_ALL", "Broker", "Envelope", "MemoryBroker", "broker_from_url"]


def broker_from_url(url: str, prefix: str = "parley:") -> Broker:
    """The backend for ``url``; raises ValueError naming the schemes it knows.

    ``prefix`` namespaces the channels, so several deployments can share one Redis.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBroker(url)
    if scheme in ("redis", "rediss", "unix"):
        from parley.fanout.broker.redis import RedisBroker

        return RedisBroker(url, prefix)
    if scheme in ("redis+cluster", "rediss+cluster"):
        from parley.fanout.broker.cluster import ClusterBroker

        return ClusterBroker(url, prefix)
    raise ValueError(
        f"unknown broker URL scheme {scheme!r} in {masked_url(url)!r}; "
        "use memory://, redis://, rediss:// or redis+cluster://"
    )

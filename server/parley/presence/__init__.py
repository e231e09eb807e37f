"""Presence: who is online (any socket on any gateway) and when they were last seen.

backend.py keeps the online state across gateways (memory, or Redis with expiry);
service.py ties it to this process's sockets, subscriptions and the broker.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from parley.presence.backend import MemoryPresence, PresenceBackend


def backend_for(url: str, prefix: str, ttl_seconds: float) -> PresenceBackend:
    """The presence backend beside the broker of ``url``: in the process for memory://, else
    in the same Redis (or Redis Cluster), under ``prefix``."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryPresence()
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from parley.presence.redis import RedisPresence

    options: dict[str, Any] = {
        "retry": Retry(NoBackoff(), 0),
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }
    client: object
    if scheme.endswith("+cluster"):
        from redis.asyncio.cluster import RedisCluster

        from parley.fanout.broker.cluster import node_url

        client = RedisCluster.from_url(node_url(url), **options)
    else:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url, **options)
    return RedisPresence(client, prefix, secrets.token_hex(6), ttl_seconds)

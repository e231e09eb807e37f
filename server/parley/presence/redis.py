"""Presence across gateways in Redis: each gateway's claim on a user expires unless renewed.

Keys (one hash tag, so a Redis Cluster keeps them in one slot and the scripts may touch
several): ``{prefix}{presence}:u:<user>``, a sorted set of the gateways claiming the user,
scored by when each claim expires; ``…:live``, every claim as ``<user>:<gateway>`` by the same
score, for the sweep; ``…:v``, each user's last transition version. Time is Redis's own (TIME),
so the gateways' clocks do not matter. Each script decides a transition atomically, so
exactly one caller announces each.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from parley.presence.backend import PresenceBackend, State, Transition

# Redis's clock in ms, and a version past both the last one and the clock (in µs), so that
# versions keep growing even after a Redis restart that lost them.
_NOW: Final = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local function bump(versions, user)
  local last = tonumber(redis.call('HGET', versions, user)) or 0
  local v = math.max(t[1] * 1000000 + t[2], last + 1)
  redis.call('HSET', versions, user, string.format('%d', v))
  return v
end
"""

# KEYS: live, versions, the user's set; ARGV: gateway, user, ttl in ms.
_CLAIM: Final = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local before = redis.call('ZCARD', KEYS[3])
redis.call('ZADD', KEYS[3], now + ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[3], 2 * ARGV[3])
redis.call('ZADD', KEYS[1], now + ARGV[3], ARGV[2] .. ':' .. ARGV[1])
if before == 0 then return bump(KEYS[2], ARGV[2]) end
return 0
"""
)

# KEYS: live, versions, the user's set; ARGV: gateway, user.
_RELEASE: Final = (
    _NOW
    + """
redis.call('ZREM', KEYS[1], ARGV[2] .. ':' .. ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[3]) == 0 then
  redis.call('DEL', KEYS[3])
  return bump(KEYS[2], ARGV[2])
end
return 0
"""
)

# KEYS: live, versions, then each user's set; ARGV: gateway, ttl in ms, then each user.
# Returns user, version pairs for those whose claim had lapsed.
_REFRESH: Final = (
    _NOW
    + """
local back = {}
for i = 3, #KEYS do
  local user = ARGV[i]
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  local before = redis.call('ZCARD', KEYS[i])
  redis.call('ZADD', KEYS[i], now + ARGV[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[i], 2 * ARGV[2])
  redis.call('ZADD', KEYS[1], now + ARGV[2], user .. ':' .. ARGV[1])
  if before == 0 then
    back[#back + 1] = user
    back[#back + 1] = bump(KEYS[2], user)
  end
end
return back
"""
)

# KEYS: live, versions; ARGV: the prefix of the users' sets, how many claims at most.
# Returns user, version pairs for those whom no live gateway claims any more.
_SWEEP: Final = (
    _NOW
    + """
local gone = {}
for _, claim in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[2])) do
  redis.call('ZREM', KEYS[1], claim)
  local user, gateway = string.match(claim, '^(%d+):(.+)$')
  local key = ARGV[1] .. user
  redis.call('ZREM', key, gateway)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) == 0 then
    redis.call('DEL', key)
    gone[#gone + 1] = user
    gone[#gone + 1] = bump(KEYS[2], user)
  end
end
return gone
"""
)

# KEYS: versions, then each user's set; ARGV: each user. Returns online, version pairs.
_STATES: Final = (
    _NOW
    + """
local out = {}
for i = 2, #KEYS do
  out[#out + 1] = redis.call('ZCOUNT', KEYS[i], '(' .. now, '+inf')
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[1], ARGV[i - 1]) or '0')
end
return out
"""
)

SWEEP_BATCH: Final = 500
CHUNK: Final = 500  # users per refresh or states call


class RedisPresence(PresenceBackend):
    """``client``: a redis.asyncio Redis or RedisCluster; ``gateway_id``: unique per process;
    ``ttl_seconds``: how long a claim outlives a gateway that stopped renewing it."""

    def __init__(self, client: Any, prefix: str, gateway_id: str, ttl_seconds: float) -> None:
        self._client = client
        self._gateway = gateway_id
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        base = f"{prefix}{{presence}}:"
        self._live, self._versions, self._user_prefix = f"{base}live", f"{base}v", f"{base}u:"
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._refresh = client.register_script(_REFRESH)
        self._sweep = client.register_script(_SWEEP)
        self._states = client.register_script(_STATES)

    async def stop(self) -> None:
        await self._client.aclose()

    def _key(self, user_id: int) -> str:
        return f"{self._user_prefix}{user_id}"

    async def claim(self, user_id: int) -> Transition | None:
        keys = [self._live, self._versions, self._key(user_id)]
        version = await self._claim(keys, [self._gateway, user_id, self._ttl_ms])
        return Transition(user_id, True, int(version)) if version else None

    async def release(self, user_id: int) -> Transition | None:
        keys = [self._live, self._versions, self._key(user_id)]
        version = await self._release(keys, [self._gateway, user_id])
        return Transition(user_id, False, int(version)) if version else None

    async def states(self, user_ids: Iterable[int]) -> dict[int, State]:
        users, found = list(user_ids), {}
        for start in range(0, len(users), CHUNK):
            chunk = users[start : start + CHUNK]
            keys = [self._versions, *map(self._key, chunk)]
            flat = await self._states(keys, chunk)
            for i, user in enumerate(chunk):
                found[user] = State(int(flat[2 * i]) > 0, int(flat[2 * i + 1]))
        return found

    async def refresh(self, user_ids: Iterable[int]) -> list[Transition]:
        users, back = list(user_ids), []
        for start in range(0, len(users), CHUNK):
            chunk = users[start : start + CHUNK]
            keys = [self._live, self._versions, *map(self._key, chunk)]
            flat = await self._refresh(keys, [self._gateway, self._ttl_ms, *chunk])
            back += _transitions(flat, online=True)
        return back

    async def sweep(self) -> list[Transition]:
        keys = [self._live, self._versions]
        flat = await self._sweep(keys, [self._user_prefix, SWEEP_BATCH])
        return _transitions(flat, online=False)


def _transitions(flat: list[Any], *, online: bool) -> list[Transition]:
    return [Transition(int(flat[i]), online, int(flat[i + 1])) for i in range(0, len(flat), 2)]

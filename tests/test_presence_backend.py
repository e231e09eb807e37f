"""The presence backends' claims, through one Redis and through a Redis Cluster (the scripts
touch several keys, kept in one slot by their hash tag), and in memory: a user is online
while any gateway claims them, each change is decided once, and versions only grow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from parley.presence import backend_for
from parley.presence.backend import MemoryPresence, PresenceBackend, State, Transition

USER = 4242


@pytest.fixture
async def gateways(broker_url: str, channel_prefix: str) -> AsyncIterator[list[PresenceBackend]]:
    backends = [backend_for(broker_url, channel_prefix, ttl_seconds=1) for _ in range(3)]
    try:
        yield backends
    finally:
        for backend in backends:
            await backend.stop()


async def test_online_while_any_gateway_claims_and_decided_once(
    gateways: list[PresenceBackend],
) -> None:
    a, b, c = gateways
    went_online = await a.claim(USER)
    assert went_online is not None
    assert went_online[:2] == (USER, True)
    assert await b.claim(USER) is None  # already online: nobody announces it again
    assert await a.release(USER) is None  # b still holds a socket of theirs
    assert (await c.states([USER]))[USER] == State(True, went_online.version)
    went_offline = await b.release(USER)
    assert went_offline is not None
    assert went_offline[:2] == (USER, False)
    assert went_offline.version > went_online.version
    assert (await c.states([USER, USER + 1])) == {
        USER: State(False, went_offline.version),
        USER + 1: State(False, 0),
    }


async def test_a_gateway_that_stops_renewing_is_swept(gateways: list[PresenceBackend]) -> None:
    dead, alive, _ = gateways
    await dead.claim(USER)
    await alive.claim(USER + 1)
    swept: list[Transition] = []
    async with asyncio.timeout(5):  # the claims expire after 1 s; alive renews its own
        while not swept:
            await alive.refresh([USER + 1])
            swept = await alive.sweep()
            await asyncio.sleep(0.2)
    assert [(t.user_id, t.online) for t in swept] == [(USER, False)]
    assert (await alive.states([USER, USER + 1]))[USER + 1].online
    # A claim that lapsed comes back with a refresh, as a transition.
    [back] = await dead.refresh([USER])
    assert back[:2] == (USER, True)


async def test_memory_presence_counts_the_one_process() -> None:
    memory = MemoryPresence()
    first = await memory.claim(USER)
    assert first == Transition(USER, True, 1)
    assert await memory.claim(USER) is None
    assert await memory.release(USER) == Transition(USER, False, 2)
    assert await memory.release(USER) is None
    assert await memory.states([USER]) == {USER: State(False, 2)}

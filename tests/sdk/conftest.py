"""A gateway with room for the SDK tests' bursts, and the demo cast on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.clients import Gateway
from tests.conftest import gateway_settings, running_gateway
from tests.world import World


@pytest.fixture
async def roomy_gateway(database_url: str, pool: asyncpg.Pool) -> AsyncIterator[Gateway]:
    """Rate limits out of the way: these tests send hundreds of messages in a burst."""
    settings = gateway_settings(
        database_url,
        messages_per_second=10_000.0,
        message_burst=10_000,
        frames_per_second=10_000.0,
        frame_burst=10_000,
        send_queue=4096,
    )
    async with running_gateway(settings) as running:
        yield running


@pytest.fixture
async def cast(world: World, roomy_gateway: Gateway) -> World:
    return world

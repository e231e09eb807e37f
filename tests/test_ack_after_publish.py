"""An ok means committed and handed to the broker: a gateway killed between a send's commit
and its publish leaves that send unacknowledged, never acknowledged and undelivered."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from tests.clients import Client
from tests.services import GatewayProcess
from tests.test_scale_out import connect, gateway_env
from tests.world import World

KILL_AT_BATCH = 3
SENDS = 6


@contextlib.asynccontextmanager
async def two_gateways(
    database_url: str, redis_url: str, prefix: str
) -> AsyncIterator[tuple[GatewayProcess, GatewayProcess]]:
    """Gateway a dies at its KILL_AT_BATCH-th send batch, between commit and publish."""
    env = gateway_env(database_url, redis_url, prefix)
    doomed = GatewayProcess(
        "doomed",
        env | {"PARLEY_TEST_KILL_AT_BATCH": str(KILL_AT_BATCH)},
        command=[sys.executable, "-m", "tests.kill_after_commit"],
    )
    survivor = GatewayProcess("survivor", env)
    try:
        await asyncio.gather(doomed.start(), survivor.start())
        yield doomed, survivor
    finally:
        await asyncio.gather(doomed.stop(), survivor.stop())


async def send_until_lost(john: Client, conversation_id: int) -> tuple[list[Any], list[str]]:
    """Send one at a time until the socket dies: the messages acked, and the client_msg_ids
    sent but never answered."""
    acked: list[Any] = []
    unanswered: list[str] = []
    for n in range(1, SENDS + 1):
        client_msg_id = f"ack-{n}"
        reply = await john.request_or_none(
            "message.send",
            conversation_id=conversation_id,
            client_msg_id=client_msg_id,
            content=f"message {n}",
        )
        if reply is None:
            unanswered.append(client_msg_id)
            break
        assert reply["type"] == "ok", reply
        acked.append(reply["data"]["message"])
    return acked, unanswered


async def test_a_gateway_killed_between_commit_and_publish_leaves_no_acked_send_undelivered(
    database_url: str, redis_url: str, channel_prefix: str, world: World
) -> None:
    conversation = await world.open()
    async with (
        two_gateways(database_url, redis_url, channel_prefix) as (doomed, survivor),
        connect(survivor, world.mary.id) as mary,
    ):
        async with connect(doomed, world.john.id) as john:
            acked, unanswered = await send_until_lost(john, conversation.id)
        assert doomed.process is not None
        assert await asyncio.wait_for(doomed.process.wait(), 10) == -9  # SIGKILL, by the hook
        # Every acknowledged message reached Mary live, with no sync.
        for message in acked:
            new = await mary.event("message.new", within=10)
            assert new["message"]["id"] == message["id"]
        # And the batch the gateway died in was never acknowledged.
        assert len(acked) == KILL_AT_BATCH - 1
        assert len(unanswered) == 1

        # The send that got no answer, retried elsewhere, is stored once and delivered.
        async with connect(survivor, world.john.id) as john_again:
            retried = await john_again.ok(
                "message.send",
                conversation_id=conversation.id,
                client_msg_id=unanswered[0],
                content=f"message {KILL_AT_BATCH}",
            )
        assert retried["replayed"] is True
        assert retried["message"]["seq"] == KILL_AT_BATCH
        new = await mary.event("message.new", within=10)
        assert new["message"] == retried["message"]
        assert not any(f.get("type") == "resync" for f in mary.received)

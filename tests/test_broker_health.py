"""Broker health: a Redis that is not there yet is visible, logged once, and waited for."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from parley.logs import masked_url
from tests.services import GatewayProcess, RedisServer
from tests.test_scale_out import connect, gateways
from tests.world import World


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://parley:s3cret@cache.example:6380/1", "rediss://parley:***@cache.example:6380/1"),
        ("redis://parley@cache:6379", "redis://parley@cache:6379"),
    ],
)
def test_a_broker_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert masked_url(url) == shown


async def _readiness(process: GatewayProcess) -> tuple[int, dict[str, str]]:
    async with httpx.AsyncClient(base_url=process.http_url) as client:
        response = await client.get("/readyz")
    return response.status_code, response.json()


async def _until_ready(
    process: GatewayProcess, wanted: int, within: float = 20.0
) -> dict[str, str]:
    """The gateway's /readyz once it answers ``wanted``: the broker's state changes in the
    background, so this asks again on each change of a short tick until it does."""
    async with asyncio.timeout(within):
        while True:
            status, body = await _readiness(process)
            if status == wanted and body["broker"] != f"connecting: {process.env['REDIS_URL']}":
                return body
            await asyncio.sleep(0.05)


async def _broker_up(process: GatewayProcess) -> float:
    async with httpx.AsyncClient(base_url=process.http_url) as client:
        text = (await client.get("/metrics")).text
    [family] = [f for f in text_string_to_metric_families(text) if f.name == "parley_broker_up"]
    return family.samples[0].value


async def test_a_redis_that_is_not_there_yet_is_not_ready_then_flows_once_it_starts(
    database_url: str, channel_prefix: str, world: World
) -> None:
    conversation = await world.open()
    redis = RedisServer()  # its port is chosen; nothing listens there yet
    try:
        async with gateways(2, database_url, redis.url, channel_prefix) as (a, b):
            for gateway in (a, b):
                body = await _until_ready(gateway, 503)
                assert body == {
                    "status": "not_ready",
                    "database": "ok",
                    "broker": f"unreachable: {redis.url}",
                }
                assert await _broker_up(gateway) == 0
                lines = [line for line in gateway.output if redis.url in line]
                assert len(lines) == 1, lines
                assert json.loads(lines[0])["level"] == "error"
                assert "lost" not in gateway.log
                assert "reconnected" not in gateway.log

            await redis.start()
            for gateway in (a, b):
                body = await _until_ready(gateway, 200)
                assert body == {"status": "ready", "database": "ok", "broker": "ok"}
                assert await _broker_up(gateway) == 1

            async with connect(a, world.john.id) as john, connect(b, world.mary.id) as mary:
                sent = await john.ok(
                    "message.send",
                    conversation_id=conversation.id,
                    client_msg_id="after-redis",
                    content="Is this still available?",
                )
                assert (await mary.event("message.new"))["message"] == sent["message"]
            for gateway in (a, b):
                assert "lost" not in gateway.log
    finally:
        await redis.stop()

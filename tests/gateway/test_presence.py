"""Presence over real sockets: online while any device holds a socket, last seen when the last
one closes, and the same hidden answer for everyone who may not see it (an outsider, an
unknown id, a blocked pair, a user who hides it)."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import datetime
from typing import Any

from parley import store
from tests.clients import Client, Gateway
from tests.services import GatewayProcess
from tests.test_scale_out import connect, gateway_env, gateways
from tests.world import World

TTL = 2  # PARLEY_PRESENCE_TTL_SECONDS of the gateway killed

HIDDEN = {"online": False, "last_seen_at": None}


async def watch(client: Client, user_id: int) -> dict[str, Any]:
    [answer] = (await client.ok("presence.subscribe", user_ids=[user_id]))["presence"]
    assert answer["user_id"] == user_id
    return {"online": answer["online"], "last_seen_at": answer["last_seen_at"]}


async def until_online(client: Client, user_id: int, answer: dict[str, Any]) -> None:
    """The socket has ``answer`` for the user; wait for them to be online if they are not yet
    (a claim follows the hello a moment later)."""
    if not answer["online"]:
        await client.event("presence", user_id=user_id, online=True)


async def test_online_while_a_socket_is_open_then_last_seen(gateway: Gateway, world: World) -> None:
    await world.open()
    async with gateway.connect(world.john.id) as john:
        async with gateway.connect(world.mary.id) as mary:
            assert mary.user["settings"] == {"show_presence": True}
            await until_online(john, world.mary.id, await watch(john, world.mary.id))
        offline = await john.event("presence", user_id=world.mary.id, online=False)
        seen = datetime.fromisoformat(offline["last_seen_at"])
        stored = await world.pool.fetchval(
            "SELECT last_seen_at FROM users WHERE id = $1", world.mary.id
        )
        assert seen == stored
        assert await watch(john, world.mary.id) == {
            "online": False,
            "last_seen_at": offline["last_seen_at"],
        }
        await john.ok("presence.unsubscribe", user_ids=[world.mary.id])


async def test_everyone_who_may_not_see_gets_the_same_answer(
    gateway: Gateway, world: World
) -> None:
    await world.open()
    async with (
        gateway.connect(world.john.id) as john,
        gateway.connect(world.mary.id) as mary,
        gateway.connect(world.eve.id) as eve,
    ):
        await until_online(john, world.mary.id, await watch(john, world.mary.id))
        # An outsider, an unknown id and a user with no socket: the hidden answer.
        assert await watch(eve, world.mary.id) == HIDDEN
        assert await watch(eve, 999_999) == HIDDEN
        assert await watch(mary, world.eve.id) == HIDDEN

        # Hiding: John's socket is told once; Mary's other devices get her settings.
        async with gateway.connect(world.mary.id) as phone:
            reply = await mary.ok("user.settings", show_presence=False)
            assert reply == {"settings": {"show_presence": False}}
            changed = await phone.event("user.settings")
            assert changed["settings"] == {"show_presence": False}
        hidden = await john.event("presence", user_id=world.mary.id)
        assert {k: hidden[k] for k in HIDDEN} == HIDDEN
        assert await watch(john, world.mary.id) == HIDDEN
        await mary.ok("user.settings", show_presence=True)
        await john.event("presence", user_id=world.mary.id, online=True)

        # A block hides both ways, whoever made it; an unblock shows again.
        await watch(mary, world.john.id)
        await john.ok("user.block", user_id=world.mary.id)
        hidden = await john.event("presence", user_id=world.mary.id)
        assert {k: hidden[k] for k in HIDDEN} == HIDDEN
        hidden = await mary.event("presence", user_id=world.john.id)
        assert {k: hidden[k] for k in HIDDEN} == HIDDEN
        assert await watch(mary, world.john.id) == HIDDEN
        await john.ok("user.unblock", user_id=world.mary.id)
        await mary.event("presence", user_id=world.john.id, online=True)

    async with gateway.connect(world.eve.id) as eve:
        # Once they share a conversation, the two see each other: Mary's last seen now.
        assert await watch(eve, world.mary.id) == HIDDEN
        await eve.ok("conversation.open", product_id=world.iphone.id)
        shown = await eve.event("presence", user_id=world.mary.id)
        assert shown["online"] is False
        assert shown["last_seen_at"] is not None


async def test_presence_frames_are_bounded(gateway: Gateway, world: World) -> None:
    async with gateway.connect(world.john.id) as john:
        for ids in ([], list(range(1, 102)), [0]):
            refused = await john.error("presence.subscribe", user_ids=ids)
            assert refused["code"] == "invalid_frame"
        for start in range(1, 1001, 100):
            await john.ok("presence.subscribe", user_ids=list(range(start, start + 100)))
        refused = await john.error("presence.subscribe", user_ids=[5000])
        assert refused["code"] == "invalid_argument"
        await john.ok("presence.unsubscribe", user_ids=[1])
        await john.ok("presence.subscribe", user_ids=[5000])
    assert await store.presence_visible(world.pool, [(world.john.id, world.mary.id)]) == {}


async def test_across_gateways_the_last_device_decides(
    database_url: str, redis_url: str, channel_prefix: str, world: World
) -> None:
    await world.open()
    async with (
        gateways(2, database_url, redis_url, channel_prefix) as (a, b),
        connect(a, world.john.id) as john,
    ):
        async with connect(a, world.mary.id):
            await until_online(john, world.mary.id, await watch(john, world.mary.id))
            since = len(john.received)
            for _ in range(2):  # her phone comes and goes on the other gateway
                async with connect(b, world.mary.id) as phone:
                    await phone.ok("conversation.list")
        offline = await john.event("presence", user_id=world.mary.id)
        assert offline["online"] is False
        assert offline["last_seen_at"] is not None
        # She never looked offline while a device of hers was on, and was told once.
        told = [f for f in john.received[since:] if f.get("type") == "presence"]
        assert told == [offline]


async def test_a_killed_gateway_leaves_its_users_offline_within_the_ttl(
    database_url: str, redis_url: str, channel_prefix: str, world: World
) -> None:
    await world.open()
    env = gateway_env(database_url, redis_url, channel_prefix)
    env["PARLEY_PRESENCE_TTL_SECONDS"] = str(TTL)
    doomed, survivor = GatewayProcess("doomed", env), GatewayProcess("survivor", env)
    await asyncio.gather(doomed.start(), survivor.start())
    try:
        async with connect(survivor, world.john.id) as john:
            async with connect(doomed, world.mary.id):
                await until_online(john, world.mary.id, await watch(john, world.mary.id))
                killed_at = time.monotonic()
                await doomed.signal_and_wait(signal.SIGKILL)
                offline = await john.event(
                    "presence", within=TTL + 5, user_id=world.mary.id, online=False
                )
            assert time.monotonic() - killed_at <= TTL + 5
            assert offline["last_seen_at"] is not None
            assert await watch(john, world.mary.id) == {
                "online": False,
                "last_seen_at": offline["last_seen_at"],
            }
    finally:
        await asyncio.gather(doomed.stop(), survivor.stop())

"""Presence in the Python SDK: subscribe_presence answers, PresenceEvents follow, and the
watch outlives a reconnect (a new socket subscribes again by itself); settings come with the
hello and from the user's other devices."""

from __future__ import annotations

from parley_client import PresenceEvent, SettingsEvent
from tests.clients import Gateway, sdk
from tests.world import World


async def test_the_sdk_watches_presence_across_a_reconnect(gateway: Gateway, world: World) -> None:
    await world.open()
    async with sdk(gateway, gateway.token(world.john.id)) as (john, seen):
        [answer] = await john.subscribe_presence([world.mary.id])
        assert answer == PresenceEvent(world.mary.id, online=False, last_seen_at=None)
        async with sdk(gateway, gateway.token(world.mary.id)) as (mary, hers):
            await seen.until(lambda _: john.presence[world.mary.id].online)

            assert gateway.cut(world.john.id) == 1  # John's socket drops; the SDK reconnects
            await mary.update_settings(show_presence=False)
            await seen.until(lambda _: john.presence[world.mary.id].online is False)
            assert john.presence[world.mary.id].last_seen_at is None  # hidden, not gone
            await mary.update_settings(show_presence=True)
            await seen.until(lambda _: john.presence[world.mary.id].online)
            assert hers.of(SettingsEvent) == [
                SettingsEvent(show_presence=False),
                SettingsEvent(show_presence=True),
            ]
        await seen.until(lambda _: john.presence[world.mary.id].last_seen_at is not None)
        told = [(e.online, e.last_seen_at is None) for e in seen.of(PresenceEvent)]
        assert told[-1] == (False, False)
        await john.unsubscribe_presence([world.mary.id])
        assert john.presence == {}

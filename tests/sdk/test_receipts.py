"""Delivered receipts in the Python SDK: it confirms what reaches the app by itself (live and
by sync), one message.received for all its conversations, unless told not to; and it hands the app
each delivered receipt once, forward only."""

from __future__ import annotations

from parley_client import DeliveredEvent, ParleyClient
from tests.clients import Gateway, Recorder, sdk
from tests.world import World


async def delivered_seq(world: World, conversation_id: int) -> int:
    value: int = await world.pool.fetchval(
        "SELECT seller_delivered_seq FROM conversations WHERE id = $1", conversation_id
    )
    return value


async def test_the_sdk_confirms_what_reaches_it_and_the_sender_sees_delivered(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with (
        sdk(gateway, gateway.token(world.john.id)) as (john, johns),
        sdk(gateway, gateway.token(world.mary.id)),
    ):
        for text in ("one", "two", "three"):
            await john.send(conversation.id, text)
        await johns.until(
            lambda _: any(e.up_to_seq == 3 for e in johns.of(DeliveredEvent)), within=10
        )
        receipts = johns.of(DeliveredEvent)
        assert [r.up_to_seq for r in receipts] == sorted({r.up_to_seq for r in receipts})
        assert receipts[-1].recipient_id == world.mary.id
    assert await delivered_seq(world, conversation.id) == 3


async def test_auto_receipts_off_sends_none(gateway: Gateway, world: World) -> None:
    conversation = await world.open()
    mary = ParleyClient(gateway.server.ws_url, gateway.token(world.mary.id), auto_receipts=False)
    seen = Recorder(mary)
    try:
        async with mary, gateway.connect(world.john.id) as john:
            await john.send_message(conversation.id, "hello")
            await seen.until(lambda events: any(getattr(e, "message", None) for e in events))
            # The receipt would have been scheduled before the app got the message.
            assert mary._receipts._to_confirm == {}
            assert mary._receipts._timer is None
    finally:
        seen.stop()
    assert await delivered_seq(world, conversation.id) == 0

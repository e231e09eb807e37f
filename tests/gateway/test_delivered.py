"""Delivered receipts (the second tick) over real sockets: `message.received` moves the
recipient's delivered watermark forward only, the sender's devices get `message.delivered`,
and a read implies delivered, told before the read."""

from __future__ import annotations

from parley import store
from tests.clients import Gateway
from tests.test_scale_out import connect, gateways
from tests.world import World


async def test_delivered_reaches_the_sender_before_read_across_gateways(
    database_url: str, redis_url: str, channel_prefix: str, world: World
) -> None:
    conversation = await world.open()
    async with (
        gateways(2, database_url, redis_url, channel_prefix) as (a, b),
        connect(a, world.john.id) as john,
        connect(b, world.mary.id) as mary,
    ):
        for text in ("one", "two", "three"):
            await john.send_message(conversation.id, text)
        await mary.event("message.new", within=5)
        receipt = await mary.ok("message.received", conversation_id=conversation.id, up_to_seq=2)
        assert (receipt["up_to_seq"], receipt["advanced"]) == (2, True)
        delivered = await john.event("message.delivered")
        assert (delivered["recipient_id"], delivered["up_to_seq"]) == (world.mary.id, 2)
        assert delivered["delivered_at"] == receipt["delivered_at"]

        # Behind the watermark: nothing moves, nobody is told.
        behind = await mary.ok("message.received", conversation_id=conversation.id, up_to_seq=1)
        assert (behind["up_to_seq"], behind["advanced"]) == (2, False)

        # A read past it implies delivered: the sender hears delivered, then read.
        await mary.ok("conversation.read", conversation_id=conversation.id, up_to_seq=3)
        kinds: list[tuple[str, int]] = []
        while len(kinds) < 2:
            frame = await john.wait_for(
                lambda f: f.get("type") in ("message.delivered", "message.read")
            )
            kinds.append((frame["type"], frame["up_to_seq"]))
        assert kinds == [("message.delivered", 3), ("message.read", 3)]
        view = await john.ok("conversation.get", conversation_id=conversation.id)
        assert view["conversation"]["peer_delivered_seq"] == 3


async def test_received_stops_at_the_last_message_and_keeps_outsiders_out(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "hi")
    async with gateway.connect(world.mary.id) as mary, gateway.connect(world.eve.id) as eve:
        receipt = await mary.ok("message.received", conversation_id=conversation.id, up_to_seq=99)
        assert receipt["up_to_seq"] == 1
        async with gateway.connect(world.john.id) as john:
            synced = await john.ok("sync", conversations={str(conversation.id): 0})
            [caught_up] = synced["conversations"]
            assert caught_up["conversation"]["peer_delivered_seq"] == 1
        refused = await eve.error("message.received", conversation_id=conversation.id, up_to_seq=1)
        assert refused["code"] == "not_found"
    row = await world.pool.fetchrow(
        "SELECT seller_delivered_seq, buyer_delivered_seq FROM conversations WHERE id = $1",
        conversation.id,
    )
    assert row is not None
    assert tuple(row) == (1, 0)


async def test_one_frame_confirms_several_conversations(gateway: Gateway, world: World) -> None:
    """The batched form: one statement for every conversation in it, one message.delivered
    for each watermark that moved, and conversations of others ignored, not written."""
    first = await world.open()
    phone, _ = await store.upsert_product(world.pool, 7011, world.mary.id, "Pixel 8")
    second, _ = await store.open_conversation(world.pool, world.john.id, phone.id)
    elsewhere, _ = await store.open_conversation(world.pool, world.eve.id, world.iphone.id)
    for conversation in (first, second, first, elsewhere):
        buyer = world.eve if conversation is elsewhere else world.john
        await world.send(conversation.id, buyer)
    async with gateway.connect(world.mary.id) as mary, gateway.connect(world.john.id) as john:
        ups = {str(first.id): 2, str(second.id): 1, str(elsewhere.id): 1}
        reply = await mary.ok("message.received", conversations=ups)
        moved = {(r["conversation_id"], r["up_to_seq"]) for r in reply["receipts"]}
        assert moved == {(first.id, 2), (second.id, 1), (elsewhere.id, 1)}
        told = {
            (frame["conversation_id"], frame["up_to_seq"])
            for frame in [await john.event("message.delivered") for _ in range(2)]
        }
        assert told == {(first.id, 2), (second.id, 1)}
        again = await mary.ok("message.received", conversations={str(first.id): 1})
        assert again == {"receipts": []}  # behind the watermark: nothing moves

        async with gateway.connect(world.eve.id) as eve:
            ignored = await eve.ok("message.received", conversations={str(first.id): 2})
            assert ignored == {"receipts": []}
            for fields in (
                {},
                {"conversation_id": first.id},
                {"conversation_id": first.id, "up_to_seq": 1, "conversations": ups},
                {"conversations": {str(n): 1 for n in range(1, 102)}},
            ):
                refused = await eve.error("message.received", **fields)
                assert refused["code"] == "invalid_frame", fields
    assert (
        await world.pool.fetchval(
            "SELECT buyer_delivered_seq FROM conversations WHERE id = $1", first.id
        )
        == 0
    )

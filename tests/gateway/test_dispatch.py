"""Every request end to end, from frame to use case and back: real uvicorn, real WebSocket
clients, real Postgres."""

from __future__ import annotations

import asyncio
from typing import Any

from parley import protocol, store
from parley.gateway.dispatch import ADAPTERS
from tests.clients import Gateway
from tests.conftest import gateway_settings, running_gateway
from tests.world import World, table_snapshot


async def test_john_asks_mary_about_her_phone_on_every_device(
    gateway: Gateway, world: World
) -> None:
    john, mary = world.john.id, world.mary.id
    async with (
        gateway.connect(john) as john_phone,
        gateway.connect(john) as john_laptop,
        gateway.connect(mary) as mary_phone,
        gateway.connect(mary) as mary_tablet,
        gateway.connect(world.eve.id) as eve,
    ):
        assert mary_phone.user["unread_total"] == 0
        opened = await john_phone.ok("conversation.open", product_id=world.iphone.id)
        conversation = opened["conversation"]
        assert (conversation["buyer_id"], conversation["seller_id"]) == (john, mary)

        sent = await john_phone.ok(
            "message.send",
            conversation_id=conversation["id"],
            client_msg_id="c1",
            message_type="text",
            content="Is this still available?",
            metadata={},
        )
        message = sent["message"]
        assert (message["seq"], message["sender_id"], message["recipient_id"]) == (1, john, mary)

        for device in (mary_phone, mary_tablet, john_laptop):
            new = await device.event("message.new")
            assert new["message"] == message
        for device in (mary_phone, mary_tablet):
            unread = await device.event("unread")
            assert unread == {
                "type": "unread",
                "total": 1,
                "conversation_id": conversation["id"],
                "count": 1,
                "version": 1,
            }

        receipt = await mary_tablet.ok(
            "conversation.read", conversation_id=conversation["id"], up_to_seq=1
        )
        assert receipt["advanced"] is True
        read = await john_phone.event("message.read")
        assert (read["reader_id"], read["up_to_seq"]) == (mary, 1)
        assert read["read_at"] == receipt["read_at"]
        await john_laptop.event("message.read", reader_id=mary)
        for device in (mary_phone, mary_tablet):
            await device.event("unread", total=0, count=0)

        # The sending socket got its reply, not a copy of the message.
        await gateway.barrier(john_phone, john)
        assert john_phone.pending("message.new") == []
        # Eve, connected all along, heard nothing of it.
        await gateway.barrier(eve, world.eve.id)
        assert eve.pending() == []


async def test_typing_reaches_the_other_side_only_and_is_cleared_by_sending(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with (
        gateway.connect(world.john.id) as john,
        gateway.connect(world.john.id) as john_other,
        gateway.connect(world.mary.id) as mary,
        gateway.connect(world.eve.id) as eve,
    ):
        await john.send_raw(
            f'{{"type":"typing","conversation_id":{conversation.id},"state":"start"}}'
        )
        typing = await mary.event("typing", state="start")
        assert typing["user_id"] == world.john.id
        assert typing["expires_in_ms"] == 6000

        await john.ok(
            "message.send", conversation_id=conversation.id, client_msg_id="t1", content="hi"
        )
        await mary.event("message.new")
        stop = await mary.event("typing", state="stop")
        assert stop["user_id"] == world.john.id

        for other in (john, john_other):
            await gateway.barrier(other, world.john.id)
            assert other.pending("typing") == []
        await gateway.barrier(eve, world.eve.id)
        assert eve.pending() == []


async def test_typing_starts_are_throttled_and_a_stop_goes_through(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with gateway.connect(world.john.id) as john, gateway.connect(world.mary.id) as mary:
        for _ in range(5):
            await john.ok("typing", conversation_id=conversation.id, state="start")
        await john.ok("typing", conversation_id=conversation.id, state="stop")
        await gateway.barrier(mary, world.mary.id)
        states = [frame["state"] for frame in mary.pending("typing")]
        assert states == ["start", "stop"], "one start forwarded of five, then the stop"


async def test_typing_expires_on_its_own(database_url: str, world: World) -> None:
    settings = gateway_settings(database_url, typing_expiry_seconds=0.3)
    conversation = await world.open()
    async with (
        running_gateway(settings) as gateway,
        gateway.connect(world.john.id) as john,
        gateway.connect(world.mary.id) as mary,
    ):
        started = asyncio.get_running_loop().time()
        await john.ok("typing", conversation_id=conversation.id, state="start")
        start = await mary.event("typing", state="start")
        assert start["expires_in_ms"] == 300
        await mary.event("typing", state="stop")
        assert asyncio.get_running_loop().time() - started >= 0.3


async def test_typing_is_cleared_when_the_typist_disconnects(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with gateway.connect(world.mary.id) as mary:
        async with gateway.connect(world.john.id) as john:
            await john.ok("typing", conversation_id=conversation.id, state="start")
            await mary.event("typing", state="start")
        await mary.event("typing", state="stop", user_id=world.john.id)


async def test_the_inbox_and_history_over_the_socket(gateway: Gateway, world: World) -> None:
    conversation = await world.open()
    for n in range(3):
        await world.send(conversation.id, world.john, f"m{n}")
    async with gateway.connect(world.mary.id) as mary:
        page = await mary.ok("conversation.list", limit=10)
        [listed] = page["conversations"]
        assert listed["id"] == conversation.id
        assert (listed["unread_count"], listed["role"]) == (3, "seller")
        assert listed["peer"]["display_name"] == "John"
        history = await mary.ok("message.history", conversation_id=conversation.id, limit=2)
        assert [m["content"] for m in history["messages"]] == ["m1", "m2"]
        got = await mary.ok("conversation.get", conversation_id=conversation.id)
        assert got["conversation"]["last_message_text"] == "m2"


async def test_delete_and_archive_reach_my_other_devices_only(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "hello")
    async with (
        gateway.connect(world.mary.id) as mary,
        gateway.connect(world.mary.id) as mary_other,
        gateway.connect(world.john.id) as john,
    ):
        deleted = await mary.ok("conversation.delete", conversation_id=conversation.id)
        assert deleted["conversation"]["deleted"] is True
        updated = await mary_other.event("conversation.updated")
        assert updated["conversation"]["deleted"] is True
        for device in (mary, mary_other):
            await device.event("unread", total=0, count=0)

        archived = await mary.ok("conversation.archive", conversation_id=conversation.id)
        assert archived["conversation"]["archived"] is True
        await mary_other.event("conversation.updated")
        await mary.ok("conversation.unarchive", conversation_id=conversation.id)
        await mary_other.event("conversation.updated")

        await gateway.barrier(john, world.john.id)
        assert john.pending() == [], "the other side learns nothing of my delete or archive"
        assert await store.unread_total(world.pool, world.mary.id) == 0


async def test_sync_returns_exactly_what_was_missed(gateway: Gateway, world: World) -> None:
    conversation = await world.open()
    for n in range(1, 6):
        await world.send(conversation.id, world.john, f"m{n}")
    await store.mark_read(world.pool, conversation.id, world.mary.id, 2)
    async with gateway.connect(world.mary.id) as mary:
        synced = await mary.ok("sync", conversations={str(conversation.id): 3, "999999": 0})
    [entry] = synced["conversations"]
    assert [m["seq"] for m in entry["messages"]] == [4, 5]
    assert entry["has_more"] is False
    assert (entry["conversation"]["last_read_seq"], entry["conversation"]["unread_count"]) == (
        2,
        3,
    )
    assert synced["not_found"] == [999999]
    assert synced["unread_total"] == 3


REQUESTS_ON_A_CONVERSATION: dict[str, dict[str, Any]] = {
    "conversation.get": {},
    "message.send": {"client_msg_id": "sneak", "content": "let me in"},
    "message.history": {},
    "conversation.read": {"up_to_seq": 1},
    "conversation.delete": {},
    "conversation.archive": {},
    "conversation.unarchive": {},
    "typing": {"state": "start"},
}


async def test_an_outsider_cannot_tell_a_conversation_from_a_missing_one(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "private")
    missing = conversation.id + 1000
    before = await table_snapshot(world.pool)
    async with (
        gateway.connect(world.eve.id) as eve,
        gateway.connect(world.john.id) as john,
        gateway.connect(world.mary.id) as mary,
    ):
        for frame_type, fields in REQUESTS_ON_A_CONVERSATION.items():
            real = await eve.error(frame_type, conversation_id=conversation.id, **fields)
            fake = await eve.error(frame_type, conversation_id=missing, **fields)
            assert real["code"] == fake["code"] == "not_found", frame_type
            assert real["message"].replace(str(conversation.id), "N") == fake["message"].replace(
                str(missing), "N"
            )
        synced = await eve.ok("sync", conversations={str(conversation.id): 0, str(missing): 0})
        assert synced["conversations"] == []
        assert sorted(synced["not_found"]) == sorted([conversation.id, missing])
        assert (await eve.ok("conversation.list"))["conversations"] == []

        # Meanwhile the participants talk; Eve hears none of it.
        await john.ok(
            "message.send", conversation_id=conversation.id, client_msg_id="p2", content="hi"
        )
        await john.ok("typing", conversation_id=conversation.id, state="start")
        await mary.ok("conversation.read", conversation_id=conversation.id, up_to_seq=2)
        await john.event("message.read")
        await gateway.barrier(eve, world.eve.id)
        assert eve.pending() == []
    after = await table_snapshot(world.pool)
    assert after["counts"]["messages"] == before["counts"]["messages"] + 1  # John's, not Eve's


def test_every_client_frame_type_has_an_adapter_to_a_use_case() -> None:
    assert set(ADAPTERS) == set(protocol.CLIENT_FRAME_TYPES.values())

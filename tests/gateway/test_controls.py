"""Block and mute over real sockets: a block stops messages and new conversations both ways
and hides the blocker's conversations; a mute keeps the conversation's own count but takes
it out of the pushed total, and hello, sync and every unread event agree."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from parley import store
from tests.clients import Gateway
from tests.conftest import gateway_settings, running_gateway
from tests.world import World


async def test_a_block_stops_messages_both_ways_and_new_conversations(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    lamp, _ = await store.upsert_product(world.pool, 7030, 702, "Lamp", currency="EUR")
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        await john.send_message(conversation.id, "hello")
        reply = await mary.ok("user.block", user_id=701)
        assert reply == {"user_id": 701, "blocked": True}
        for client, text in ((john, "are you there?"), (mary, "no")):
            refused = await client.error(
                "message.send", conversation_id=conversation.id, client_msg_id=text, content=text
            )
            assert refused["code"] == "blocked"
        for product in (world.iphone.id, lamp.id):
            assert (await john.error("conversation.open", product_id=product))["code"] == "blocked"
        made = await john.error(
            "message.send",
            conversation_id=conversation.id,
            client_msg_id="offer",
            message_type="offer",
            metadata={"amount_cents": 100, "currency": "EUR"},
        )
        assert made["code"] == "blocked"
        # The blocker's inbox hides it; the blocked side's does not, and is told nothing.
        assert (await mary.ok("conversation.list"))["conversations"] == []
        [shown] = (await john.ok("conversation.list"))["conversations"]
        assert (shown["id"], shown["blocked"]) == (conversation.id, False)
        assert john.pending("conversation.updated") == []
        await mary.ok("user.unblock", user_id=701)
        [back] = (await mary.ok("conversation.list"))["conversations"]
        assert back["id"] == conversation.id
        await john.send_message(conversation.id, "hello again")
        await john.ok("conversation.open", product_id=lamp.id)
    count = await world.pool.fetchval("SELECT count(*) FROM messages")
    assert count == 2
    assert await store.recount_counters(world.pool) == []


async def test_a_blocker_sends_no_typing_and_receives_none(gateway: Gateway, world: World) -> None:
    conversation = await world.open()
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        await mary.ok("user.block", user_id=701)
        await mary.ok("typing", conversation_id=conversation.id, state="start")
        await john.ok("typing", conversation_id=conversation.id, state="start")
        await mary.ok("user.unblock", user_id=701)
        await mary.ok("typing", conversation_id=conversation.id, state="start")
        typing = await john.event("typing")
        assert (typing["user_id"], typing["state"]) == (702, "start")
        assert (john.pending("typing"), mary.pending("typing")) == ([], [])


async def test_a_blockers_unread_leaves_the_total_and_comes_back_on_unblock(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        await john.send_message(conversation.id, "one")
        await john.send_message(conversation.id, "two")
        before = await mary.event("unread", count=2)
        await mary.ok("user.block", user_id=701)
        hidden = await mary.event("unread", total=0)
        assert (hidden["count"], hidden["total"]) == (2, 0)
        assert hidden["version"] > before["version"]
        updated = (await mary.event("conversation.updated"))["conversation"]
        assert updated["blocked"] is True
        async with gateway.connect(702) as laptop:
            assert laptop.user["unread_total"] == 0
        await mary.ok("user.unblock", user_id=701)
        shown = await mary.event("unread", version=hidden["version"] + 1)
        assert (shown["count"], shown["total"]) == (2, 2)
    assert await store.recount_counters(world.pool) == []


async def test_bad_blocks_are_refused(gateway: Gateway, world: World) -> None:
    async with gateway.connect(701) as john:
        assert (await john.error("user.block", user_id=701))["code"] == "invalid_argument"
        assert (await john.error("user.block", user_id=999_999))["code"] == "not_found"
        assert (await john.error("user.block", user_id=0))["code"] == "invalid_frame"
        await john.ok("user.block", user_id=703)
        await john.ok("user.block", user_id=703)  # again: nothing changes
        assert [user.id for user in await store.blocked_users(world.pool, 701)] == [703]
        await john.ok("user.block", user_id=702)
        listed = await john.ok("user.blocks")
        assert listed == {
            "users": [
                {"id": 702, "display_name": "Mary", "avatar_url": None},
                {"id": 703, "display_name": "Eve", "avatar_url": None},
            ]
        }
        await john.ok("user.unblock", user_id=702)
        assert [user["id"] for user in (await john.ok("user.blocks"))["users"]] == [703]


async def test_a_muted_conversation_counts_but_not_in_the_total_everywhere(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with (
        gateway.connect(701) as john,
        gateway.connect(702) as mary,
        gateway.connect(702) as tablet,
    ):
        await john.send_message(conversation.id, "one")
        await mary.event("unread", count=1)
        muted = (await mary.ok("conversation.mute", conversation_id=conversation.id))[
            "conversation"
        ]
        assert muted["muted_until"] is not None
        assert muted["unread_count"] == 1
        assert (await tablet.event("conversation.updated"))["conversation"]["muted_until"]
        for device in (mary, tablet):
            badge = await device.event("unread", total=0)
            assert badge["count"] == 1
        await john.send_message(conversation.id, "two")
        for device in (mary, tablet):
            badge = await device.event("unread", count=2)
            assert badge["total"] == 0
        async with gateway.connect(702) as phone:
            assert phone.user["unread_total"] == 0
            synced = await phone.ok("sync", conversations={str(conversation.id): 0})
            assert synced["unread_total"] == 0
            assert synced["conversations"][0]["conversation"]["unread_count"] == 2
        await mary.ok("conversation.unmute", conversation_id=conversation.id)
        badge = await mary.event("unread", total=2)
        assert badge["count"] == 2
    assert await store.recount_counters(world.pool) == []


async def test_a_mute_ends_by_itself_with_a_newer_badge(database_url: str, world: World) -> None:
    settings = dataclasses.replace(gateway_settings(database_url), mute_sweep_seconds=0.05)
    conversation = await world.open()
    async with running_gateway(settings) as gateway, gateway.connect(702) as mary:
        await world.send(conversation.id, world.john, "one")
        until = datetime.now(UTC) + timedelta(milliseconds=300)
        await mary.ok("conversation.mute", conversation_id=conversation.id, until=until.isoformat())
        muted = await mary.event("unread", total=0)
        back = await mary.event("unread", total=1, within=5)
        assert back["version"] > muted["version"]
        view = (await mary.ok("conversation.get", conversation_id=conversation.id))["conversation"]
        assert view["muted_until"] is None


@pytest.mark.parametrize("until", ["2020-01-01T00:00:00Z", "tomorrow", "2030-01-01T00:00:00"])
async def test_bad_mutes_are_refused(gateway: Gateway, world: World, until: str) -> None:
    conversation = await world.open()
    async with gateway.connect(701) as john, gateway.connect(703) as eve:
        refused = await john.error(
            "conversation.mute", conversation_id=conversation.id, until=until
        )
        assert refused["code"] in ("invalid_argument", "invalid_frame")
        hidden = await eve.error("conversation.mute", conversation_id=conversation.id)
        assert hidden["code"] == "not_found"


async def test_blocks_racing_sends_leave_no_message_after_the_block(
    roomy_gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with roomy_gateway.connect(701) as john, roomy_gateway.connect(702) as mary:
        for round_ in range(5):
            sends = [
                john.request(
                    "message.send",
                    conversation_id=conversation.id,
                    client_msg_id=f"r{round_}-{n}",
                    content="hi",
                )
                for n in range(10)
            ]
            results = await asyncio.gather(mary.request("user.block", user_id=701), *sends)
            assert results[0]["type"] == "ok"
            codes = [r["type"] if r["type"] == "ok" else r["code"] for r in results[1:]]
            assert set(codes) <= {"ok", "blocked"}
            # A refused send stored nothing, and nothing passes once the block is in.
            stored = await world.pool.fetchval(
                "SELECT count(*) FROM messages WHERE client_msg_id LIKE $1", f"r{round_}-%"
            )
            assert stored == codes.count("ok")
            late = await john.error(
                "message.send", conversation_id=conversation.id, client_msg_id="x", content="x"
            )
            assert late["code"] == "blocked"
            await mary.ok("user.unblock", user_id=701)
    assert await store.recount_counters(world.pool) == []


async def test_a_retry_of_a_message_stored_before_the_block_is_still_a_replay(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        fields = {"conversation_id": conversation.id, "client_msg_id": "c-1", "content": "hi"}
        first = await john.ok("message.send", **fields)
        offer = {
            "conversation_id": conversation.id,
            "client_msg_id": "c-2",
            "message_type": "offer",
            "metadata": {"amount_cents": 100, "currency": "EUR"},
        }
        made = await john.ok("message.send", **offer)
        await mary.ok("user.block", user_id=701)
        again = await john.ok("message.send", **fields)
        assert again == {"message": first["message"], "replayed": True}
        offered_again = await john.ok("message.send", **offer)
        assert offered_again["replayed"] is True
        assert offered_again["message"]["id"] == made["message"]["id"]
        refused = await john.error("message.send", **{**fields, "client_msg_id": "c-3"})
        assert refused["code"] == "blocked"

"""Edit and unsend over real sockets: only the sender, only within the window, every device
follows, the preview and the badges stay right, and every earlier version is kept."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest

from parley import store
from tests.clients import Gateway
from tests.conftest import gateway_settings, running_gateway
from tests.world import World


async def preview(pool: asyncpg.Pool, conversation_id: int) -> tuple[object, ...]:
    row = await pool.fetchrow(
        "SELECT last_message_text, last_message_type, last_message_sender_id, last_message_at"
        " FROM conversations WHERE id = $1",
        conversation_id,
    )
    assert row is not None
    return tuple(row)


async def test_the_sender_edits_and_every_device_of_both_sides_follows(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with (
        gateway.connect(701) as john_phone,
        gateway.connect(701) as john_laptop,
        gateway.connect(702) as mary,
    ):
        first = await john_phone.send_message(conversation.id, "Is this still avialable?")
        await mary.event("message.new")
        edited = (
            await john_phone.ok(
                "message.edit", message_id=first["id"], content="Is this still available?"
            )
        )["message"]
        assert edited["content"] == "Is this still available?"
        assert edited["edited_at"] is not None
        assert (edited["id"], edited["seq"]) == (first["id"], first["seq"])
        for device in (john_laptop, mary):
            updated = await device.event("message.updated")
            assert updated["message"] == edited
        assert john_phone.pending("message.updated") == []
        (text, *_), at_before = await preview(world.pool, conversation.id), first["created_at"]
        assert text == "Is this still available?"
        [(change, old, _)] = await store.message_versions(world.pool, first["id"])
        assert (change, old) == ("edit", "Is this still avialable?")
        history = await mary.ok("message.history", conversation_id=conversation.id)
        assert [m["content"] for m in history["messages"]] == ["Is this still available?"]
        assert at_before == first["created_at"]
    assert await store.recount_counters(world.pool) == []


async def test_only_the_sender_may_change_a_message_and_outsiders_learn_nothing(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        message = await john.send_message(conversation.id, "hello")
        async with gateway.connect(703) as eve:
            for frame, fields in (
                ("message.edit", {"content": "mine now"}),
                ("message.unsend", {}),
            ):
                refused = await mary.error(frame, message_id=message["id"], **fields)
                assert refused["code"] == "not_your_message"
                hidden = await eve.error(frame, message_id=message["id"], **fields)
                unknown = await eve.error(frame, message_id=10**12, **fields)
                assert hidden["code"] == unknown["code"] == "not_found"
                assert hidden["message"].replace(str(message["id"]), "N") == unknown[
                    "message"
                ].replace(str(10**12), "N")
        assert await store.message_versions(world.pool, message["id"]) == []
        stored = await world.pool.fetchrow("SELECT content, edited_at FROM messages")
        assert stored is not None
        assert tuple(stored) == ("hello", None)


async def test_nothing_changes_after_the_window(database_url: str, world: World) -> None:
    settings = dataclasses.replace(
        gateway_settings(database_url),
        limits=dataclasses.replace(gateway_settings(database_url).limits, edit_window_seconds=0),
    )
    conversation = await world.open()
    async with running_gateway(settings) as gateway, gateway.connect(701) as john:
        message = await john.send_message(conversation.id, "hello")
        for frame, fields in (("message.edit", {"content": "hi"}), ("message.unsend", {})):
            refused = await john.error(frame, message_id=message["id"], **fields)
            assert refused["code"] == "edit_window_closed"
            assert refused.get("retryable", False) is False
        assert await store.message_versions(world.pool, message["id"]) == []


async def test_what_cannot_change_is_refused_with_its_reason(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with gateway.connect(701) as john:
        offer = await john.send_message(
            conversation.id,
            "",
            message_type="offer",
            metadata={"amount_cents": 40000, "currency": "EUR"},
        )
        assert (await john.error("message.edit", message_id=offer["id"], content="x"))[
            "code"
        ] == "not_editable"
        text = await john.send_message(conversation.id, "hello")
        refusals = {
            "": "empty_content",
            "\u200b": "empty_content",
            "x" * 4001: "content_too_long",
            "a\x00": "invalid_text",
        }
        for content, code in refusals.items():
            refused = await john.error("message.edit", message_id=text["id"], content=content)
            assert refused["code"] == code, content[:5]
        bad = await john.error("message.edit", message_id=0, content="x")
        assert bad["code"] == "invalid_frame"
        unsent = (await john.ok("message.unsend", message_id=text["id"]))["message"]
        assert (unsent["content"], unsent["metadata"]) == ("", {})
        assert unsent["unsent_at"] is not None
        for frame, fields in (("message.unsend", {}), ("message.edit", {"content": "back"})):
            refused = await john.error(frame, message_id=text["id"], **fields)
            assert refused["code"] == "not_editable"
    assert await store.recount_counters(world.pool) == []


async def test_unsending_an_unread_message_lowers_the_badge_on_every_device(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with (
        gateway.connect(701) as john,
        gateway.connect(702) as mary_phone,
        gateway.connect(702) as mary_tablet,
    ):
        first = await john.send_message(conversation.id, "Is this still available?")
        second = await john.send_message(conversation.id, "I can pay 400 in cash")
        versions = []
        for device in (mary_phone, mary_tablet):
            await device.event("unread", total=1, count=1)
            versions.append((await device.event("unread", total=2, count=2))["version"])
        before = await preview(world.pool, conversation.id)
        unsent = (await john.ok("message.unsend", message_id=second["id"]))["message"]
        for device, seen in zip((mary_phone, mary_tablet), versions, strict=True):
            badge = await device.event("unread", conversation_id=conversation.id)
            assert badge["version"] > seen
            assert (badge["total"], badge["count"]) == (1, 1)
            updated = await device.event("message.updated")
            assert updated["message"] == unsent
            # Nowhere in the event (a time's digits may hold "400", so the words are looked for).
            assert "pay 400" not in str(updated)
        text, kind, sender, at = await preview(world.pool, conversation.id)
        assert (text, kind, sender) == (first["content"], "text", 701)
        assert at == before[3], "the inbox order does not move"
        [(change, old, _)] = await store.message_versions(world.pool, second["id"])
        assert (change, old) == ("unsend", "I can pay 400 in cash")
        # Reading past it later counts nothing twice.
        read = await mary_phone.ok("conversation.read", conversation_id=conversation.id,
                                   up_to_seq=2)  # fmt: skip
        assert (read["unread_count"], read["messages_marked"]) == (0, 1)
        history = await mary_tablet.ok("message.history", conversation_id=conversation.id)
        assert [(m["seq"], m["content"]) for m in history["messages"]] == [
            (1, first["content"]),
            (2, ""),
        ]
    assert await store.recount_counters(world.pool) == []


async def test_unsending_the_only_message_empties_the_preview(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with gateway.connect(701) as john:
        only = await john.send_message(conversation.id, "wrong chat, sorry")
        await john.ok("message.unsend", message_id=only["id"])
        listed = await john.ok("conversation.list")
    [row] = listed["conversations"]
    assert (row["last_message_text"], row["last_message_type"]) == (None, None)
    assert await store.recount_counters(world.pool) == []


async def test_the_history_of_versions_cannot_be_rewritten(gateway: Gateway, world: World) -> None:
    conversation = await world.open()
    async with gateway.connect(701) as john:
        message = await john.send_message(conversation.id, "first")
        await john.ok("message.edit", message_id=message["id"], content="second")
    for statement in ("UPDATE message_versions SET content = 'forged'",
                      "DELETE FROM message_versions"):  # fmt: skip
        with pytest.raises(asyncpg.RestrictViolationError):
            await world.pool.execute(statement)
    assert [v[1] for v in await store.message_versions(world.pool, message["id"])] == ["first"]


async def test_concurrent_unsends_reads_and_sends_leave_no_drift(world: World) -> None:
    conversation = await world.open()
    sent = [(await world.send(conversation.id, world.john, f"m{n}")).message for n in range(40)]

    async def unsend(message_id: int) -> None:
        await store.unsend_message(world.pool, 701, message_id, gateway_settings("").limits)

    async def read(up_to: int) -> None:
        await store.mark_read(world.pool, conversation.id, 702, up_to)

    async def reply(n: int) -> None:
        await world.send(conversation.id, world.mary, f"r{n}")

    await asyncio.gather(
        *(unsend(message.id) for message in sent[::3]),
        *(read(up_to) for up_to in range(5, 45, 5)),
        *(reply(n) for n in range(10)),
    )
    assert await store.recount_counters(world.pool) == []
    badge = await world.pool.fetchval("SELECT total FROM badges WHERE user_id = 702")
    unread = await world.pool.fetchval(
        "SELECT seller_unread_count FROM conversations WHERE id = $1", conversation.id
    )
    assert badge == unread


async def test_an_edit_ends_the_editors_typing_as_a_send_does(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        sent = await john.send_message(conversation.id, "Is it stil available?")
        await john.ok("typing", conversation_id=conversation.id, state="start")
        await mary.event("typing", state="start")
        await john.ok("message.edit", message_id=sent["id"], content="Is it still available?")
        stop = await mary.event("typing", state="stop", within=2)  # not its 6 s expiry
        assert stop["user_id"] == 701
        await mary.event("message.updated")

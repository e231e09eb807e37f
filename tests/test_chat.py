"""The use cases without a socket: each commits, and publishes exactly the expected events to
exactly the expected users (on the memory broker, through a real hub, to recording devices)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
import pytest

from parley import store
from parley.config import Limits
from parley.errors import ClientMsgIdConflict, EmptyContent, NotFound, Unavailable
from parley.fanout.broker import MemoryBroker
from parley.fanout.events import Events
from parley.fanout.hub import Hub
from parley.models import Conversation
from parley.usecases.chat import Chat
from tests.world import World, message_row, table_snapshot

Frame = dict[str, Any]


@dataclass(eq=False)
class Device:
    """A socket as the hub sees one: it records what it is pushed."""

    user_id: int
    connection_id: str
    frames: list[Frame] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, frame: str) -> None:
        self.frames.append(json.loads(frame))
        self.arrived.set()

    def close_soon(self, code: int, reason: str) -> None:
        raise AssertionError(f"closed with {code}: {reason}")


class Harness:
    """Chat on a memory broker, with John's and Mary's phone and laptop, and Eve's phone."""

    def __init__(self, pool: asyncpg.Pool, world: World) -> None:
        broker = MemoryBroker()
        self.hub = Hub(broker)
        self.events = Events(broker)
        self.chat = Chat(pool, self.events, Limits(typing_interval_seconds=0))
        self.hub.on_note = self.chat.typing_tracker.on_note
        self.devices = {
            f"{name}-{kind}": Device(user.id, f"{name}-{kind}")
            for name, user in (("john", world.john), ("mary", world.mary), ("eve", world.eve))
            for kind in (("phone", "laptop") if name != "eve" else ("phone",))
        }
        self._markers = itertools.count(1)

    async def start(self) -> None:
        await self.hub.start()
        for device in self.devices.values():
            await self.hub.add(device, limit=10)

    async def published(self) -> dict[str, list[Frame]]:
        """What each device was pushed since the last call, once everything committed so far
        has been published and delivered: a marker published after it arrives after it."""
        await self.chat.idle()
        marker = next(self._markers)
        users = {device.user_id for device in self.devices.values()}
        await self.events.publish(users, json.dumps({"type": "marker", "n": marker}).encode())
        seen: dict[str, list[Frame]] = {}
        async with asyncio.timeout(5):
            for name, device in self.devices.items():
                while not device.frames or device.frames[-1] != {"type": "marker", "n": marker}:
                    device.arrived.clear()
                    await device.arrived.wait()
                seen[name], device.frames = device.frames[:-1], []
        return {name: frames for name, frames in seen.items() if frames}


@pytest.fixture
async def harness(pool: asyncpg.Pool, world: World) -> AsyncIterator[Harness]:
    harness = Harness(pool, world)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.hub.stop()


@pytest.fixture
async def conversation(harness: Harness, world: World) -> Conversation:
    opened, created = await harness.chat.open(world.john.id, world.iphone.id)
    assert created
    assert await harness.published() == {}
    return opened


def without_type(frame: Frame) -> Frame:
    return {key: value for key, value in frame.items() if key != "type"}


async def test_a_send_commits_then_tells_both_sides_but_the_sending_device(
    harness: Harness, world: World, conversation: Conversation
) -> None:
    sent = await harness.chat.send(
        world.john.id,
        conversation.id,
        client_msg_id="c1",
        content="Is this still available?",
        connection_id="john-phone",
    )
    assert not sent.replayed
    stored = await message_row(world.pool, sent.message.id)
    assert (stored["seq"], stored["content"]) == (1, "Is this still available?")

    published = await harness.published()
    new = {"type": "message.new", "message": msgspec.json.decode(msgspec.json.encode(sent.message))}
    badge = {
        "type": "unread",
        "total": 1,
        "conversation_id": conversation.id,
        "count": 1,
        "version": 1,
    }
    assert published == {
        "john-laptop": [new],
        "mary-phone": [new, badge],
        "mary-laptop": [new, badge],
    }


async def test_a_replayed_send_delivers_again_but_badges_nobody(
    harness: Harness, world: World, conversation: Conversation
) -> None:
    first = await harness.chat.send(
        world.john.id, conversation.id, client_msg_id="c1", content="hi"
    )
    await harness.published()
    again = await harness.chat.send(
        world.john.id, conversation.id, client_msg_id="c1", content="hi"
    )
    assert again.replayed
    assert again.message == first.message
    published = await harness.published()
    assert {name: [f["type"] for f in frames] for name, frames in published.items()} == {
        "john-phone": ["message.new"],
        "john-laptop": ["message.new"],
        "mary-phone": ["message.new"],
        "mary-laptop": ["message.new"],
    }


async def test_refused_sends_write_nothing_and_tell_nobody(
    harness: Harness, world: World, conversation: Conversation
) -> None:
    await harness.chat.send(world.john.id, conversation.id, client_msg_id="c1", content="hi")
    await harness.published()
    before = await table_snapshot(world.pool)
    with pytest.raises(NotFound):
        await harness.chat.send(world.eve.id, conversation.id, client_msg_id="e", content="x")
    with pytest.raises(EmptyContent):
        await harness.chat.send(world.john.id, conversation.id, client_msg_id="c2", content=" ")
    with pytest.raises(ClientMsgIdConflict):
        await harness.chat.send(world.john.id, conversation.id, client_msg_id="c1", content="x")
    assert await table_snapshot(world.pool) == before
    assert await harness.published() == {}


async def test_a_read_tells_the_peer_and_the_readers_other_devices_and_badges_all_of_hers(
    harness: Harness, world: World, conversation: Conversation
) -> None:
    await harness.chat.send(world.john.id, conversation.id, client_msg_id="c1", content="hi")
    await harness.published()
    receipt = await harness.chat.read(world.mary.id, conversation.id, 1, "mary-phone")
    assert receipt.advanced
    assert (receipt.unread_count, receipt.unread_version) == (0, 2)
    published = await harness.published()
    read = {
        "type": "message.read",
        "conversation_id": conversation.id,
        "reader_id": world.mary.id,
        "up_to_seq": 1,
        "read_at": published["john-phone"][1]["read_at"],
    }
    # A read implies delivered: John's devices hear that first, at the same moment.
    delivered = {
        "type": "message.delivered",
        "conversation_id": conversation.id,
        "recipient_id": world.mary.id,
        "up_to_seq": 1,
        "delivered_at": read["read_at"],
    }
    badge = {
        "type": "unread",
        "total": 0,
        "conversation_id": conversation.id,
        "count": 0,
        "version": 2,
    }
    assert published == {
        "john-phone": [delivered, read],
        "john-laptop": [delivered, read],
        "mary-phone": [badge],
        "mary-laptop": [read, badge],
    }
    # Reading again moves nothing, and tells nobody.
    assert not (await harness.chat.read(world.mary.id, conversation.id, up_to_seq=1)).advanced
    assert await harness.published() == {}


async def test_a_delete_reaches_the_users_other_devices_only(
    harness: Harness, world: World, conversation: Conversation
) -> None:
    await harness.chat.send(world.john.id, conversation.id, client_msg_id="c1", content="hi")
    await harness.published()
    deleted = await harness.chat.delete(world.mary.id, conversation.id, "mary-phone")
    assert deleted.deleted
    assert deleted.unread_count == 0
    published = await harness.published()
    badge = {
        "type": "unread",
        "total": 0,
        "conversation_id": conversation.id,
        "count": 0,
        "version": 2,
    }
    assert [f["type"] for f in published["mary-laptop"]] == ["conversation.updated", "unread"]
    assert published["mary-laptop"][0]["conversation"]["deleted"] is True
    assert published == {"mary-phone": [badge], "mary-laptop": published["mary-laptop"]}


@pytest.mark.parametrize("archived", [True, False])
async def test_archive_and_unarchive_reach_the_users_other_devices_only(
    harness: Harness, world: World, conversation: Conversation, archived: bool
) -> None:
    change = harness.chat.archive if archived else harness.chat.unarchive
    view = await change(world.john.id, conversation.id, "john-laptop")
    assert view.archived is archived
    published = await harness.published()
    assert list(published) == ["john-phone"]
    [updated] = published["john-phone"]
    assert (updated["type"], updated["conversation"]["archived"]) == (
        "conversation.updated",
        archived,
    )


async def test_typing_goes_to_the_peer_and_a_send_clears_it(
    harness: Harness, world: World, conversation: Conversation
) -> None:
    await harness.chat.typing(world.john.id, conversation.id, "start", "john-phone")
    started = await harness.published()
    typing = {"conversation_id": conversation.id, "user_id": world.john.id}
    expected = typing | {"type": "typing", "state": "start", "expires_in_ms": 6000}
    assert started == {"mary-phone": [expected], "mary-laptop": [expected]}

    await harness.chat.send(world.john.id, conversation.id, client_msg_id="c1", content="hi")
    published = await harness.published()
    stop = typing | {"type": "typing", "state": "stop", "expires_in_ms": 0}
    for device in ("mary-phone", "mary-laptop"):
        assert stop in published[device]
    assert all(stop not in frames for name, frames in published.items() if "mary" not in name)

    with pytest.raises(NotFound):
        await harness.chat.typing(world.eve.id, conversation.id, "start", "eve-phone")
    assert await harness.published() == {}


async def test_a_disconnect_stops_only_what_that_socket_was_typing(
    harness: Harness, world: World, conversation: Conversation
) -> None:
    await harness.chat.typing(world.john.id, conversation.id, "start", "john-phone")
    await harness.published()
    harness.chat.disconnected(world.john.id, "john-laptop")
    assert await harness.published() == {}
    harness.chat.disconnected(world.john.id, "john-phone")
    published = await harness.published()
    assert [f["state"] for f in published["mary-phone"]] == ["stop"]


async def test_selling_the_product_tells_each_side_with_their_own_view(
    harness: Harness, world: World, conversation: Conversation
) -> None:
    product, changed = await harness.chat.update_product(
        world.iphone.id,
        world.mary.id,
        world.iphone.title,
        price_cents=45000,
        currency="EUR",
        image_url=None,
        status="sold",
    )
    assert (product.status, changed) == ("sold", [conversation.id])
    published = await harness.published()
    assert set(published) == set(harness.devices) - {"eve-phone"}
    for name, frames in published.items():
        [updated] = frames
        view = updated["conversation"]
        assert updated["type"] == "conversation.updated"
        assert view["role"] == ("buyer" if name.startswith("john") else "seller")
        assert (view["status"], view["archived"]) == ("archived", True)


async def test_a_system_message_reaches_both_sides_and_badges_nobody(
    harness: Harness, world: World, conversation: Conversation
) -> None:
    sent = await harness.chat.post_system_message(
        conversation.id, client_msg_id="sold", content="This item was sold.", metadata={}
    )
    assert sent.message.sender_id is None
    published = await harness.published()
    assert set(published) == set(harness.devices) - {"eve-phone"}
    assert all([f["type"] for f in frames] == ["message.new"] for frames in published.values())
    assert await store.unread_total(world.pool, world.mary.id) == 0


async def test_reads_of_state_publish_nothing(
    harness: Harness, world: World, conversation: Conversation
) -> None:
    await harness.chat.send(world.john.id, conversation.id, client_msg_id="c1", content="hi")
    await harness.published()
    user, total, version, settings = await harness.chat.connect(world.mary.id)
    assert (user.id, total, version, settings.show_presence) == (world.mary.id, 1, 1, True)
    assert (await harness.chat.get(world.mary.id, conversation.id)).unread_count == 1
    page = await harness.chat.inbox(world.mary.id, None, 20, False)
    assert [c.id for c in page.conversations] == [conversation.id]
    assert len(await harness.chat.finder.history(world.mary.id, conversation.id, None, 50)) == 1
    synced = await harness.chat.sync(world.mary.id, {conversation.id: 0, 999_999: 0})
    assert [len(c.messages) for c in synced.conversations] == [1]
    assert (synced.not_found, synced.unread_total) == ([999_999], 1)
    assert await harness.published() == {}


async def test_a_database_that_cannot_be_reached_is_unavailable(
    harness: Harness, world: World, conversation: Conversation
) -> None:
    await world.pool.close()
    with pytest.raises(Unavailable) as raised:
        await harness.chat.get(world.john.id, conversation.id)
    assert raised.value.retryable
    with pytest.raises(Unavailable):
        await harness.chat.send(world.john.id, conversation.id, client_msg_id="c", content="x")

"""store/messages.py: sending (rules, idempotency, seqs, system messages) and history.

One behaviour per test, against a real Postgres."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from parley import store
from parley.config import Limits
from parley.errors import (
    ClientMsgIdConflict,
    ContentTooLong,
    EmptyContent,
    Forbidden,
    InvalidArgument,
    InvalidMetadata,
    InvalidText,
    MetadataTooLarge,
    NotFound,
    ParleyError,
    UnknownMessageType,
)
from tests.world import (
    World,
    client_msg_id,
    conversation_row,
    message_row,
    table_snapshot,
)


async def test_john_asks_mary_about_her_phone_and_she_reads_it(world: World) -> None:
    conversation = await world.open()
    assert (conversation.buyer_id, conversation.seller_id) == (world.john.id, world.mary.id)

    sent = await world.send(conversation.id, world.john, "Is this still available?")

    row = await conversation_row(world.pool, conversation.id)
    assert row["seller_unread_count"] == 1
    assert row["buyer_unread_count"] == 0
    assert row["last_message_text"] == "Is this still available?"
    assert row["last_message_at"] == sent.message.created_at
    assert row["last_seq"] == sent.message.seq == 1
    assert await store.unread_total(world.pool, world.mary.id) == 1

    receipt = await store.mark_read(world.pool, conversation.id, world.mary.id, up_to_seq=1)

    assert receipt.messages_marked == 1
    assert receipt.unread_count == 0
    row = await conversation_row(world.pool, conversation.id)
    assert row["seller_unread_count"] == 0
    assert row["seller_last_read_seq"] == 1
    message = await message_row(world.pool, sent.message.id)
    assert message["is_read"] is True
    assert message["read_at"] == receipt.read_at
    assert await store.unread_total(world.pool, world.mary.id) == 0
    assert await store.recount_counters(world.pool) == []


async def test_seqs_count_up_from_one_per_conversation(world: World) -> None:
    conversation = await world.open()
    seqs = [(await world.send(conversation.id, world.john)).message.seq for _ in range(3)]
    assert seqs == [1, 2, 3]


async def test_a_retried_client_msg_id_returns_the_same_message_and_writes_nothing(
    world: World,
) -> None:
    conversation = await world.open()
    first = await world.send(conversation.id, world.john, "offer?", client_msg_id="retry-1")
    before = await table_snapshot(world.pool)

    again = await world.send(conversation.id, world.john, "offer?", client_msg_id="retry-1")

    assert again.replayed is True
    assert again.message == first.message
    assert await table_snapshot(world.pool) == before
    assert (await conversation_row(world.pool, conversation.id))["last_seq"] == 1


async def test_reusing_a_client_msg_id_for_other_content_is_refused(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "first", client_msg_id="same")
    before = await table_snapshot(world.pool)
    with pytest.raises(ClientMsgIdConflict):
        await world.send(conversation.id, world.john, "second", client_msg_id="same")
    assert await table_snapshot(world.pool) == before


async def test_the_same_client_msg_id_from_two_senders_is_two_messages(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "hi", client_msg_id="x")
    reply = await world.send(conversation.id, world.mary, "hi", client_msg_id="x")
    assert (reply.replayed, reply.message.seq) == (False, 2)


async def test_a_system_message_counts_for_neither_side(world: World) -> None:
    conversation = await world.open()
    sent = await store.send_message(
        world.pool,
        conversation_id=conversation.id,
        sender_id=None,
        client_msg_id="sys-1",
        message_type="system",
        content="The seller marked this item as sold.",
    )
    assert (sent.message.sender_id, sent.message.recipient_id) == (None, None)
    row = await conversation_row(world.pool, conversation.id)
    assert (row["buyer_unread_count"], row["seller_unread_count"]) == (0, 0)
    assert row["last_message_type"] == "system"
    again = await store.send_message(
        world.pool,
        conversation_id=conversation.id,
        sender_id=None,
        client_msg_id="sys-1",
        message_type="system",
        content="The seller marked this item as sold.",
    )
    assert again.replayed is True


async def test_users_cannot_send_system_messages(world: World) -> None:
    conversation = await world.open()
    with pytest.raises(Forbidden):
        await world.send(conversation.id, world.john, "I am the admin", message_type="system")


async def test_image_and_offer_messages_carry_their_metadata(world: World) -> None:
    conversation = await world.open()
    image = await world.send(
        conversation.id,
        world.mary,
        "",
        message_type="image",
        metadata={"url": "https://cdn.example.com/p/1.jpg", "width": 800},
    )
    offer = await world.send(
        conversation.id,
        world.john,
        "Would you take 400?",
        message_type="offer",
        metadata={"amount_cents": 40000, "currency": "EUR"},
    )
    assert image.message.metadata == {"url": "https://cdn.example.com/p/1.jpg", "width": 800}
    assert offer.message.metadata == {"amount_cents": 40000, "currency": "EUR"}
    assert offer.message.message_type == "offer"


async def test_text_is_stored_verbatim(world: World) -> None:
    conversation = await world.open()
    odd = [
        "'; DROP TABLE messages; --",
        "<script>alert('x')</script>",
        "emoji 🫠👩‍👩‍👧 and RTL \u202eevil\u202c",
        "  leading and trailing spaces  ",
    ]
    for content in odd:
        sent = await world.send(conversation.id, world.john, content)
        assert sent.message.content == content
    stored = [
        r["content"] for r in await world.pool.fetch("SELECT content FROM messages ORDER BY seq")
    ]
    assert stored == odd


LIMITS = Limits(max_content_chars=50, max_metadata_bytes=100)


BAD_MESSAGES: list[tuple[str, dict[str, Any], type[ParleyError]]] = [
    ("unknown type", {"message_type": "video"}, UnknownMessageType),
    ("empty content", {"content": ""}, EmptyContent),
    ("whitespace content", {"content": " \t\n\u3000"}, EmptyContent),
    ("content over the limit", {"content": "x" * 51}, ContentTooLong),
    ("NUL in content", {"content": "a\x00b"}, InvalidText),
    ("lone surrogate", {"content": "a\ud800b"}, InvalidText),
    ("metadata not an object", {"metadata": ["a"]}, InvalidMetadata),
    ("metadata over the limit", {"metadata": {"k": "v" * 200}}, MetadataTooLarge),
    ("NUL in metadata", {"metadata": {"k": "\x00"}}, InvalidMetadata),
    ("NaN in metadata", {"metadata": {"k": float("nan")}}, InvalidMetadata),
    ("image without url", {"message_type": "image", "metadata": {}}, InvalidMetadata),
    (
        "image over http",
        {"message_type": "image", "metadata": {"url": "http://x.example/a.jpg"}},
        InvalidMetadata,
    ),
    (
        "image with javascript url",
        {"message_type": "image", "metadata": {"url": "javascript:alert(1)"}},
        InvalidMetadata,
    ),
    (
        "offer without currency",
        {"message_type": "offer", "metadata": {"amount_cents": 10}},
        InvalidMetadata,
    ),
    (
        "offer of zero",
        {"message_type": "offer", "metadata": {"amount_cents": 0, "currency": "EUR"}},
        InvalidMetadata,
    ),
    (
        "offer of a fraction",
        {"message_type": "offer", "metadata": {"amount_cents": 9.5, "currency": "EUR"}},
        InvalidMetadata,
    ),
    (
        "offer in lowercase currency",
        {"message_type": "offer", "metadata": {"amount_cents": 10, "currency": "eur"}},
        InvalidMetadata,
    ),
    ("empty client_msg_id", {"client_msg_id": ""}, InvalidArgument),
    ("long client_msg_id", {"client_msg_id": "x" * 65}, InvalidArgument),
]


@pytest.mark.parametrize(
    ("fields", "error"),
    [pytest.param(fields, error, id=name) for name, fields, error in BAD_MESSAGES],
)
async def test_a_bad_message_is_refused_and_writes_nothing(
    world: World, fields: dict[str, Any], error: type[ParleyError]
) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "before")
    before = await table_snapshot(world.pool)
    message: dict[str, Any] = {
        "conversation_id": conversation.id,
        "sender_id": world.john.id,
        "client_msg_id": client_msg_id(),
        "content": "hello",
        "message_type": "text",
        "metadata": {},
    }
    with pytest.raises(error):
        await store.send_message(world.pool, **(message | fields), limits=LIMITS)
    assert await table_snapshot(world.pool) == before


async def test_outsiders_and_unknown_conversations_look_the_same(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "private")
    before = await table_snapshot(world.pool)
    for conversation_id in (conversation.id, 999_999):
        with pytest.raises(NotFound) as raised:
            await world.send(conversation_id, world.eve, "let me in")
        assert str(raised.value) == f"conversation {conversation_id} not found"
        with pytest.raises(NotFound):
            await store.history(world.pool, conversation_id, world.eve.id)
        with pytest.raises(NotFound):
            await store.mark_read(world.pool, conversation_id, world.eve.id, 1)
        with pytest.raises(NotFound):
            await store.get_conversation(world.pool, conversation_id, world.eve.id)
        with pytest.raises(NotFound):
            await store.delete_for(world.pool, world.eve.id, conversation_id)
        with pytest.raises(NotFound):
            await store.archive(world.pool, world.eve.id, conversation_id)
    assert await table_snapshot(world.pool) == before


async def test_messages_cannot_be_deleted(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john)
    with pytest.raises(asyncpg.RestrictViolationError):
        await world.pool.execute("DELETE FROM messages")


async def test_history_pages_backwards_oldest_first(world: World) -> None:
    conversation = await world.open()
    for n in range(1, 8):
        await world.send(conversation.id, world.john, f"m{n}")
    newest = await store.history(world.pool, conversation.id, world.mary.id, limit=3)
    assert [m.content for m in newest] == ["m5", "m6", "m7"]
    older = await store.history(
        world.pool, conversation.id, world.mary.id, before_seq=newest[0].seq, limit=3
    )
    assert [m.content for m in older] == ["m2", "m3", "m4"]


async def test_messages_after_returns_exactly_what_came_later(world: World) -> None:
    conversation = await world.open()
    for n in range(1, 6):
        await world.send(conversation.id, world.john, f"m{n}")
    later = await store.messages_after(world.pool, conversation.id, world.mary.id, after_seq=3)
    assert [m.seq for m in later] == [4, 5]

"""Hostile and careless clients: every bad frame gets its code, and nothing is written."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.clients import Gateway
from tests.world import World, table_snapshot


@dataclass(frozen=True)
class BadInput:
    name: str
    frame: Callable[[int], str | bytes]  # conversation id -> what the client sends
    code: str | None  # expected error code; None: the socket is closed instead
    close_code: int | None = None


def send(in_conversation: int, /, **fields: Any) -> str:
    frame = {
        "type": "message.send",
        "id": "r",
        "conversation_id": in_conversation,
        "client_msg_id": "fresh-1",
        "content": "hello",
    }
    return json.dumps(frame | fields)


def raw(text: str) -> Callable[[int], str]:
    return lambda _: text


BAD_INPUTS = [
    BadInput("malformed JSON", raw('{"type": "message.send", "id": '), "bad_json"),
    BadInput("binary frame", lambda _: b'{"type": "conversation.list", "id": "r"}', "binary_frame"),
    BadInput("a JSON array", raw("[1, 2, 3]"), "invalid_frame"),
    BadInput("a JSON string", raw('"hello"'), "invalid_frame"),
    BadInput("a JSON number", raw("42"), "invalid_frame"),
    BadInput("unknown type", raw('{"type": "message.delete", "id": "r"}'), "unknown_type"),
    BadInput("no type", raw('{"id": "r", "conversation_id": 1}'), "unknown_type"),
    BadInput("type not a string", raw('{"type": 5, "id": "r"}'), "unknown_type"),
    BadInput(
        "missing id",
        lambda c: json.dumps(
            {"type": "message.send", "conversation_id": c, "client_msg_id": "x", "content": "x"}
        ),
        "invalid_frame",
    ),
    BadInput("id too long", lambda c: send(c, id="x" * 65), "invalid_frame"),
    BadInput("conversation_id a string", lambda c: send(c, conversation_id="one"), "invalid_frame"),
    BadInput("conversation_id negative", lambda c: send(c, conversation_id=-1), "invalid_frame"),
    BadInput("content a number", lambda c: send(c, content=42), "invalid_frame"),
    BadInput("metadata a list", lambda c: send(c, metadata=["a"]), "invalid_frame"),
    BadInput("client_msg_id too long", lambda c: send(c, client_msg_id="x" * 65), "invalid_frame"),
    BadInput("client_msg_id missing", lambda c: send(c, client_msg_id=None), "invalid_frame"),
    BadInput("content over the limit", lambda c: send(c, content="x" * 4001), "content_too_long"),
    BadInput(
        "metadata over the limit",
        lambda c: send(c, metadata={"note": "x" * 9000}),
        "metadata_too_large",
    ),
    BadInput("empty content", lambda c: send(c, content=""), "empty_content"),
    BadInput("whitespace content", lambda c: send(c, content=" \n\t\u3000 "), "empty_content"),
    BadInput("NUL in content", lambda c: send(c, content="a\x00b"), "invalid_text"),
    BadInput("NUL in metadata", lambda c: send(c, metadata={"k": "\x00"}), "invalid_metadata"),
    BadInput("lone surrogate", lambda c: send(c, content="a\ud800b"), "bad_json"),
    BadInput(
        "unknown message type", lambda c: send(c, message_type="video"), "unknown_message_type"
    ),
    BadInput(
        "a user sending a system message", lambda c: send(c, message_type="system"), "forbidden"
    ),
    BadInput(
        "image over plain http",
        lambda c: send(c, message_type="image", metadata={"url": "http://x.example/a.jpg"}),
        "invalid_metadata",
    ),
    BadInput(
        "offer of a negative amount",
        lambda c: send(c, message_type="offer", metadata={"amount_cents": -5, "currency": "EUR"}),
        "invalid_metadata",
    ),
    BadInput("unknown conversation", lambda c: send(c, conversation_id=c + 1000), "not_found"),
    BadInput(
        "reading a negative seq",
        lambda c: json.dumps(
            {"type": "conversation.read", "id": "r", "conversation_id": c, "up_to_seq": -1}
        ),
        "invalid_frame",
    ),
    BadInput(
        "page size zero",
        raw('{"type": "conversation.list", "id": "r", "limit": 0}'),
        "invalid_frame",
    ),
    BadInput(
        "page size too big",
        raw('{"type": "conversation.list", "id": "r", "limit": 1000}'),
        "invalid_frame",
    ),
    BadInput(
        "forged cursor",
        raw('{"type": "conversation.list", "id": "r", "cursor": "1;DROP TABLE"}'),
        "invalid_argument",
    ),
    BadInput(
        "typing maybe",
        lambda c: json.dumps({"type": "typing", "id": "r", "conversation_id": c, "state": "maybe"}),
        "invalid_frame",
    ),
    BadInput(
        "sync with a non-numeric id",
        raw('{"type": "sync", "id": "r", "conversations": {"abc": 1}}'),
        "invalid_frame",
    ),
    BadInput(
        "unknown product",
        raw('{"type": "conversation.open", "id": "r", "product_id": 424242}'),
        "not_found",
    ),
    BadInput(
        "a second hello with a bad token",
        raw('{"type": "hello", "id": "r", "token": "x"}'),
        "unauthorized",
    ),
    # Each class of the attack report (issue 11): the example given, and variants.
    BadInput("brackets 1,500 deep", raw("[" * 1500 + "]" * 1500), "invalid_frame"),
    BadInput("objects 33 deep", raw('{"a":' * 33 + "1" + "}" * 33), "invalid_frame"),
    BadInput(
        "metadata 2,000 deep",
        lambda c: send(c, metadata={"x": 1}).replace('{"x": 1}', '{"a":' * 2000 + "1" + "}" * 2000),
        "invalid_frame",
    ),
    BadInput(
        "metadata 17 deep, under the frame's bound",
        lambda c: send(c).replace(
            '"hello"}', '"hello", "metadata": ' + '{"a":' * 17 + "1" + "}" * 17 + "}"
        ),
        "invalid_metadata",
    ),
    BadInput(
        "before_seq past int64",
        lambda c: json.dumps(
            {
                "type": "message.history",
                "id": "r",
                "conversation_id": c,
                "before_seq": 9223372036854775808,
            }
        ),
        "invalid_frame",
    ),
    BadInput(
        "frame id past int64",
        lambda c: f'{{"type":"conversation.get","id":9223372036854775808,"conversation_id":{c}}}',
        "invalid_frame",
    ),
    BadInput(
        "product id of 5,000 digits",
        raw('{"type": "conversation.open", "id": "r", "product_id": ' + "9" * 5000 + "}"),
        "bad_json",
    ),
    BadInput(
        "cursor whose id is 2^63",
        raw('{"type": "conversation.list", "id": "r", "cursor": "1.9223372036854775808"}'),
        "invalid_argument",
    ),
    BadInput(
        "cursor of negative numbers",
        raw('{"type": "conversation.list", "id": "r", "cursor": "-1.-1"}'),
        "invalid_argument",
    ),
    BadInput(
        "cursor of Arabic-Indic digits",
        raw('{"type": "conversation.list", "id": "r", "cursor": "\u0661.\u0661"}'),
        "invalid_argument",
    ),
    BadInput(
        "sync of 101 conversations",
        lambda c: json.dumps(
            {"type": "sync", "id": "r", "conversations": {str(n): 0 for n in range(1, 102)}}
        ),
        "invalid_frame",
    ),
    BadInput("only zero-width spaces", lambda c: send(c, content="\u200b\u200b"), "empty_content"),
    BadInput(
        "only a BOM and a word joiner", lambda c: send(c, content="\ufeff\u2060"), "empty_content"
    ),
    BadInput("only a Hangul filler", lambda c: send(c, content="\u3164"), "empty_content"),
    BadInput("a lone combining mark", lambda c: send(c, content="\u0301"), "empty_content"),
    BadInput(
        "offer currency with a newline",
        lambda c: send(c, message_type="offer", metadata={"amount_cents": 5, "currency": "EUR\n"}),
        "invalid_metadata",
    ),
    BadInput(
        "image URL with a leading space",
        lambda c: send(c, message_type="image", metadata={"url": " https://x.example/a.jpg"}),
        "invalid_metadata",
    ),
    BadInput(
        "image URL with a tab in the scheme",
        lambda c: send(c, message_type="image", metadata={"url": "ht\ttps://x.example/a.jpg"}),
        "invalid_metadata",
    ),
    BadInput(
        "frame over 64 KiB",
        lambda c: send(c, content="x" * 70_000),
        None,
        close_code=1009,
    ),
]


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=[bad.name for bad in BAD_INPUTS])
async def test_a_bad_frame_gets_its_error_and_writes_nothing(
    gateway: Gateway, world: World, bad: BadInput
) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "before")
    before = await table_snapshot(world.pool)
    async with gateway.connect(world.john.id) as john:
        await john.send_raw(bad.frame(conversation.id))
        if bad.code is None:
            assert await john.wait_closed() == bad.close_code
        else:
            error = await john.wait_for(lambda f: f["type"] == "error")
            assert error["code"] == bad.code, error
            assert error["message"]
            # The socket is still usable.
            assert await john.ok("conversation.get", conversation_id=conversation.id)
    assert await table_snapshot(world.pool) == before


def test_the_table_has_at_least_thirty_distinct_bad_inputs() -> None:
    assert len({bad.name for bad in BAD_INPUTS}) >= 30


VERBATIM = [
    "🫠 4-byte emoji 👩‍👩‍👧‍👦",
    "right-to-left \u202eoverride\u202c and \u200fmarks",
    "'; DROP TABLE messages; --",
    "1 OR 1=1 /* */ UNION SELECT password FROM users",
    '<script>alert("xss")</script><img src=x onerror=alert(1)>',
]


@pytest.mark.parametrize("content", VERBATIM)
async def test_odd_text_round_trips_verbatim(gateway: Gateway, world: World, content: str) -> None:
    conversation = await world.open()
    async with gateway.connect(world.john.id) as john, gateway.connect(world.mary.id) as mary:
        sent = await john.ok(
            "message.send", conversation_id=conversation.id, client_msg_id="v", content=content
        )
        received = await mary.event("message.new")
    assert sent["message"]["content"] == received["message"]["content"] == content
    stored = await world.pool.fetchval("SELECT content FROM messages")
    assert stored == content


async def test_a_forged_sender_id_is_ignored(gateway: Gateway, world: World) -> None:
    conversation = await world.open()
    async with gateway.connect(world.john.id) as john:
        sent = await john.ok(
            "message.send",
            conversation_id=conversation.id,
            client_msg_id="forged",
            content="I am Mary",
            sender_id=world.mary.id,
        )
    assert sent["message"]["sender_id"] == world.john.id
    assert await world.pool.fetchval("SELECT sender_id FROM messages") == world.john.id


async def test_a_replayed_client_msg_id_answers_the_same_and_writes_nothing(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with gateway.connect(world.john.id) as john:
        fields = {"conversation_id": conversation.id, "client_msg_id": "once", "content": "hi"}
        first = await john.ok("message.send", **fields)
        before = await table_snapshot(world.pool)
        again = await john.ok("message.send", **fields)
    assert again["replayed"] is True
    assert again["message"] == first["message"]
    assert await table_snapshot(world.pool) == before


async def test_reading_backwards_changes_nothing(gateway: Gateway, world: World) -> None:
    conversation = await world.open()
    for _ in range(3):
        await world.send(conversation.id, world.john)
    async with gateway.connect(world.mary.id) as mary, gateway.connect(world.john.id) as john:
        await mary.ok("conversation.read", conversation_id=conversation.id, up_to_seq=3)
        await john.event("message.read", up_to_seq=3)
        before = await table_snapshot(world.pool)
        receipt = await mary.ok("conversation.read", conversation_id=conversation.id, up_to_seq=1)
        assert (receipt["advanced"], receipt["up_to_seq"]) == (False, 3)
        await gateway.barrier(john, world.john.id)
        assert john.pending("message.read") == []
    assert await table_snapshot(world.pool) == before

"""protocol.py without any I/O, and docs/protocol.md against the code."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from parley import errors, protocol, server_events
from parley.models import Message

DOC = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()


def section(title: str) -> str:
    """The text of one `## title` section of the protocol document."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", DOC, re.S | re.M)
    assert match, f"docs/protocol.md has no '## {title}' section"
    return match.group(1)


def documented_types(title: str) -> set[str]:
    return set(re.findall(r"^### `([a-z.]+)`", section(title), re.M))


def test_every_client_frame_type_is_documented_and_nothing_else() -> None:
    assert documented_types("Client frames") == set(protocol.CLIENT_FRAME_TYPES)


def test_every_server_event_type_is_documented_and_nothing_else() -> None:
    assert documented_types("Server events") == set(server_events.SERVER_EVENT_TYPES)


def all_error_codes() -> set[str]:
    codes, stack = set(), [errors.ParleyError]
    while stack:
        cls = stack.pop()
        codes.add(cls.code)
        stack.extend(cls.__subclasses__())
    return codes


def test_every_error_code_is_documented_and_nothing_else() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section("Error codes"), re.M))
    assert documented == all_error_codes()


def test_every_close_code_is_documented_and_nothing_else() -> None:
    in_code = {int(name.split("_")[1]) for name in dir(protocol) if re.match(r"WS_\d{4}_", name)}
    documented = {
        int(code) for code in re.findall(r"^\| `(\d{4})` \|", section("Close codes"), re.M)
    }
    assert documented == in_code


def test_every_limit_is_documented() -> None:
    from parley.config import Limits

    text = section("Limits")
    missing = [name for name in Limits.__dataclass_fields__ if f"`{name}`" not in text]
    assert missing == []


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type":"hello","id":"1","token":"t"}', protocol.Hello(id="1", token="t")),
        (
            '{"type":"sync","id":2,"conversations":{"42":17}}',
            protocol.Sync(id=2, conversations={42: 17}),
        ),
        (
            '{"type":"typing","conversation_id":4,"state":"stop"}',
            protocol.Typing(conversation_id=4, state="stop"),
        ),
        (
            '{"type":"message.send","id":"3","conversation_id":4,"client_msg_id":"c",'
            '"content":"hi","sender_id":999}',
            protocol.MessageSend(id="3", conversation_id=4, client_msg_id="c", content="hi"),
        ),
    ],
)
def test_frames_parse_into_their_structs(frame: str, expected: object) -> None:
    assert protocol.parse(frame) == expected


@pytest.mark.parametrize(
    ("frame", "error", "frame_id"),
    [
        ("{", errors.BadJson, None),
        ("[]", errors.InvalidFrame, None),
        ('{"type":"nope","id":"9"}', errors.UnknownType, "9"),
        ('{"type":"conversation.get","id":"9"}', errors.InvalidFrame, "9"),
        ('{"type":"conversation.get","id":"9","conversation_id":0}', errors.InvalidFrame, "9"),
        ('{"type":"conversation.get","id":true,"conversation_id":1}', errors.InvalidFrame, None),
    ],
)
def test_bad_frames_raise_the_right_error_with_the_id_when_readable(
    frame: str, error: type[errors.ProtocolError], frame_id: str | None
) -> None:
    with pytest.raises(error) as raised:
        protocol.parse(frame)
    assert raised.value.frame_id == frame_id


def test_a_field_error_names_the_field() -> None:
    with pytest.raises(errors.InvalidFrame, match=r"\$\.up_to_seq"):
        protocol.parse('{"type":"conversation.read","id":"1","conversation_id":1,"up_to_seq":-1}')


def test_events_encode_with_their_type_first() -> None:
    message = Message(
        id=1,
        conversation_id=42,
        seq=1,
        sender_id=701,
        recipient_id=702,
        message_type="text",
        content="hi",
        metadata={},
        client_msg_id="c1",
        is_read=False,
        read_at=None,
        created_at=datetime(2026, 11, 24, 14, 0, tzinfo=UTC),
    )
    encoded = protocol.encode(server_events.MessageNew(message=message))
    assert encoded.startswith(b'{"type":"message.new","message":{"id":1,')
    assert msgspec.json.decode(encoded)["message"]["created_at"] == "2026-11-24T14:00:00Z"
    error = protocol.encode(protocol.Error(id="1", code="not_found", message="x"))
    assert msgspec.json.decode(error) == {
        "type": "error",
        "id": "1",
        "code": "not_found",
        "message": "x",
    }

"""Fuzzing the boundaries: the frame parser on any input, and a live gateway on a few hundred
mutated frames, whose own log must hold no traceback afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from parley import protocol
from parley.config import Settings
from parley.errors import ProtocolError
from parley.gateway.auth import issue_token
from tests.conftest import JWT_SECRET
from tests.gateway.test_inputs import BAD_INPUTS
from tests.services import GatewayProcess
from tests.test_scale_out import gateway_env
from tests.world import World

VALID_FRAMES = [
    {"type": "conversation.list", "id": "1", "limit": 20},
    {"type": "conversation.get", "id": 2, "conversation_id": 1},
    {"type": "message.send", "id": "3", "conversation_id": 1, "client_msg_id": "c",
     "content": "hi", "metadata": {"a": [1, 2, {"b": None}]}},
    {"type": "message.history", "id": "4", "conversation_id": 1, "before_seq": 5, "limit": 10},
    {"type": "conversation.read", "id": "5", "conversation_id": 1, "up_to_seq": 1},
    {"type": "typing", "conversation_id": 1, "state": "start"},
    {"type": "sync", "id": "6", "conversations": {"1": 0}},
    {"type": "conversation.open", "id": "7", "product_id": 7010},
]  # fmt: skip


def parses_or_refuses(frame: str | bytes) -> None:
    code = "parsed"
    try:
        protocol.parse(frame)
    except ProtocolError as error:
        code = error.code
    assert code in ("parsed", "bad_json", "invalid_frame", "unknown_type"), code


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_any_text_or_bytes_is_a_frame_or_a_protocol_error(frame: str | bytes) -> None:
    parses_or_refuses(frame)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(VALID_FRAMES),
    st.dictionaries(st.sampled_from(["id", "type", "conversation_id", "limit", "cursor",
                                     "content", "metadata", "up_to_seq", "conversations",
                                     "before_seq", "state", "token", "product_id"]),
                    json_values, max_size=3),
)  # fmt: skip
def test_any_field_of_any_value_in_a_frame_is_a_frame_or_a_protocol_error(
    frame: dict[str, Any], changes: dict[str, Any]
) -> None:
    parses_or_refuses(json.dumps(frame | changes, allow_nan=True))


Wire = tuple[Opcode, bytes]


def mutations(rng: random.Random, count: int) -> list[Wire]:
    """Valid frames, damaged in the ways an attacker or a broken client damages them."""
    out: list[Wire] = []
    for _ in range(count):
        text = json.dumps(rng.choice(VALID_FRAMES))
        kind = rng.randrange(8)
        if kind == 0:  # cut short
            out.append(_text(text[: rng.randrange(len(text))]))
        elif kind == 1:  # a character replaced
            at = rng.randrange(len(text))
            out.append(_text(text[:at] + rng.choice('{}[]":,\\\x00\ud800 9e') + text[at + 1 :]))
        elif kind == 2:  # a huge or odd number where a number was
            odd = rng.choice(["9" * 400, "1e999", "-0", "9223372036854775808", "1.5", "NaN"])
            out.append(_text(text.replace(": 1", ": " + odd, 1)))
        elif kind == 3:  # deep nesting inside
            depth = rng.choice([20, 40, 2000])
            out.append(_text(text.replace('"hi"', "[" * depth + "]" * depth, 1)))
        elif kind == 4:  # invalid UTF-8 sent in a text frame
            out.append((Opcode.TEXT, text.encode()[:-2] + b"\xff\xfe}"))
        elif kind == 5:  # a binary frame
            out.append((Opcode.BINARY, text.encode()))
        elif kind == 6:  # a field of the wrong type
            out.append(_text(text.replace('"1"', "[]", 1).replace(": 1", ': "one"', 1)))
        else:  # unknown fields, forged ones included
            out.append(_text(text[:-1] + ', "sender_id": 1, "x": {"y": [1, 2]}}'))
    return out


def _text(text: str) -> Wire:
    # A lone surrogate cannot be UTF-8: it goes out as the invalid bytes a client would send.
    return Opcode.TEXT, text.encode("utf-8", "surrogatepass")


def closes(wire: Wire) -> bool:
    """A text frame that is not UTF-8: the WebSocket layer closes with 1007."""
    opcode, data = wire
    try:
        data.decode()
    except UnicodeDecodeError:
        return opcode is Opcode.TEXT
    return False


def owes_no_reply(wire: Wire) -> bool:
    text = wire[1].decode(errors="replace")
    return '"typing"' in text and '"id"' not in text and wire[0] is Opcode.TEXT


@contextlib.asynccontextmanager
async def authenticated(process: GatewayProcess, user_id: int) -> AsyncIterator[ClientConnection]:
    async with connect(process.ws_url, proxy=None, max_size=None) as connection:
        token = issue_token(Settings(jwt_secret=JWT_SECRET), user_id)
        await connection.send(json.dumps({"type": "hello", "id": "hello", "token": token}))
        assert json.loads(await connection.recv())["type"] == "ok"
        yield connection


async def send_any(connection: ClientConnection, wire: Wire) -> None:
    if connection.protocol.state is not State.OPEN:
        # The server closed it (a frame that was not UTF-8): say so as a send would.
        await connection.recv()
    connection.protocol.send_frame(Frame(*wire))
    connection.send_data()


async def test_a_live_gateway_takes_hundreds_of_bad_frames_without_a_traceback(
    database_url: str, world: World
) -> None:
    conversation = await world.open()
    env = gateway_env(database_url, None, "fuzz:") | {"PARLEY_LOG_LEVEL": "info"}
    process = GatewayProcess("fuzz-gateway", env)
    await process.start()
    codes: dict[str, int] = {}
    try:
        frames = mutations(random.Random(20261126), 400)
        for bad in BAD_INPUTS:
            if bad.code:
                sent = bad.frame(conversation.id)
                if isinstance(sent, bytes):
                    frames.append((Opcode.BINARY, sent))
                else:
                    frames.append(_text(sent))
        pending = list(frames)
        closed_with: list[int | None] = []
        while pending:
            # Each socket takes frames until one closes it (invalid UTF-8 does: 1007).
            async with authenticated(process, world.john.id) as john:
                with contextlib.suppress(ConnectionClosed):
                    while pending:
                        wire = pending.pop()
                        await send_any(john, wire)
                        if closes(wire):
                            await asyncio.wait_for(john.recv(), 5)  # raises: closed
                        if owes_no_reply(wire):
                            continue
                        reply = json.loads(await asyncio.wait_for(john.recv(), 5))
                        while reply["type"] not in ("ok", "error"):
                            reply = json.loads(await asyncio.wait_for(john.recv(), 5))
                        code = reply.get("code", "ok")
                        codes[code] = codes.get(code, 0) + 1
            closed_with.append(john.close_code)
        # Bad frames before any hello, as the first frame, need no token either.
        for first in mutations(random.Random(7), 30):
            async with connect(process.ws_url, proxy=None) as stranger:
                await send_any(stranger, first)
                with contextlib.suppress(ConnectionClosed, TimeoutError):
                    await asyncio.wait_for(stranger.recv(), 5)
                assert stranger.close_code in (4400, 1007, 1009, None)
    finally:
        await process.stop()
    assert set(closed_with) <= {1007, 1000}, closed_with
    assert "internal" not in codes, codes
    assert sum(codes.values()) > 300, codes
    assert "Traceback" not in process.log
    assert '"level": "error"' not in process.log

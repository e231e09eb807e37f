"""Who may connect: Origin at the handshake, then a hello with a valid token, in time."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.clients import Gateway, open_client
from tests.conftest import JWT_SECRET, gateway_settings, running_gateway
from tests.world import World


def hs256(claims: dict[str, Any], secret: str = JWT_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def hmac_token(claims: dict[str, Any], secret: bytes) -> str:
    """HS256 by hand: PyJWT itself refuses to sign with a PEM key, an attacker does not."""
    signing_input = _b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + _b64(json.dumps(claims).encode())
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + _b64(signature)).decode()


def unsigned(claims: dict[str, Any]) -> str:
    """An "alg": "none" token, with an empty signature."""
    return (
        _b64(b'{"alg":"none","typ":"JWT"}') + b"." + _b64(json.dumps(claims).encode())
    ).decode() + "."


NOW = int(time.time())
BAD_TOKENS: dict[str, Callable[[], Any]] = {
    "expired": lambda: hs256({"sub": "701", "exp": NOW - 3600}),
    "signed with another key": lambda: hs256(
        {"sub": "701", "exp": NOW + 3600}, "some-other-services-secret-0123456789"
    ),
    "alg none": lambda: unsigned({"sub": "701", "exp": NOW + 3600}),
    "no sub": lambda: hs256({"exp": NOW + 3600}),
    "no exp": lambda: hs256({"sub": "701"}),
    "sub not a user id": lambda: hs256({"sub": "john", "exp": NOW + 3600}),
    "not a JWT": lambda: "definitely.not.a-token",
    "empty": lambda: "",
    "a number": lambda: 12345,
    # Attack report classes (issue 11): a sub no int() should see, and a refusal whose text
    # would not fit in a close frame (no secret needed for either).
    "signed, sub of 5,000 digits": lambda: hs256({"sub": "9" * 5000, "exp": NOW + 3600}),
    "signed, sub in fullwidth digits": lambda: hs256(
        {"sub": "\uff17\uff10\uff11", "exp": NOW + 3600}
    ),
    "unsigned, with a long header": lambda: (
        _b64(json.dumps({"alg": "none", "kid": "k" * 400}).encode()).decode()
        + "."
        + _b64(b'{"sub":"701"}').decode()
        + "."
    ),
    "a header that is not JSON": lambda: _b64(b"\xff" * 300).decode() + ".e30.",
}


@pytest.mark.parametrize("make_token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_a_bad_token_is_refused_and_the_socket_closed(
    gateway: Gateway, world: World, make_token: Callable[[], Any]
) -> None:
    async with open_client(gateway.server.ws_url) as client:
        await client.send_raw(json.dumps({"type": "hello", "id": "h", "token": make_token()}))
        if isinstance(make_token(), str):
            error = await client.reply("h")
            assert (error["type"], error["code"]) == ("error", "unauthorized")
            assert await client.wait_closed() == 4401
        else:
            assert await client.wait_closed() == 4400, "a hello without a string token"
    assert gateway.hub.users == 0


async def test_any_frame_before_hello_closes_the_socket(gateway: Gateway) -> None:
    async with open_client(gateway.server.ws_url) as client:
        await client.send_raw(json.dumps({"type": "conversation.list", "id": "1"}))
        assert await client.wait_closed() == 4400


async def test_no_hello_in_time_closes_the_socket(database_url: str) -> None:
    settings = gateway_settings(database_url, hello_timeout_seconds=0.2)
    async with running_gateway(settings) as gateway, open_client(gateway.server.ws_url) as idle:
        assert await idle.wait_closed() == 4408


async def test_hello_answers_with_the_user_badge_and_limits(gateway: Gateway, world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "hi")
    async with gateway.connect(world.mary.id) as mary:
        hello = mary.user
    assert hello["user"] == {"id": world.mary.id, "display_name": "Mary", "avatar_url": None}
    assert hello["unread_total"] == 1
    assert hello["limits"]["max_content_chars"] == 4000
    assert hello["limits"]["max_frame_bytes"] == 65536


async def test_a_user_the_marketplace_has_not_synced_yet_can_connect(
    gateway: Gateway, world: World
) -> None:
    async with gateway.connect(555) as newcomer:
        assert newcomer.user["user"] == {"id": 555, "display_name": "", "avatar_url": None}


async def test_a_foreign_origin_is_refused_at_the_handshake(database_url: str) -> None:
    settings = dataclasses.replace(
        gateway_settings(database_url), allowed_origins=("https://market.example",)
    )
    async with running_gateway(settings) as gateway:
        with pytest.raises(InvalidStatus) as refused:
            await connect(gateway.server.ws_url, origin="https://evil.example")  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
        async with open_client(gateway.server.ws_url, origin="https://market.example") as ok:
            await ok.ok("hello", token=gateway.token(701))


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_asymmetric_tokens_verify_with_the_public_key_only(
    database_url: str, world: World, algorithm: str
) -> None:
    key: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = dataclasses.replace(
        gateway_settings(database_url),
        jwt_algorithm=algorithm,
        jwt_public_key=public_pem.decode(),
    )
    claims = {"sub": "701", "exp": NOW + 3600}
    async with running_gateway(settings) as gateway:
        async with open_client(gateway.server.ws_url) as good:
            await good.ok("hello", token=jwt.encode(claims, key, algorithm=algorithm))
        # The classic confusion: an HS256 token "signed" with the public key as secret.
        forged = hmac_token(claims, public_pem)
        async with open_client(gateway.server.ws_url) as bad:
            error = await bad.error("hello", token=forged)
            assert error["code"] == "unauthorized"
            assert await bad.wait_closed() == 4401


async def test_a_frame_nested_too_deep_as_the_first_frame_closes_with_4400(
    gateway: Gateway,
) -> None:
    async with open_client(gateway.server.ws_url) as client:
        await client.send_raw("[" * 1500 + "]" * 1500)
        assert await client.wait_closed() == 4400


def expiring_in(seconds: float, user_id: int = 701) -> str:
    return hs256({"sub": str(user_id), "exp": time.time() + seconds})


async def test_a_socket_is_told_before_its_token_runs_out_then_closed(
    gateway: Gateway, world: World
) -> None:
    async with open_client(gateway.server.ws_url) as client:
        assert (await client.ok("hello", token=expiring_in(2)))["user"]["id"] == world.john.id
        warning = await client.event("token.expiring")
        assert 0 < warning["expires_in_ms"] <= 2000
        assert await client.wait_closed() == 4411


async def test_a_fresh_token_keeps_the_socket_open_past_the_old_one(
    gateway: Gateway, world: World
) -> None:
    async with (
        open_client(gateway.server.ws_url) as renewed,
        open_client(gateway.server.ws_url) as control,
    ):
        await renewed.ok("hello", token=expiring_in(2))
        await control.ok("hello", token=expiring_in(2.5))
        await renewed.event("token.expiring")
        again = await renewed.ok("hello", token=expiring_in(3600))
        assert again["user"]["id"] == world.john.id
        assert "unread_version" in again
        # The control socket's token ran out after the renewed socket's old one did.
        assert await control.wait_closed(within=10) == 4411
        assert await renewed.ok("conversation.list")


async def test_a_renewal_must_be_valid_and_for_the_same_user(
    gateway: Gateway, world: World
) -> None:
    async with gateway.connect(world.john.id) as john:
        for token in (expiring_in(3600, world.mary.id), expiring_in(-3600), "forged"):
            error = await john.error("hello", token=token)
            assert error["code"] == "unauthorized"
        assert await john.ok("conversation.list"), "still open, as the same user"

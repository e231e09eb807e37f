"""Tokens meant for Parley alone: the marketplace's rotating keys from a JWKS, and its
audience and issuer checked (RFC 8725)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.clients import Gateway, open_client
from tests.conftest import gateway_settings, running_gateway
from tests.servers import RunningServer, serve
from tests.world import World

AUDIENCE = "parley"
ISSUER = "https://market.example"


class Marketplace:
    """The marketplace's signing keys, and the JWKS document it serves of them."""

    def __init__(self) -> None:
        self.keys = {kid: rsa.generate_private_key(65537, 2048) for kid in ("a", "b")}
        self.published = ["a"]
        self.requests = 0

    async def jwks(self, request: Request) -> Response:
        self.requests += 1
        keys = []
        for kid in self.published:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
            keys.append(jwk | {"kid": kid, "use": "sig", "alg": "RS256"})
        return JSONResponse({"keys": keys})

    def token(self, kid: str, signer: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {"sub": "701", "exp": now + 600, "aud": AUDIENCE, "iss": ISSUER} | claims
        payload = {name: value for name, value in payload.items() if value is not None}
        key = self.keys[signer or kid]
        return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


@contextlib.asynccontextmanager
async def jwks_server(marketplace: Marketplace) -> AsyncIterator[RunningServer]:
    async with serve(Starlette(routes=[Route("/jwks", marketplace.jwks)])) as server:
        yield server


@contextlib.asynccontextmanager
async def parley(
    database_url: str, jwks_url: str, refetch_seconds: float
) -> AsyncIterator[Gateway]:
    settings = dataclasses.replace(
        gateway_settings(database_url),
        jwt_algorithm="RS256",
        jwt_jwks_url=jwks_url,
        jwt_jwks_refetch_seconds=refetch_seconds,
        jwt_audience=AUDIENCE,
        jwt_issuer=ISSUER,
    )
    async with running_gateway(settings) as gateway:
        yield gateway


async def hello(gateway: Gateway, token: str) -> dict[str, Any] | int:
    """The hello's data, or the close code of a refused one."""
    async with open_client(gateway.server.ws_url) as client:
        reply = await client.request("hello", token=token)
        if reply["type"] == "ok":
            return dict(reply["data"])
        assert reply["code"] == "unauthorized", reply
        code = await client.wait_closed()
        assert code is not None
        return code


async def test_a_rotated_key_is_taken_and_wrong_kid_aud_or_iss_refused(
    database_url: str, world: World
) -> None:
    marketplace = Marketplace()
    async with (
        jwks_server(marketplace) as keys,
        parley(database_url, f"{keys.http_url}/jwks", refetch_seconds=0) as gateway,
    ):
        accepted = await hello(gateway, marketplace.token("a"))
        assert isinstance(accepted, dict)
        assert accepted["user"]["id"] == world.john.id

        marketplace.published = ["b"]  # the marketplace rotates its key
        assert isinstance(await hello(gateway, marketplace.token("b")), dict)
        refused = {
            "a key the JWKS no longer holds": marketplace.token("a"),
            "an unknown kid": marketplace.token("c", signer="b"),
            "signed by another key than its kid's": marketplace.token("b", signer="a"),
            "another audience": marketplace.token("b", aud="payments"),
            "no audience": marketplace.token("b", aud=None),
            "another issuer": marketplace.token("b", iss="https://evil.example"),
            "no issuer": marketplace.token("b", iss=None),
        }
        for case, token in refused.items():
            assert await hello(gateway, token) == 4401, case


async def test_unknown_kids_fetch_the_jwks_at_most_once_a_minute(
    database_url: str, world: World
) -> None:
    marketplace = Marketplace()
    async with (
        jwks_server(marketplace) as keys,
        parley(database_url, f"{keys.http_url}/jwks", refetch_seconds=60) as gateway,
    ):
        assert isinstance(await hello(gateway, marketplace.token("a")), dict)
        for forged in ("x1", "x2", "x3"):
            assert await hello(gateway, marketplace.token(forged, signer="a")) == 4401
        assert marketplace.requests == 1, "forged kids made Parley fetch the JWKS again"


async def test_a_jwks_endpoint_that_is_down_never_stops_a_held_key(
    database_url: str, world: World
) -> None:
    marketplace = Marketplace()
    endpoint = jwks_server(marketplace)
    keys: RunningServer | None = await endpoint.__aenter__()
    assert keys is not None
    try:
        async with parley(database_url, f"{keys.http_url}/jwks", refetch_seconds=0) as gateway:
            assert isinstance(await hello(gateway, marketplace.token("a")), dict)
            await endpoint.__aexit__(None, None, None)  # the marketplace's JWKS goes down
            keys = None
            # An unknown kid makes Parley try again, and fail; what it held stays held.
            assert await hello(gateway, marketplace.token("b")) == 4401
            assert marketplace.requests == 1
            accepted = await hello(gateway, marketplace.token("a"))
            assert isinstance(accepted, dict)
            assert accepted["user"]["id"] == world.john.id
    finally:
        if keys is not None:
            await endpoint.__aexit__(None, None, None)

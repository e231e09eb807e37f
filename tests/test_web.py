"""The page, the SDK file and demo mode over HTTP, through a real uvicorn."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser
from pathlib import Path

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from parley.web import demo
from parley.web.page import STATIC
from tests.clients import Gateway, open_client
from tests.conftest import gateway_settings, running_gateway

ROOT = Path(__file__).resolve().parent.parent


async def get(gateway: Gateway, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.server.http_url) as client:
        return await client.get(path)


async def post_token(gateway: Gateway, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.server.http_url) as client:
        return await client.post("/demo/token", content=body)


async def test_the_sdk_is_served_from_its_one_file(gateway: Gateway) -> None:
    response = await get(gateway, "/parley.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.content == (ROOT / "clients" / "js" / "parley.js").read_bytes()
    assert not (STATIC / "parley.js").exists(), "no copy in the checkout"


async def test_the_page_is_served_with_a_policy_that_allows_no_inline_script(
    gateway: Gateway,
) -> None:
    page = await get(gateway, "/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "default-src 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    for path in ("/static/app.js", "/static/style.css", "/static/demo/phone.svg"):
        response = await get(gateway, path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == policy


class _Inline(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("a script without src")
        self.found += [f"{tag} {name}" for name in names if name.startswith("on")]
        if "style" in names or tag == "style":
            self.found.append(f"inline style on {tag}")


def test_the_page_has_no_inline_script_or_style() -> None:
    parser = _Inline()
    parser.feed((STATIC / "index.html").read_text())
    assert parser.found == []
    for module in STATIC.glob("*.js"):
        source = module.read_text()
        assert not re.search(r"\.innerHTML\s*=|insertAdjacentHTML|document\.write", source), module


async def test_paths_outside_the_static_folder_are_not_served(gateway: Gateway) -> None:
    for path in ("/static/../web.py", "/static/%2e%2e/web.py", "/static/..%2fweb.py"):
        assert (await get(gateway, path)).status_code == 404, path


async def test_without_demo_mode_there_is_no_token_endpoint(gateway: Gateway) -> None:
    assert (await post_token(gateway, b'{"user_id": 701}')).status_code == 404
    assert (await get(gateway, "/demo/marketplace")).status_code == 404


async def test_demo_mode_hands_tokens_for_demo_users_only(demo_gateway: Gateway) -> None:
    refused = {
        b'{"user_id": 5}': 404,
        b'{"user_id": 701.0}': 404,
        b'{"user_id": true}': 404,
        b'{"user_id": "701"}': 404,
        b"[701]": 400,
        b"{bad": 400,
        b'{"user_id": 701, "pad": "' + b"x" * 2000 + b'"}': 413,
    }
    for body, status in refused.items():
        response = await post_token(demo_gateway, body)
        assert response.status_code == status, body[:40]
        error = response.json()["error"]  # the internal API's shape, as documented
        assert set(error) == {"code", "message"}, error
        assert error["code"] in {"not_found", "invalid_body", "payload_too_large"}
    granted = await post_token(demo_gateway, b'{"user_id": 702}')
    assert granted.status_code == 200
    assert granted.headers["cache-control"] == "no-store"
    async with open_client(demo_gateway.server.ws_url) as mary:
        hello = await mary.ok("hello", token=granted.json()["token"])
    assert hello["user"]["display_name"] == "Mary"


async def test_the_demo_marketplace_is_seeded_once(
    database_url: str, pool: asyncpg.Pool, demo_gateway: Gateway
) -> None:
    async def count() -> tuple[int, int]:
        row = await pool.fetchrow(
            "SELECT (SELECT count(*) FROM conversations), (SELECT count(*) FROM messages)"
        )
        assert row is not None
        return row[0], row[1]

    first = await count()
    assert first == (len(demo.HISTORY), sum(len(lines) for _, _, lines in demo.HISTORY))
    settings = dataclasses.replace(gateway_settings(database_url), demo=True)
    async with running_gateway(settings):  # a restart
        assert await count() == first
    marketplace = (await get(demo_gateway, "/demo/marketplace")).json()
    assert all(p["image_url"].startswith("/static/demo/") for p in marketplace["products"])
    for product in marketplace["products"]:
        assert (await get(demo_gateway, product["image_url"])).status_code == 200


async def test_the_page_s_own_origin_may_open_a_socket(database_url: str) -> None:
    settings = dataclasses.replace(
        gateway_settings(database_url), allowed_origins=("https://market.example",)
    )
    async with running_gateway(settings) as gateway:
        own = gateway.server.http_url  # http://127.0.0.1:PORT, the Host the client sends
        async with connect(gateway.server.ws_url, origin=own) as socket:  # type: ignore[arg-type]
            await socket.send('{"type":"hello","id":"1","token":"' + gateway.token(701) + '"}')
            assert '"ok"' in str(await socket.recv())
        with pytest.raises(InvalidStatus) as refused:
            await connect(gateway.server.ws_url, origin="http://127.0.0.1:1")  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403

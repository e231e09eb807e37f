"""HTTP: health endpoints and the internal API, through a real uvicorn."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from starlette.routing import Route

from parley import store
from parley.app import create_app
from parley.config import Settings
from parley.validation import (
    MARKETPLACE_TEXT_PATTERN,
    SITE_URL_PATTERN,
    is_marketplace_text,
    is_site_url,
)
from parley.web import openapi
from parley.web.internal import OPERATIONS
from tests.clients import Gateway
from tests.conftest import SERVICE_TOKEN, gateway_settings, running_gateway
from tests.servers import serve
from tests.world import World, table_snapshot


async def test_health_and_readiness_answer(database_url: str) -> None:
    app = create_app(Settings(database_url=database_url))
    async with serve(app) as server, httpx.AsyncClient(base_url=server.http_url) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ready", "database": "ok", "broker": "ok"},
    )


async def test_the_internal_api_is_off_without_a_service_token(database_url: str) -> None:
    async with (
        running_gateway(gateway_settings(database_url)) as gateway,
        httpx.AsyncClient(base_url=gateway.server.http_url) as client,
    ):
        response = await client.put("/internal/users/1", json={"display_name": "x"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "disabled"


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {SERVICE_TOKEN}"])
async def test_the_internal_api_needs_the_service_token(
    backend: tuple[Gateway, httpx.AsyncClient], world: World, header: str | None
) -> None:
    gateway, _ = backend
    before = await table_snapshot(world.pool)
    headers = {} if header is None else {"authorization": header}
    async with httpx.AsyncClient(base_url=gateway.server.http_url, headers=headers) as client:
        response = await client.put("/internal/users/9", json={"display_name": "Mallory"})
    assert response.status_code == 401
    assert await table_snapshot(world.pool) == before


async def test_users_and_products_are_upserted(
    backend: tuple[Gateway, httpx.AsyncClient], world: World
) -> None:
    _, client = backend
    user = await client.put("/internal/users/900", json={"display_name": "Ann", "avatar_url": None})
    assert (user.status_code, user.json()["user"]["display_name"]) == (200, "Ann")
    renamed = await client.put("/internal/users/900", json={"display_name": "Ann B."})
    assert renamed.json()["user"]["display_name"] == "Ann B."
    product = await client.put(
        "/internal/products/9000",
        json={"seller_id": 900, "title": "Bike", "price_cents": 12000, "currency": "EUR"},
    )
    assert product.status_code == 200
    assert product.json()["product"]["status"] == "active"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/internal/products/9001", {"seller_id": 424242, "title": "x"}, 404, "not_found"),
        ("/internal/products/7010", {"seller_id": 701, "title": "mine now"}, 403, "forbidden"),
        ("/internal/products/9002", {"seller_id": 702, "status": "stolen"}, 400, "invalid_body"),
        ("/internal/products/9003", {"title": "no seller"}, 400, "invalid_body"),
        (
            "/internal/products/9004",
            {"seller_id": 702, "currency": "euro"},
            400,
            "invalid_argument",
        ),
        ("/internal/users/abc", {"display_name": "x"}, 404, "not_found"),
    ],
)
async def test_bad_internal_requests_are_refused_and_write_nothing(
    backend: tuple[Gateway, httpx.AsyncClient],
    world: World,
    path: str,
    body: dict[str, object],
    status: int,
    code: str,
) -> None:
    _, client = backend
    before = await table_snapshot(world.pool)
    response = await client.put(path, json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert await table_snapshot(world.pool) == before


async def test_selling_a_product_tells_both_sides_their_conversation_is_archived(
    backend: tuple[Gateway, httpx.AsyncClient], world: World
) -> None:
    gateway, client = backend
    conversation = await world.open()
    async with gateway.connect(world.john.id) as john, gateway.connect(world.mary.id) as mary:
        response = await client.put(
            f"/internal/products/{world.iphone.id}",
            json={"seller_id": world.mary.id, "title": "iPhone 13, 128 GB", "status": "sold"},
        )
        assert response.json()["changed_conversations"] == [conversation.id]
        for device, role in ((john, "buyer"), (mary, "seller")):
            updated = await device.event("conversation.updated")
            assert updated["conversation"]["role"] == role
            assert updated["conversation"]["status"] == "archived"
            assert updated["conversation"]["archived"] is True


async def test_the_marketplace_posts_system_messages_to_both_sides(
    backend: tuple[Gateway, httpx.AsyncClient], world: World
) -> None:
    gateway, client = backend
    conversation = await world.open()
    body = {"client_msg_id": "sold-1", "content": "This item was sold.", "metadata": {}}
    async with gateway.connect(world.john.id) as john, gateway.connect(world.mary.id) as mary:
        created = await client.post(
            f"/internal/conversations/{conversation.id}/messages", json=body
        )
        assert created.status_code == 201
        for device in (john, mary):
            new = await device.event("message.new")
            assert new["message"]["message_type"] == "system"
            assert new["message"]["sender_id"] is None
        again = await client.post(f"/internal/conversations/{conversation.id}/messages", json=body)
        assert (again.status_code, again.json()["replayed"]) == (200, True)
    assert await store.unread_total(world.pool, world.mary.id) == 0
    missing = await client.post("/internal/conversations/999999/messages", json=body)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        # Attack report classes (issue 11): each example given, and variants.
        ("PUT", "/internal/products/9010", {"seller_id": 702, "price_cents": 2**63}, 400,
         "invalid_body"),
        ("PUT", "/internal/products/9011", {"seller_id": 702, "currency": "EUR\n"}, 400,
         "invalid_argument"),
        ("PUT", "/internal/products/9012", {"seller_id": 702, "image_url": "javascript:x()"},
         400, "invalid_argument"),
        ("PUT", "/internal/users/9013", {"avatar_url": "data:text/html,<script>x</script>"},
         400, "invalid_argument"),
        ("PUT", "/internal/users/9014", {"avatar_url": "https://cdn.example/a\x00.png"}, 400,
         "invalid_argument"),
        ("PUT", "/internal/users/9015", {"display_name": "x" * 201}, 400, "invalid_argument"),
        ("PUT", "/internal/users/" + "9" * 5000, {"display_name": "x"}, 404, "not_found"),
        ("PUT", "/internal/users/\u00b2", {"display_name": "x"}, 404, "not_found"),
        ("PUT", "/internal/users/\uff15\uff10\uff10\uff13", {"display_name": "x"}, 404,
         "not_found"),
        ("PUT", "/internal/users/9223372036854775808", {"display_name": "x"}, 404, "not_found"),
        ("PUT", "/internal/users/0702", {"display_name": "x"}, 404, "not_found"),
    ],
)  # fmt: skip
async def test_hostile_internal_requests_get_4xx_and_write_nothing(
    backend: tuple[Gateway, httpx.AsyncClient],
    world: World,
    method: str,
    path: str,
    body: dict[str, object],
    status: int,
    code: str,
) -> None:
    _, client = backend
    before = await table_snapshot(world.pool)
    response = await client.request(method, path, json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert await table_snapshot(world.pool) == before


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b'{"display_name": "\xff\xfe"}', 400, "invalid_body"),
        (b'{"display_name": ' + b"[" * 2000 + b"]" * 2000 + b"}", 400, "invalid_body"),
        (b'{"display_name": "' + b"x" * 70_000 + b'"}', 413, "payload_too_large"),
        (b"x" * 2_000_000, 413, "payload_too_large"),
    ],
    ids=["invalid UTF-8", "nested 2,000 deep", "a name of 70 KB", "a body of 2 MB"],
)
async def test_bodies_that_are_not_json_or_too_big_are_refused(
    backend: tuple[Gateway, httpx.AsyncClient],
    world: World,
    content: bytes,
    status: int,
    code: str,
) -> None:
    _, client = backend
    before = await table_snapshot(world.pool)
    response = await client.put("/internal/users/9020", content=content)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert await table_snapshot(world.pool) == before


def test_the_checked_in_openapi_document_is_the_one_the_code_builds() -> None:
    # As data: a new msgspec may indent differently, and that is no change to the contract.
    checked_in = (Path(__file__).resolve().parent.parent / "docs" / "openapi.json").read_text()
    assert json.loads(checked_in) == json.loads(openapi.dumps(OPERATIONS)), (
        "docs/openapi.json is stale: python3 dev.py openapi > docs/openapi.json"
    )


def test_the_openapi_document_lists_exactly_the_internal_routes() -> None:
    app = create_app(Settings(database_url="postgresql://unused/x"))
    routed = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route) and route.path.startswith("/internal/")
        for method in (route.methods or set()) - {"HEAD"}
        if route.path != "/internal/openapi.json"
    }
    documented = {
        (path, method)
        for path, operations in openapi.document(OPERATIONS)["paths"].items()
        for method in operations
    }
    assert routed == documented


async def test_the_document_is_served_behind_the_service_token(
    backend: tuple[Gateway, httpx.AsyncClient],
) -> None:
    gateway, client = backend
    served = await client.get("/internal/openapi.json")
    assert served.status_code == 200
    assert served.json() == openapi.document(OPERATIONS)
    async with httpx.AsyncClient(base_url=gateway.server.http_url) as anonymous:
        assert (await anonymous.get("/internal/openapi.json")).status_code == 401


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example/a.png",
        "https://cdn.example:8443/a.png?x=1#y",
        "/static/demo/phone.svg",
        "https://exämple.com/a.png",
        "https://cdn.example/a b.png",
        "https://cdn.example/a.png\n",
        "http://cdn.example/a.png",
        "//cdn.example/a.png",
        "/~çB Ì 8",
        "javascript:alert(1)",
        "",
    ],
)
def test_the_documented_url_pattern_is_the_rule_the_server_keeps(url: str) -> None:
    # Python's re, as schemathesis reads the document; its `$` made `\Z` as it does.
    documented = re.search(SITE_URL_PATTERN.removesuffix("$") + r"\Z", url) is not None
    assert documented == is_site_url(url)


@pytest.mark.parametrize(
    "text", ["This item was sold.", " x ", "\u200b", "", "   \n\t", "a\x00b", "\x00"]
)
def test_the_documented_marketplace_text_is_the_rule_the_server_keeps(text: str) -> None:
    documented = re.search(MARKETPLACE_TEXT_PATTERN.removesuffix("$") + r"\Z", text)
    assert (documented is not None) == (is_marketplace_text(text) and "\x00" not in text)


async def test_an_id_written_with_a_zero_fraction_is_the_id_and_other_fractions_are_not(
    backend: tuple[Gateway, httpx.AsyncClient], world: World
) -> None:
    # JSON Schema's "integer" takes 702.0; the document says integer, so the server does too.
    _, client = backend
    body = {"title": "Desk lamp", "currency": "EUR", "price_cents": 4500.0}
    whole = await client.put("/internal/products/7030", json=body | {"seller_id": 702.0})
    assert whole.status_code == 200
    assert whole.json()["product"]["seller_id"] == 702
    assert whole.json()["product"]["price_cents"] == 4500
    for seller in (702.5, 7.02e2 + 1e-9, "702"):
        refused = await client.put("/internal/products/7031", json=body | {"seller_id": seller})
        assert (refused.status_code, refused.json()["error"]["code"]) == (400, "invalid_body")

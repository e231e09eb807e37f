"""Demo mode: a small marketplace seeded once, and tokens for its users on request.

Only for trying Parley out: ``/demo/token`` signs a token for any demo user it is asked for,
so it exists only when PARLEY_DEMO is set (``python3 dev.py run`` sets it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from parley import store
from parley.errors import NotFound, ParleyError
from parley.gateway.auth import issue_token
from parley.models import MessageType
from parley.web.replies import error_response, read_body

if TYPE_CHECKING:
    from parley.store._sql import Connection

log = logging.getLogger(__name__)

TOKEN_TTL_SECONDS = 3600
MAX_TOKEN_BODY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class DemoUser:
    id: int
    display_name: str
    about: str


@dataclass(frozen=True, slots=True)
class DemoProduct:
    id: int
    seller_id: int
    title: str
    price_cents: int
    picture: str  # a file in parley/static/demo/, drawn for the demo: no external URL

    @property
    def image_url(self) -> str:
        return f"/static/demo/{self.picture}"


USERS = (
    DemoUser(701, "John", "buyer: asks about Mary's phone"),
    DemoUser(702, "Mary", "seller: phone and lamp; asks about Eve's bike"),
    DemoUser(703, "Eve", "seller: road bike; asks about Mary's lamp"),
)
PRODUCTS = (
    DemoProduct(7010, 702, "iPhone 13, 128 GB, blue", 45000, "phone.svg"),
    DemoProduct(7020, 703, "Road bike, 56 cm", 32000, "bike.svg"),
    DemoProduct(7030, 702, "Desk lamp, brass", 4500, "lamp.svg"),
)
# John asks Mary about her phone: the conversation the terminal walkthrough uses.
FIRST_CHAT = (701, 7010)
# (product, buyer, [(sender, type, content, metadata)]): the history each conversation starts with.
_Line = tuple[int, MessageType, str, dict[str, object]]
HISTORY: tuple[tuple[int, int, list[_Line]], ...] = (
    (
        7010,
        701,
        [
            (701, "text", "Hi! Is the iPhone still available?", {}),
            (702, "text", "Yes, it is. Battery health is 91%.", {}),
            (701, "offer", "Would you take 420?", {"amount_cents": 42000, "currency": "EUR"}),
        ],
    ),
    (
        7020,
        702,
        [
            (702, "text", "Does the bike come with pedals?", {}),
            (703, "text", "It does, and a bottle cage.", {}),
        ],
    ),
    (7030, 703, [(703, "text", "Could you post the lamp to Berlin?", {})]),
)


async def seed(pool: asyncpg.Pool) -> bool:
    """Create the demo marketplace once; True when it was created now.

    Once means once: the first start claims the seed in ``demo_seed``, and every later start
    leaves the data alone, so what visitors did (an accepted offer that reserved a listing, a
    block) survives restarts. Within the seed, each step that fails is logged and skipped;
    Parley starts anyway. A database seeded before ``demo_seed`` existed is left as it is:
    no listing is set back to active, no blocked conversation is reopened.
    """
    async with pool.acquire() as conn, conn.transaction():
        claimed = await conn.fetchval(
            "INSERT INTO demo_seed DEFAULT VALUES ON CONFLICT DO NOTHING RETURNING seeded_at"
        )
        if claimed is None:
            return False
        for user in USERS:
            await _step(f"user {user.id}", conn, _add_user(conn, user))
        for product in PRODUCTS:
            await _step(f"product {product.id}", conn, _add_product(conn, product))
        for product_id, buyer_id, lines in HISTORY:
            name = f"conversation of {buyer_id} about {product_id}"
            await _step(name, conn, _add_history(conn, product_id, buyer_id, lines))
    return True


async def _step(name: str, conn: Connection, step: Coroutine[Any, Any, None]) -> None:
    """Run one step in a savepoint: a failure undoes that step only, and says so."""
    try:
        async with conn.transaction():
            await step
    except (ParleyError, asyncpg.PostgresError) as error:
        log.warning("demo seed: skipped the %s: %s", name, error)


async def _add_user(conn: Connection, user: DemoUser) -> None:
    if await conn.fetchval("SELECT 1 FROM users WHERE id = $1", user.id) is None:
        await store.upsert_user(conn, user.id, user.display_name)


async def _add_product(conn: Connection, product: DemoProduct) -> None:
    try:
        await store.get_product(conn, product.id)
        return  # there already, perhaps reserved or sold: never set back to active
    except NotFound:
        pass
    await store.upsert_product(
        conn,
        product.id,
        product.seller_id,
        product.title,
        price_cents=product.price_cents,
        currency="EUR",
        image_url=product.image_url,
    )


async def _add_history(
    conn: Connection, product_id: int, buyer_id: int, lines: list[_Line]
) -> None:
    if await store.find_conversation(conn, buyer_id, product_id) is not None:
        return  # there already: its history was written, and it may be blocked since
    conversation, _ = await store.open_conversation(conn, buyer_id, product_id)
    for number, (sender_id, message_type, content, metadata) in enumerate(lines, 1):
        await store.send_message(
            conn,
            conversation_id=conversation.id,
            sender_id=sender_id,
            client_msg_id=f"demo-{product_id}-{buyer_id}-{number}",
            content=content,
            message_type=message_type,
            metadata=metadata,
        )


async def marketplace(request: Request) -> Response:
    """Who the page can log in as, and the listings it can ask about."""
    return JSONResponse(
        {
            "demo": True,
            "users": [
                {"id": user.id, "display_name": user.display_name, "about": user.about}
                for user in USERS
            ],
            "products": [
                {
                    "id": product.id,
                    "seller_id": product.seller_id,
                    "title": product.title,
                    "price_cents": product.price_cents,
                    "currency": "EUR",
                    "image_url": product.image_url,
                }
                for product in PRODUCTS
            ],
        }
    )


async def token(request: Request) -> Response:
    """A token for a demo user: ``POST /demo/token {"user_id": 701}``."""
    body = await read_body(request, MAX_TOKEN_BODY_BYTES)
    if body is None:
        return error_response(413, "payload_too_large", "the body is a user id, nothing more")
    try:
        user_id = json.loads(body)["user_id"]
    except (ValueError, KeyError, TypeError):
        return error_response(400, "invalid_body", 'send {"user_id": <a demo user id>}')
    if type(user_id) is not int or user_id not in {user.id for user in USERS}:
        return error_response(404, "not_found", "not a demo user")
    settings = request.app.state.services.settings
    return JSONResponse(
        {"token": issue_token(settings, user_id, TOKEN_TTL_SECONDS), "user_id": user_id},
        headers={"Cache-Control": "no-store"},
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/demo/marketplace", marketplace),
        Route("/demo/token", token, methods=["POST"]),
    ]

"""Demo mode: a small marketplace seeded once, and tokens for its users on request.

Only for trying Parley out: ``/demo/token`` signs a token for any demo user it is asked for,
so it exists only when PARLEY_DEMO is set (``python3 dev.py run`` sets it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from parley import store
from parley.auth import issue_token
from parley.http import read_body
from parley.models import MessageType

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
    """Create the demo marketplace unless it is there already; True when it was created."""
    for user in USERS:
        await store.upsert_user(pool, user.id, user.display_name)
    for product in PRODUCTS:
        await store.upsert_product(
            pool,
            product.id,
            product.seller_id,
            product.title,
            price_cents=product.price_cents,
            currency="EUR",
            image_url=product.image_url,
        )
    created = False
    for product_id, buyer_id, lines in HISTORY:
        conversation, _ = await store.open_conversation(pool, buyer_id, product_id)
        if conversation.last_seq > 0:
            continue  # seeded on an earlier start: never add the history twice
        created = True
        for number, (sender_id, message_type, content, metadata) in enumerate(lines, 1):
            await store.send_message(
                pool,
                conversation_id=conversation.id,
                sender_id=sender_id,
                client_msg_id=f"demo-{product_id}-{buyer_id}-{number}",
                content=content,
                message_type=message_type,
                metadata=metadata,
            )
    return created


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
        return _refuse(413, "payload_too_large", "the body is a user id, nothing more")
    try:
        user_id = json.loads(body)["user_id"]
    except (ValueError, KeyError, TypeError):
        return _refuse(400, "invalid_body", 'send {"user_id": <a demo user id>}')
    if type(user_id) is not int or user_id not in {user.id for user in USERS}:
        return _refuse(404, "not_found", "not a demo user")
    settings = request.app.state.services.settings
    return JSONResponse(
        {"token": issue_token(settings, user_id, TOKEN_TTL_SECONDS), "user_id": user_id},
        headers={"Cache-Control": "no-store"},
    )


def _refuse(status: int, code: str, message: str) -> Response:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def routes() -> list[BaseRoute]:
    return [
        Route("/demo/marketplace", marketplace),
        Route("/demo/token", token, methods=["POST"]),
    ]

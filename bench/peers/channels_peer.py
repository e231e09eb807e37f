"""The Django Channels peer: an AsyncJsonWebsocketConsumer with a channels_redis layer, on
uvicorn, written as the Channels tutorial shows. It speaks the same JSON
frames as Parley (hello, message.send, ok, message.new) and does the same work for a send:
insert through asyncpg into the same schema (same triggers), deliver to the recipient's group
and the sender's other sockets, ack the sender.

Set up as Parley is where the same knob exists: a pool that does not reset a connection it
gets back (bench/peers/__init__.py), and uvicorn without per-message deflate (bench/pieces.py).
Channels itself hops to a thread on every message it dispatches (`aclose_old_connections`, for
Django's ORM, which this peer does not use); no setting turns that off, so it stays.

    DATABASE_URL=... REDIS_URL=... PEER_JWT_SECRET=... uvicorn \
        bench.peers.channels_peer:application
"""

from __future__ import annotations

import os
from typing import Any

import django
from django.conf import settings

DATABASE_URL = os.environ["DATABASE_URL"]
SECRET = os.environ["PEER_JWT_SECRET"]

# channels_redis's pub/sub layer: its default RedisChannelLayer fell behind under this load and,
# at its default channel capacity of 100, dropped most deliveries (1,463 of 4,591 at 8 clients);
# the pub/sub layer delivered every message, so the peer gets it.
LAYER = os.environ.get("PEER_CHANNEL_LAYER", "channels_redis.pubsub.RedisPubSubChannelLayer")

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only",
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=["channels"],
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": LAYER,
            "CONFIG": {"hosts": [os.environ["REDIS_URL"]], "prefix": "peer-channels"},
        }
    },
)
django.setup()

import asyncpg  # noqa: E402 - Django must be configured before Channels is imported
import jwt  # noqa: E402
from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from bench.peers import rollback_if_in_transaction  # noqa: E402

INSERT = """
    INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type, content,
                          metadata, client_msg_id)
    SELECT c.id, $2, CASE WHEN c.buyer_id = $2 THEN c.seller_id ELSE c.buyer_id END,
           'text', $3, '{}', $4
      FROM conversations c
     WHERE c.id = $1 AND $2 IN (c.buyer_id, c.seller_id)
    RETURNING id, conversation_id, seq, sender_id, recipient_id, message_type, content,
              client_msg_id, created_at
"""

_pool: asyncpg.Pool | None = None


async def pool() -> asyncpg.Pool:
    global _pool
    if _pool is None:
        _pool = await asyncpg.create_pool(
            DATABASE_URL, min_size=2, max_size=20, reset=rollback_if_in_transaction
        )
    return _pool


class ChatConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    user_id: int | None = None

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        if content.get("type") == "hello":
            await self.hello(content)
        elif content.get("type") == "message.send" and self.user_id is not None:
            await self.send_message(content)

    async def hello(self, content: dict[str, Any]) -> None:
        try:
            claims = jwt.decode(
                content.get("token", ""),
                SECRET,
                algorithms=["HS256"],
                options={"require": ["exp", "sub"]},
            )
        except jwt.InvalidTokenError:
            await self.send_json({"type": "error", "id": content.get("id"), "code": "unauthorized"})
            await self.close(code=4401)
            return
        self.user_id = int(claims["sub"])
        await self.channel_layer.group_add(f"user.{self.user_id}", self.channel_name)
        await self.send_json({"type": "ok", "id": content.get("id"), "data": {}})

    async def send_message(self, content: dict[str, Any]) -> None:
        db = await pool()
        try:
            row = await db.fetchrow(
                INSERT,
                content["conversation_id"],
                self.user_id,
                content["content"],
                content["client_msg_id"],
            )
        except asyncpg.UniqueViolationError:
            row = None
        if row is None:
            await self.send_json({"type": "error", "id": content["id"], "code": "not_found"})
            return
        message = dict(row) | {"created_at": row["created_at"].isoformat()}
        event = {"type": "message.new", "message": message, "origin": self.channel_name}
        await self.channel_layer.group_send(f"user.{row['recipient_id']}", event)
        await self.channel_layer.group_send(f"user.{self.user_id}", event)
        await self.send_json({"type": "ok", "id": content["id"], "data": {"message": message}})

    async def message_new(self, event: dict[str, Any]) -> None:
        if event["origin"] != self.channel_name:  # the sender's socket has its reply
            await self.send_json({"type": "message.new", "message": event["message"]})

    async def disconnect(self, code: int) -> None:
        if self.user_id is not None:
            await self.channel_layer.group_discard(f"user.{self.user_id}", self.channel_name)


application = ProtocolTypeRouter({"websocket": URLRouter([path("ws", ChatConsumer.as_asgi())])})

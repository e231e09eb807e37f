"""The python-socketio peer: AsyncServer with AsyncRedisManager on uvicorn, written as its
documentation shows. It does Parley's work for a send: authenticate the socket with the same
JWT, insert through asyncpg into the same schema (same triggers), deliver to the recipient's
room (and the sender's other sockets), ack the sender.

Set up as well as the libraries document, as Parley is: one `emit` to both rooms (one Redis
PUBLISH, not two in turn), and a pool that does not reset a connection it gets back (see
bench/peers/__init__.py). uvicorn runs it without per-message deflate (bench/pieces.py).

    DATABASE_URL=... REDIS_URL=... PEER_JWT_SECRET=... uvicorn bench.peers.socketio_peer:app
"""

from __future__ import annotations

import os
from typing import Any

import asyncpg
import jwt
import socketio

from bench.peers import rollback_if_in_transaction

DATABASE_URL = os.environ["DATABASE_URL"]
REDIS_URL = os.environ["REDIS_URL"]
SECRET = os.environ["PEER_JWT_SECRET"]

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

sio = socketio.AsyncServer(
    async_mode="asgi",
    client_manager=socketio.AsyncRedisManager(REDIS_URL, channel="peer-socketio"),
    cors_allowed_origins=[],
)
pool: asyncpg.Pool | None = None


async def startup() -> None:
    global pool
    pool = await asyncpg.create_pool(
        DATABASE_URL, min_size=2, max_size=20, reset=rollback_if_in_transaction
    )


async def shutdown() -> None:
    if pool is not None:
        await pool.close()


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: dict[str, Any] | None) -> None:
    try:
        claims = jwt.decode(
            (auth or {}).get("token", ""),
            SECRET,
            algorithms=["HS256"],
            options={"require": ["exp", "sub"]},
        )
    except jwt.InvalidTokenError as error:
        raise socketio.exceptions.ConnectionRefusedError("unauthorized") from error
    user_id = int(claims["sub"])
    await sio.save_session(sid, {"user_id": user_id})
    await sio.enter_room(sid, f"user:{user_id}")


@sio.on("send")
async def send(sid: str, data: dict[str, Any]) -> dict[str, Any]:
    assert pool is not None
    session = await sio.get_session(sid)
    user_id = session["user_id"]
    try:
        row = await pool.fetchrow(
            INSERT, data["conversation_id"], user_id, data["content"], data["client_msg_id"]
        )
    except asyncpg.UniqueViolationError:
        return {"error": "duplicate"}
    if row is None:
        return {"error": "not_found"}
    message = dict(row) | {"created_at": row["created_at"].isoformat()}
    rooms = [f"user:{row['recipient_id']}", f"user:{user_id}"]
    await sio.emit("message.new", message, to=rooms, skip_sid=sid)
    return {"message": message}


app = socketio.ASGIApp(sio, on_startup=startup, on_shutdown=shutdown)

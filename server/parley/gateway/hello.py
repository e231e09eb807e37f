"""Who is on a socket: the first frame must be a hello with a valid token, answered with
the user, their badge and the limits; later hellos renew the token (gateway/tokens.py)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from starlette.websockets import WebSocket

from parley import protocol
from parley.errors import (
    ProtocolError,
    TooManyConnectionsError,
    Unauthorized,
    Unavailable,
    UserErased,
)
from parley.fanout.hub import Socket, TooManyConnections
from parley.gateway.shared import Gateway
from parley.gateway.tokens import Watched
from parley.models import User, UserSettings
from parley.protocol import (
    WS_1011_INTERNAL_ERROR,
    WS_4400_HELLO_EXPECTED,
    WS_4401_UNAUTHORIZED,
    WS_4403_USER_ERASED,
    WS_4408_HELLO_TIMEOUT,
    WS_4429_TOO_MANY_CONNECTIONS,
    error_frame,
)
from parley.usecases.chat import Chat


class Session(Socket, Watched, Protocol):
    """A socket as a hello sees it: gateway/session.py's Session, which calls this module
    (a Protocol here, so that neither module imports the other back)."""

    websocket: WebSocket
    gateway: Gateway
    connection_id: str
    user: User
    token_expires_at: float

    @property
    def user_id(self) -> int: ...

    @property
    def chat(self) -> Chat: ...

    async def send_now(self, frame: str) -> None: ...

    async def close_socket(self, code: int, reason: str) -> None: ...


async def first_frame(session: Session) -> bool:
    """Read and check the first frame; answer it, or close. True once authenticated."""
    gateway = session.gateway
    try:
        async with asyncio.timeout(gateway.limits.hello_timeout_seconds):
            message = await session.websocket.receive()
    except TimeoutError:
        await session.close_socket(WS_4408_HELLO_TIMEOUT, "no hello in time")
        return False
    if message["type"] == "websocket.disconnect":
        return False
    text = message.get("text")
    try:
        frame = protocol.parse(text) if text is not None else None
    except ProtocolError:
        frame = None
    if not isinstance(frame, protocol.Hello):
        await session.close_socket(WS_4400_HELLO_EXPECTED, "the first frame must be hello")
        return False
    try:
        identity = await gateway.verifier.verify(frame.token)
    except Unauthorized as error:
        await session.send_now(error_frame(error, frame.id))
        await session.close_socket(WS_4401_UNAUTHORIZED, str(error))
        return False
    # Register first, then read the badge: an event published in between reaches this
    # socket after the hello reply, so the total it carries is never older than them.
    user_id = identity.user_id
    session.user = User(id=user_id, display_name="", avatar_url=None)
    try:
        await gateway.hub.add(session, gateway.limits.connections_per_user)
    except TooManyConnections as error:
        refusal = TooManyConnectionsError(str(error))
        await session.send_now(error_frame(refusal, frame.id))
        await session.close_socket(WS_4429_TOO_MANY_CONNECTIONS, "too many connections")
        return False
    try:
        session.user, unread_total, unread_version, settings = await session.chat.connect(user_id)
    except Unavailable as error:
        await gateway.hub.remove(session)
        await session.send_now(error_frame(error, frame.id))
        await session.close_socket(WS_1011_INTERNAL_ERROR, "database unavailable")
        return False
    except UserErased as error:
        await gateway.hub.remove(session)
        await session.send_now(error_frame(error, frame.id))
        await session.close_socket(WS_4403_USER_ERASED, "this user was erased")
        return False
    except BaseException:
        await gateway.hub.remove(session)
        raise
    hello = hello_data(session, unread_total, unread_version, settings)
    # Straight to the socket: events queued since hub.add follow it through the outbox.
    await session.send_now(protocol.encode(protocol.Ok(id=frame.id, data=hello)).decode())
    session.token_expires_at = identity.expires_at
    gateway.token_deadlines.watch(session)
    return True


def hello_data(
    session: Session, unread_total: int, unread_version: int, settings: UserSettings
) -> protocol.HelloData:
    return protocol.HelloData(
        user=session.user,
        unread_total=unread_total,
        unread_version=unread_version,
        connection_id=session.connection_id,
        limits=session.gateway.public_limits,
        settings=settings,
    )


async def renew(session: Session, token: str) -> protocol.HelloData:
    """A second hello: a fresh token for the same user; the reply is a hello's."""
    identity = await session.gateway.verifier.verify(token)
    if identity.user_id != session.user_id:
        raise Unauthorized("the token is for another user; open another socket for them")
    session.token_expires_at = identity.expires_at
    session.gateway.token_deadlines.watch(session)
    user_id = session.user_id
    session.user, unread_total, unread_version, settings = await session.chat.connect(user_id)
    return hello_data(session, unread_total, unread_version, settings)

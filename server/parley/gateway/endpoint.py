"""The /ws endpoint: a Session on the gateway this process shares (shared.py)."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from parley.gateway.session import Session
from parley.gateway.shared import Gateway


async def websocket_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    websocket = WebSocket(scope, receive, send)
    gateway: Gateway = websocket.app.state.gateway
    await Session(websocket, gateway, receive).run()

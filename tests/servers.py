"""Real uvicorn servers for the tests, in this event loop, on free loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette


class _Server(uvicorn.Server):
    """uvicorn.Server that says when it is listening (or that it gave up starting)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


@dataclass(frozen=True)
class RunningServer:
    host: str
    port: int
    app: Starlette

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"


@contextlib.asynccontextmanager
async def serve(app: Starlette, port: int = 0, **config: object) -> AsyncIterator[RunningServer]:
    """Run ``app`` under uvicorn on 127.0.0.1 and ``port`` (0: a free one) until the block
    exits."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    server = _Server(uvicorn.Config(app, log_level="warning", **config))  # type: ignore[arg-type]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            started = asyncio.create_task(server.listening.wait())
            done, _ = await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                started.cancel()
                task.result()  # re-raise the start-up failure
                raise RuntimeError("uvicorn exited during start-up")
        yield RunningServer(host="127.0.0.1", port=port, app=app)
    finally:
        server.should_exit = True
        async with asyncio.timeout(30):
            await task
        sock.close()

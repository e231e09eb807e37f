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
        self._exit = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()

    def stop(self) -> None:
        """Begin the shutdown now, not at uvicorn's next tick (a tenth of a second, which
        hundreds of tests would each wait for)."""
        self.should_exit = True
        self._exit.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.server_state.connections:
            await super().shutdown(sockets)  # its pause lets open connections finish
            return
        # Nothing connected: uvicorn's steps without the tenth of a second it gives open
        # connections (uvicorn's internals; tests/test_serve.py fails first if they move).
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        await self._wait_tasks_to_complete()
        if not self.force_exit:
            await self.lifespan.shutdown()

    async def main_loop(self) -> None:
        # uvicorn's loop, woken by stop() as well as by its tick.
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await self._exit.wait()


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
        server.stop()
        async with asyncio.timeout(30):
            await task
        sock.close()

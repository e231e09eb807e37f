"""uvicorn's httptools protocol with a deadline for each request's head.

uvicorn keeps a connection open for as long as its client takes to send a request line and
headers (its keep-alive timer only runs between requests), so 1,500 connections that trickle
headers, or never finish an upgrade, held 1,500 file descriptors indefinitely. Here the head
of each request (every header, for a WebSocket upgrade the whole of what it sends) must
arrive within ``header_timeout_seconds`` (a Limits setting, handed over through the ASGI
lifespan state), or the connection is dropped.

Like wsproto.py it relies on names uvicorn does not promise (``connection_made``,
``on_message_begin``, ``on_headers_complete``, ``connection_lost``, ``app_state``, ``loop``,
``transport``); tests/test_wsproto.py checks them. If that test fails after a uvicorn upgrade,
adapt the three hooks below to the new HttpToolsProtocol, or drop the "http" entry of
app.uvicorn_options and put a proxy with a header timeout in front (docs/operations.md).
"""

from __future__ import annotations

import asyncio
from typing import Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# The lifespan state key app.py sets; the default applies until the app has started.
HEADER_TIMEOUT_KEY: Final = "parley.header_timeout_seconds"
DEFAULT_HEADER_TIMEOUT_SECONDS: Final = 5.0


class ParleyHttpProtocol(HttpToolsProtocol):
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head_timer()  # the next request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        timeout = self.app_state.get(HEADER_TIMEOUT_KEY, DEFAULT_HEADER_TIMEOUT_SECONDS)
        self._head_timer = self.loop.call_later(timeout, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.abort()

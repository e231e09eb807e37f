"""The lighter WebSocket protocol: its two small replacements, and the uvicorn internals it
relies on, checked against the uvicorn that is installed. (Every gateway test runs it.)"""

from __future__ import annotations

import asyncio
import inspect
import re
from typing import ClassVar

import pytest
import uvicorn
import websockets.protocol
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from parley.gateway.wsproto import Gate, Inbox, ParleyWebSocketProtocol
from tests.servers import serve


async def test_inbox_hands_out_items_in_order_and_wakes_its_reader() -> None:
    inbox = Inbox()
    assert inbox.empty()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)  # let the reader start waiting
    assert not reader.done()
    inbox.put_nowait({"type": "websocket.connect"})
    inbox.put_nowait({"type": "websocket.receive", "text": "a"})
    assert await asyncio.wait_for(reader, 1) == {"type": "websocket.connect"}
    assert inbox.qsize() == 1
    assert await inbox.get() == {"type": "websocket.receive", "text": "a"}
    assert inbox.empty()


async def test_inbox_refuses_a_second_reader_and_survives_a_cancelled_one() -> None:
    inbox = Inbox()
    first = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one reader"):
        await inbox.get()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    assert await asyncio.wait_for(inbox.get(), 1) == {"type": "websocket.disconnect", "code": 1000}


async def test_gate_behaves_like_an_event() -> None:
    gate = Gate()
    assert not gate.is_set()
    waiters = [asyncio.create_task(gate.wait()) for _ in range(3)]
    cancelled = asyncio.create_task(gate.wait())
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    cancelled.cancel()
    gate.set()
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    assert gate.is_set()
    await asyncio.wait_for(gate.wait(), 1)  # set: returns at once
    gate.clear()
    late = asyncio.create_task(gate.wait())
    await asyncio.sleep(0)
    assert not late.done()
    gate.set()
    await asyncio.wait_for(late, 1)


async def test_the_protocol_swaps_in_both_and_starts_writable() -> None:
    config = uvicorn.Config(app=lambda scope, receive, send: None, ws=ParleyWebSocketProtocol)
    config.load()
    protocol = ParleyWebSocketProtocol(config=config, server_state=ServerState(), app_state={})
    assert isinstance(protocol.queue, Inbox)
    assert isinstance(protocol.writable, Gate)
    assert protocol.writable.is_set()


def test_uvicorn_uses_no_more_of_the_queue_and_event_than_they_offer() -> None:
    source = inspect.getsource(WebSocketsSansIOProtocol)
    queue_calls = set(re.findall(r"self\.queue\.(\w+)", source))
    writable_calls = set(re.findall(r"self\.writable\.(\w+)", source))
    assert queue_calls <= {"put_nowait", "get", "empty", "qsize"}
    assert "get" in queue_calls
    assert writable_calls <= {"set", "clear", "wait", "is_set"}
    assert "wait" in writable_calls
    # request and response: set when the handshake arrives, read only until it is answered.
    assert re.findall(r"self\.request\b.*", source) == ["self.request = event"]
    readers = {
        name
        for name, member in inspect.getmembers(WebSocketsSansIOProtocol, inspect.isfunction)
        if "self.response" in inspect.getsource(member)
    }
    assert readers == {"handle_connect", "send"}
    assert "self.handshake_complete = True" in inspect.getsource(WebSocketsSansIOProtocol.send)


def test_the_state_corked_sends_read_is_still_set_where_uvicorn_sets_it() -> None:
    init = inspect.getsource(WebSocketsSansIOProtocol.__init__)
    for name in ("loop", "close_sent", "disconnected", "initial_response", "conn"):
        assert re.search(rf"self\.{name}(: [^=]+)? = ", init), name
    made = inspect.getsource(WebSocketsSansIOProtocol.connection_made)
    assert "self.transport = transport" in made
    lost = inspect.getsource(WebSocketsSansIOProtocol.connection_lost)
    assert "self.disconnected = True" in lost


def test_the_hooks_of_the_bounded_way_out_are_still_where_uvicorn_ends_a_connection() -> None:
    # keepalive_timeout and run_asgi end a connection with transport.close(), which waits for
    # the buffer to drain; ParleyWebSocketProtocol aborts after them if it does not.
    for method in (WebSocketsSansIOProtocol.keepalive_timeout, WebSocketsSansIOProtocol.run_asgi):
        assert "self.transport.close()" in inspect.getsource(method)
    assert "websocket.disconnect" in inspect.getsource(WebSocketsSansIOProtocol.connection_lost)


class _CountingProtocol(ParleyWebSocketProtocol):
    """Counts the writes to the socket from the handshake's answer on."""

    writes: ClassVar[list[int]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert isinstance(transport, asyncio.Transport)
        write = transport.write

        def counted(data: bytes | bytearray | memoryview) -> None:
            if self.handshake_complete:
                _CountingProtocol.writes.append(len(data))
            write(data)

        transport.write = counted  # type: ignore[method-assign]


async def test_frames_sent_in_one_turn_leave_in_one_write_in_order_before_the_close() -> None:
    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        for n in range(3):  # one turn of the loop: no await that suspends in between
            await websocket.send_text(f"frame {n}")
        await websocket.close(4000, "done")

    _CountingProtocol.writes.clear()
    starlette = Starlette(routes=[WebSocketRoute("/ws", app)])
    async with (
        serve(
            starlette, ws=_CountingProtocol, ws_per_message_deflate=False, lifespan="off"
        ) as server,
        connect(server.ws_url, proxy=None) as client,
    ):
        await client.send("go")
        received = [await asyncio.wait_for(client.recv(), 5) for _ in range(3)]
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(client.recv(), 5)
    assert received == ["frame 0", "frame 1", "frame 2"]
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "done")
    # After the 101, one write: the three frames (2-byte header, 7-byte text) and, framed in
    # the same turn, the close (header, code, "done") after them.
    assert _CountingProtocol.writes[1:] == [3 * (2 + 7) + (2 + 2 + 4)]


def test_the_http_protocol_hooks_httpproto_uses_are_still_there() -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    for name in ("connection_made", "on_message_begin", "on_headers_complete", "connection_lost"):
        assert callable(getattr(HttpToolsProtocol, name)), name
    init = inspect.getsource(HttpToolsProtocol.__init__)
    for name in ("app_state", "loop"):
        assert re.search(rf"self\.{name}(: [^=]+)? = ", init), name
    assert "self.transport = transport" in inspect.getsource(HttpToolsProtocol.connection_made)
    # The head of a request ends where the upgrade to a WebSocket is decided.
    assert "should_upgrade" in inspect.getsource(HttpToolsProtocol.on_headers_complete)


class _ShutdownProtocol(ParleyWebSocketProtocol):
    """Shuts down as the client's close arrives: the server's shutdown, landing in the turn
    between that close and the transport being gone (a client that stops reading holds that
    window open for as long as the buffer does not drain)."""

    raised: ClassVar[list[BaseException]] = []
    shut_down: ClassVar[asyncio.Event]

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        closing = self.handshake_complete and self.conn.state is not websockets.protocol.OPEN
        if closing and not self.shut_down.is_set():
            try:
                self.shutdown()  # as uvicorn's Server.shutdown calls it, for each connection
            except BaseException as error:
                self.raised.append(error)
            self.shut_down.set()


async def test_a_shutdown_that_meets_a_closing_handshake_ends_it_without_an_error() -> None:
    # The client's close was answered and the transport is closing, but the connection is not
    # lost yet: uvicorn's own shutdown frames a second close there, websockets raises
    # InvalidState, and the server's shutdown of the connections after it never runs.
    _ShutdownProtocol.raised.clear()
    _ShutdownProtocol.shut_down = asyncio.Event()

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        await _ShutdownProtocol.shut_down.wait()

    starlette = Starlette(routes=[WebSocketRoute("/ws", app)])
    async with serve(starlette, ws=_ShutdownProtocol, lifespan="off") as server:
        client = await connect(server.ws_url, proxy=None)
        await asyncio.wait_for(client.close(1000, "bye"), 5)
        await asyncio.wait_for(_ShutdownProtocol.shut_down.wait(), 5)
    assert _ShutdownProtocol.raised == []
    assert (client.close_code, client.close_reason) == (1000, "bye")  # the echo came back

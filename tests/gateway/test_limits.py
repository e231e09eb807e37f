"""Limits: floods are refused without writing, and a client that stops reading is cut off."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket

import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.uri import parse_uri

from tests.clients import Client
from tests.conftest import gateway_settings, running_gateway
from tests.world import World


async def test_a_message_flood_is_rate_limited_and_the_excess_not_written(
    database_url: str, world: World
) -> None:
    settings = gateway_settings(database_url, messages_per_second=1.0, message_burst=5)
    conversation = await world.open()
    async with running_gateway(settings) as gateway, gateway.connect(world.john.id) as john:
        replies = [
            await john.request(
                "message.send", conversation_id=conversation.id, client_msg_id=f"f{n}", content="!"
            )
            for n in range(30)
        ]
        accepted = [r for r in replies if r["type"] == "ok"]
        refused = [r for r in replies if r["type"] == "error"]
        assert len(accepted) in (5, 6)  # the burst, plus at most one token refilled meanwhile
        assert {r["code"] for r in refused} == {"rate_limited"}
        assert all(r["retryable"] and r["retry_after_ms"] > 0 for r in refused)
        # still usable for everything else
        await john.ok("conversation.get", conversation_id=conversation.id)
    stored = await world.pool.fetchval("SELECT count(*) FROM messages")
    assert stored == len(accepted)


@pytest.mark.parametrize("flood", [b"{bad", "{bad"], ids=["binary frames", "broken JSON"])
async def test_frames_that_fail_to_parse_count_against_the_frame_rate(
    database_url: str, world: World, flood: str | bytes
) -> None:
    settings = gateway_settings(database_url, frames_per_second=1.0, frame_burst=10)
    async with running_gateway(settings) as gateway, gateway.connect(world.john.id) as john:
        for _ in range(40):
            await john.send_raw(flood)
        errors = [await john.wait_for(lambda f: f["type"] == "error") for _ in range(40)]
        codes = [e["code"] for e in errors]
        assert codes.count("rate_limited") >= 29, codes  # the burst, plus a token or two
        assert codes[0] in ("binary_frame", "bad_json")
        assert codes[:10] == [codes[0]] * 10, "the burst is answered as usual"


async def test_connections_per_user_are_capped(database_url: str, world: World) -> None:
    settings = gateway_settings(database_url, connections_per_user=2)
    async with (
        running_gateway(settings) as gateway,
        gateway.connect(world.john.id),
        gateway.connect(world.john.id),
        gateway.connect(world.mary.id),  # other users are not affected
    ):
        connection = await connect(gateway.server.ws_url)
        third = Client(connection)
        try:
            error = await third.error("hello", token=gateway.token(world.john.id))
            assert error["code"] == "too_many_connections"
            assert await third.wait_closed() == 4429
        finally:
            await third.close()
        assert gateway.hub.sockets_of(world.john.id) == 2


async def test_a_client_that_stops_reading_is_cut_off_and_others_keep_flowing(
    database_url: str, world: World
) -> None:
    settings = gateway_settings(
        database_url,
        send_queue=4,
        messages_per_second=1000.0,
        message_burst=1000,
        frames_per_second=1000.0,
        frame_burst=1000,
    )
    conversation = await world.open()
    big = "€" * 4000  # 12 KB a message, so buffers fill after a few dozen
    async with (
        running_gateway(settings) as gateway,
        gateway.connect(world.john.id) as john,
        gateway.connect(world.mary.id) as mary_phone,
    ):
        # Mary's tablet says hello, then never reads again: a tiny receive buffer and a
        # client-side queue of one frame stall its TCP window almost at once.
        stalled_socket = socket.socket()
        stalled_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled_socket.connect((gateway.server.host, gateway.server.port))
        tablet = await connect(gateway.server.ws_url, sock=stalled_socket, max_queue=1)
        await tablet.send(json.dumps({"type": "hello", "id": "h", "token": gateway.token(702)}))
        assert json.loads(await tablet.recv())["type"] == "ok"
        assert gateway.hub.sockets_of(world.mary.id) == 2

        # Kernel buffers on loopback grow to megabytes before the server's writes block, so
        # send until the server cuts the tablet off (bounded: 12 MB at most).
        sends = 0
        while gateway.gateway.slow_consumers_closed == 0:
            assert sends < 1000, "the stalled client was never cut off"
            await john.ok(
                "message.send",
                conversation_id=conversation.id,
                client_msg_id=f"b{sends}",
                content=big,
            )
            sends += 1
        # The healthy device got every message, in order, while the tablet was stuck.
        seqs = [(await mary_phone.event("message.new"))["message"]["seq"] for _ in range(sends)]
        assert seqs == list(range(1, sends + 1))
        assert gateway.gateway.slow_consumers_closed == 1
        await gateway.until_sockets(world.mary.id, 1)
        print(f"\nstalled client cut off after {sends} messages of 12 KB")

        # When the tablet finally reads, it finds its connection ended; a reconnect and a
        # sync would give it everything (tests/gateway/test_dispatch.py covers sync).
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(10):
                async for _ in tablet:
                    pass
        # 4420 when the close frame got through once the window opened; a connection that
        # stays stuck past the server's close timeout is dropped without one (1006).
        assert tablet.close_code in (4420, 1006)


async def test_a_socket_that_never_answers_pings_is_closed(database_url: str, world: World) -> None:
    settings = dataclasses.replace(
        gateway_settings(database_url), ping_interval_seconds=0.2, ping_timeout_seconds=0.3
    )
    async with running_gateway(settings) as gateway:
        # A client built on the sans-I/O protocol, so nothing answers pings behind our back.
        client = ClientProtocol(parse_uri(gateway.server.ws_url))
        reader, writer = await asyncio.open_connection(gateway.server.host, gateway.server.port)
        client.send_request(client.connect())
        writer.write(b"".join(client.data_to_send()))
        response = await reader.readuntil(b"\r\n\r\n")
        client.receive_data(response)
        hello = json.dumps({"type": "hello", "id": "h", "token": gateway.token(world.john.id)})
        client.send_text(hello.encode())
        writer.write(b"".join(client.data_to_send()))
        await writer.drain()
        received = b""
        async with asyncio.timeout(5):
            while b'"type":"ok"' not in received:
                received += await reader.read(65536)
        assert gateway.hub.sockets_of(world.john.id) == 1

        # From here on we read (so the server's pings arrive) but never answer them.
        async with asyncio.timeout(5):
            while await reader.read(65536):
                pass
        writer.close()
        await gateway.until_sockets(world.john.id, 0)


async def test_a_client_that_reads_all_the_time_is_never_cut_off_however_much_it_pipelines(
    database_url: str, world: World
) -> None:
    settings = gateway_settings(database_url, frames_per_second=1e6, frame_burst=1_000_000)
    async with running_gateway(settings) as gateway, gateway.connect(world.john.id) as john:
        # 3,000 frames that need no database work, sent back to back; the client's reader
        # takes every reply as it comes.
        for n in range(3000):
            await john.send_raw(f'{{"type":"typing","conversation_id":424242,"id":"{n}",')
        for _ in range(3000):
            assert (await john.wait_for(lambda f: f["type"] == "error"))["code"] == "bad_json"
        assert not john.closed.is_set()
        assert gateway.gateway.slow_consumers_closed == 0


def server_side_sockets(port: int) -> list[str]:
    """This process's connected TCP sockets whose local end is the server's port (the server
    runs in the test's own process, so these are its file descriptors)."""
    return [
        f"fd {c.fd} {c.status} to {c.raddr}"
        for c in psutil.Process().net_connections("tcp")
        if c.laddr.port == port and c.status != psutil.CONN_LISTEN
    ]


async def test_cut_off_sockets_are_gone_in_bounded_time_and_count_until_then(
    database_url: str, world: World
) -> None:
    settings = gateway_settings(database_url, send_queue=4, connections_per_user=30)
    big = json.dumps({"type": "test.big", "fill": "x" * 200_000})
    stalled = []
    async with running_gateway(settings) as gateway, gateway.connect(world.mary.id) as phone:
        for n in range(25):
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.connect((gateway.server.host, gateway.server.port))
            tablet = await connect(gateway.server.ws_url, sock=raw, max_queue=1)
            await tablet.send(json.dumps({"type": "hello", "id": "h", "token": gateway.token(702)}))
            assert json.loads(await tablet.recv())["type"] == "ok"
            stalled.append(tablet)  # and never read again
            while gateway.gateway.slow_consumers_closed == n:
                await gateway.events.publish([world.mary.id], big.encode())
                await phone.event("test.big")
        # All 25 were cut off; those still on their way out still count for Mary.
        assert gateway.gateway.slow_consumers_closed == 25
        assert gateway.hub.sockets_of(world.mary.id) > 1
        await gateway.until_sockets(world.mary.id, 1, within=10)
        # Gone means gone: no server-side socket left but the phone's.
        assert len(server_side_sockets(gateway.server.port)) == 1, server_side_sockets(
            gateway.server.port
        )
        for tablet in stalled:
            tablet.transport.abort()


async def test_connections_that_never_finish_their_headers_are_dropped(
    database_url: str, world: World
) -> None:
    settings = gateway_settings(database_url, header_timeout_seconds=0.5)
    async with running_gateway(settings) as gateway:
        host, port = gateway.server.host, gateway.server.port
        slow = [await asyncio.open_connection(host, port) for _ in range(50)]
        for n, (_, writer) in enumerate(slow):
            # Half stop mid-header; half get as far as a whole upgrade request but its end.
            writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
            if n % 2:
                writer.write(b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Ver")
            await writer.drain()

        async def trickle() -> bytes:
            # One byte at a time keeps the connection busy, not within its deadline.
            reader, writer = await asyncio.open_connection(host, port)
            try:
                for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 100:
                    writer.write(bytes([byte]))
                    with contextlib.suppress(ConnectionError):
                        await writer.drain()
                    with contextlib.suppress(TimeoutError):
                        return await asyncio.wait_for(reader.read(1), 0.05)
                return b"still open"
            finally:
                writer.close()

        async with asyncio.timeout(10):
            ends = [await reader.read() for reader, _ in slow]
            assert ends == [b""] * 50, "dropped without a response"
            assert await trickle() == b""
        # An ordinary request, and an ordinary socket, still go through.
        async with gateway.connect(world.john.id) as john:
            await john.ok("conversation.list")
        assert server_side_sockets(port) == []
        for _, writer in slow:
            writer.close()

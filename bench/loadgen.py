"""The load generator: WebSocket senders and recipients, timing every message.

Each sender is one socket of a buyer; each recipient a socket of the matching seller. A
sender sends, waits for its ack, and sends again (flat out), or sends on a schedule (fixed
rate, open loop). send→ack is timed on the sender, send→deliver on the recipient, both with
this process's monotonic clock. Targets differ only in how a frame looks (adapters below).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from parley.validation import MAX_SYNC_CONVERSATIONS

_encode = msgspec.json.Encoder().encode
RECEIPT_WAIT_SECONDS = 0.5  # as the SDKs wait before message.received
_decode = msgspec.json.Decoder().decode


class Target(Protocol):
    """How to talk to one server: its URL, its handshake, its send, and what a frame is."""

    @property
    def url(self) -> str: ...

    async def handshake(self, connection: ClientConnection, user_id: int) -> None:
        """Authenticate a fresh socket as ``user_id``; raise if the server refuses."""

    def send(self, frame_id: str, conversation_id: int, client_msg_id: str) -> str: ...

    def classify(self, raw: str | bytes) -> tuple[str, str | None, str | None]:
        """("reply", request id, error code or None), ("delivered", client_msg_id, None),
        ("ping", what to answer, None) or ("other", None, None)."""


def check_hello_reply(reply: dict[str, Any]) -> None:
    if reply.get("type") != "ok":
        raise RuntimeError(f"hello refused: {reply}")


@dataclass
class ParleyTarget:
    url: str
    token: Callable[[int], str]

    def hello(self, user_id: int) -> str:
        return _encode({"type": "hello", "id": "h", "token": self.token(user_id)}).decode()

    async def handshake(self, connection: ClientConnection, user_id: int) -> None:
        await connection.send(self.hello(user_id))
        check_hello_reply(_decode(await connection.recv()))

    def send(self, frame_id: str, conversation_id: int, client_msg_id: str) -> str:
        return _encode(
            {
                "type": "message.send",
                "id": frame_id,
                "conversation_id": conversation_id,
                "client_msg_id": client_msg_id,
                "content": "Is this still available?",
            }
        ).decode()

    def received(self, raw: str | bytes) -> tuple[int, int]:
        """(conversation, seq) of a message.new, to confirm as the SDKs do."""
        message = _decode(raw)["message"]
        return message["conversation_id"], message["seq"]

    def receipts(self, up_to: dict[int, int], frame_id: str) -> str:
        """The message.received frame confirming each conversation up to its seq, in one
        frame as the SDKs send them."""
        frame = {"type": "message.received", "id": frame_id, "conversations": up_to}
        return _encode(frame).decode()

    def classify(self, raw: str | bytes) -> tuple[str, str | None, str | None]:
        frame = _decode(raw)
        kind = frame.get("type")
        if kind == "ok":
            return "reply", frame["id"], None
        if kind == "error":
            return "reply", frame["id"], frame["code"]
        if kind == "message.new":
            return "delivered", frame["message"]["client_msg_id"], None
        return "other", None, None


@dataclass
class SocketIOTarget:
    """Socket.IO v5 over its WebSocket transport (Engine.IO v4 framing), by hand."""

    base: str  # ws://host:port
    token: Callable[[int], str]
    _acks: dict[int, str] = field(default_factory=dict)
    _next_ack: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def url(self) -> str:
        return f"{self.base}/socket.io/?EIO=4&transport=websocket"

    async def handshake(self, connection: ClientConnection, user_id: int) -> None:
        opened = await connection.recv()
        if not str(opened).startswith("0"):
            raise RuntimeError(f"not an Engine.IO open packet: {opened!r}")
        await connection.send("40" + _encode({"token": self.token(user_id)}).decode())
        while True:
            packet = str(await connection.recv())
            if packet.startswith("40"):
                return
            if packet.startswith("44"):
                raise RuntimeError(f"connect refused: {packet}")
            if packet == "2":
                await connection.send("3")

    def send(self, frame_id: str, conversation_id: int, client_msg_id: str) -> str:
        ack = next(self._next_ack)
        self._acks[ack] = frame_id
        payload = [
            "send",
            {
                "conversation_id": conversation_id,
                "client_msg_id": client_msg_id,
                "content": "Is this still available?",
            },
        ]
        return f"42{ack}" + _encode(payload).decode()

    def classify(self, raw: str | bytes) -> tuple[str, str | None, str | None]:
        packet = raw.decode() if isinstance(raw, bytes) else raw
        if packet == "2":
            return "ping", "3", None
        if packet.startswith("43"):
            start = packet.index("[")
            ack = int(packet[2:start])
            [data] = _decode(packet[start:])
            return "reply", self._acks.pop(ack, None), data.get("error")
        if packet.startswith("42"):
            event, data = _decode(packet[2:])
            if event == "message.new":
                return "delivered", data["client_msg_id"], None
        return "other", None, None


@dataclass
class Measurements:
    sent: int = 0
    acked: int = 0
    delivered: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    ack_seconds: list[float] = field(default_factory=list)
    deliver_seconds: list[float] = field(default_factory=list)
    sent_at: dict[str, float] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # CPU seconds the server process used while it was driven (user + system), when known.
    server_cpu_seconds: float | None = None

    async def settle(self, within: float) -> None:
        """Wait for deliveries still in flight after the last send (at most ``within`` s)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while self.delivered < self.acked:
                    self.changed.clear()
                    await self.changed.wait()

    @property
    def elapsed(self) -> float:
        return self.finished - self.started

    @property
    def throughput(self) -> float:
        return self.acked / self.elapsed if self.elapsed else 0.0


class Socket:
    """One connection: a reader task routes replies to waiting sends and times deliveries."""

    def __init__(self, target: Target, measurements: Measurements, receipts: bool = False) -> None:
        self.target = target
        self.m = measurements
        self.connection: ClientConnection | None = None
        self._waiting: dict[str, asyncio.Future[str | None]] = {}
        self._reader: asyncio.Task[None] | None = None
        # Confirm deliveries as the SDKs do: per conversation, RECEIPT_WAIT_SECONDS later.
        self._receipts = receipts
        self._to_confirm: dict[int, int] = {}
        self._receipt_timer: asyncio.TimerHandle | None = None
        self._receipt_writes: set[asyncio.Task[None]] = set()

    async def open(self, user_id: int) -> None:
        # proxy=None: a loopback benchmark; looking up proxy settings per socket costs the storm.
        self.connection = await connect(
            self.target.url, max_size=2**20, open_timeout=30, proxy=None
        )
        await self.target.handshake(self.connection, user_id)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.connection is not None
        try:
            async for raw in self.connection:
                kind, key, code = self.target.classify(raw)
                if kind == "reply" and key is not None:
                    future = self._waiting.pop(key, None)
                    if future is not None:
                        future.set_result(code)
                elif kind == "delivered" and key is not None:
                    sent = self.m.sent_at.get(key)
                    if sent is not None:
                        self.m.deliver_seconds.append(time.perf_counter() - sent)
                        self.m.delivered += 1
                        self.m.changed.set()
                    if self._receipts:
                        self._confirm(raw)
                elif kind == "ping" and key is not None:
                    await self.connection.send(key)
        except ConnectionClosed:
            pass

    def _confirm(self, raw: str | bytes) -> None:
        conversation_id, seq = cast(ParleyTarget, self.target).received(raw)
        if seq > self._to_confirm.get(conversation_id, 0):
            self._to_confirm[conversation_id] = seq
        if self._receipt_timer is None:
            loop = asyncio.get_running_loop()
            self._receipt_timer = loop.call_later(RECEIPT_WAIT_SECONDS, self._send_receipts)

    def _send_receipts(self) -> None:
        self._receipt_timer = None
        batch = list(self._to_confirm.items())
        self._to_confirm.clear()
        target = cast(ParleyTarget, self.target)
        frames = [
            target.receipts(dict(batch[start : start + MAX_SYNC_CONVERSATIONS]), f"r{next(_ids)}")
            for start in range(0, len(batch), MAX_SYNC_CONVERSATIONS)
        ]
        task = asyncio.create_task(self._write_receipts(frames))
        self._receipt_writes.add(task)
        task.add_done_callback(self._receipt_writes.discard)

    async def _write_receipts(self, frames: list[str]) -> None:
        # Their ok replies match no waiting send, and are dropped by the reader.
        with contextlib.suppress(ConnectionClosed):
            for frame in frames:
                if self.connection is not None:
                    await self.connection.send(frame)

    async def send(self, conversation_id: int, client_msg_id: str) -> None:
        assert self.connection is not None
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._waiting[client_msg_id] = future
        started = time.perf_counter()
        self.m.sent_at[client_msg_id] = started
        self.m.sent += 1
        await self.connection.send(self.target.send(client_msg_id, conversation_id, client_msg_id))
        code = await future
        if code is not None:
            self.m.errors[code] += 1
            return
        self.m.ack_seconds.append(time.perf_counter() - started)
        self.m.acked += 1

    async def close(self) -> None:
        if self._receipt_timer is not None:
            self._receipt_timer.cancel()
        if self.connection is not None:
            await self.connection.close()
        if self._reader is not None:
            await self._reader


_ids = itertools.count()


async def drive(
    senders: list[tuple[Socket, list[int]]],
    seconds: float,
    rate: float | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Send from every socket for ``seconds``: flat out, or ``rate`` messages/s in all."""
    m = senders[0][0].m
    deadline = time.perf_counter() + seconds
    m.started = time.perf_counter()

    async def flat_out(socket: Socket, conversations: list[int]) -> None:
        for conversation_id in itertools.cycle(conversations):
            if time.perf_counter() >= deadline:
                return
            await socket.send(conversation_id, f"b{next(_ids)}")
            if on_progress is not None:
                on_progress(1)

    # Fixed rate: each sender sends at Poisson-distributed moments (exponential gaps), as
    # pgbench --rate schedules its transactions, so the senders do not fire in lockstep.
    arrivals = random.Random(5)

    async def scheduled(socket: Socket, conversations: list[int], interval: float) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        next_at = time.perf_counter() + arrivals.expovariate(1 / interval)
        for conversation_id in itertools.cycle(conversations):
            now = time.perf_counter()
            if now >= deadline:
                break
            if next_at > now:
                await asyncio.sleep(next_at - now)  # open loop: the schedule, not the acks
            task = asyncio.create_task(socket.send(conversation_id, f"b{next(_ids)}"))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            next_at += arrivals.expovariate(1 / interval)
        await asyncio.gather(*in_flight)

    if rate is None:
        await asyncio.gather(*(flat_out(s, c) for s, c in senders))
    else:
        interval = len(senders) / rate
        await asyncio.gather(*(scheduled(s, c, interval) for s, c in senders))
    m.finished = time.perf_counter()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def stalled_socket(target: Target, user_id: int) -> ClientConnection:
    """A socket that says hello and then never reads again: a tiny receive window and a
    client-side queue of one frame stall its TCP window almost at once."""
    parts = urlsplit(target.url)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect((parts.hostname or "127.0.0.1", parts.port or 80))
    connection = await connect(target.url, sock=raw, max_queue=1, proxy=None)
    await target.handshake(connection, user_id)
    return connection


class IdleDevice(asyncio.Protocol):
    """A device that connects, says hello and then only answers pings: S4's ten thousand.

    websockets' sans-I/O client on a bare asyncio protocol, without the reader task and
    keepalive timer each full client carries, so that the storm measures the server more
    than the load generator sharing its cores.
    """

    def __init__(self, url: str, hello: str) -> None:
        self._conn = ClientProtocol(parse_uri(url))
        self._hello = hello
        self._transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, url: str, hello: str) -> IdleDevice:
        parts = urlsplit(url)
        loop = asyncio.get_running_loop()
        _, device = await loop.create_connection(
            lambda: cls(url, hello), parts.hostname or "127.0.0.1", parts.port or 80
        )
        await asyncio.wait_for(device.ready, 30)
        return device

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._conn.send_request(self._conn.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self._conn.receive_data(data)
        for event in self._conn.events_received():
            if isinstance(event, Response):
                if self._conn.handshake_exc is not None:
                    self._fail(self._conn.handshake_exc)
                else:
                    self._conn.send_text(self._hello.encode())
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                try:
                    check_hello_reply(_decode(event.data))
                except RuntimeError as error:
                    self._fail(error)
                else:
                    if not self.ready.done():
                        self.ready.set_result(None)
        self._flush()  # the sans-I/O protocol answers pings by itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("closed before the hello was answered"))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, error: BaseException) -> None:
        if not self.ready.done():
            self.ready.set_exception(error)

    def _flush(self) -> None:
        assert self._transport is not None
        for chunk in self._conn.data_to_send():
            if chunk:
                self._transport.write(chunk)

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
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class Target(Protocol):
    """How to talk to one server: its URL, its hello, its send, its events."""

    url: str

    def hello(self, user_id: int) -> bytes | None: ...

    def send(self, frame_id: str, conversation_id: int, client_msg_id: str) -> bytes: ...

    def reply_id(self, frame: dict[str, Any]) -> str | None:
        """The request id a reply answers, or None for anything else."""

    def error_code(self, frame: dict[str, Any]) -> str | None: ...

    def delivered(self, frame: dict[str, Any]) -> str | None:
        """The client_msg_id of a delivered message, or None for anything else."""


@dataclass
class ParleyTarget:
    url: str
    token: Callable[[int], str]

    def hello(self, user_id: int) -> bytes | None:
        return _encode({"type": "hello", "id": "h", "token": self.token(user_id)})

    def send(self, frame_id: str, conversation_id: int, client_msg_id: str) -> bytes:
        return _encode(
            {
                "type": "message.send",
                "id": frame_id,
                "conversation_id": conversation_id,
                "client_msg_id": client_msg_id,
                "content": "Is this still available?",
            }
        )

    def reply_id(self, frame: dict[str, Any]) -> str | None:
        return frame.get("id") if frame.get("type") in ("ok", "error") else None

    def error_code(self, frame: dict[str, Any]) -> str | None:
        return frame.get("code") if frame.get("type") == "error" else None

    def delivered(self, frame: dict[str, Any]) -> str | None:
        if frame.get("type") == "message.new":
            return str(frame["message"]["client_msg_id"])
        return None


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

    def __init__(self, target: Target, measurements: Measurements) -> None:
        self.target = target
        self.m = measurements
        self.connection: ClientConnection | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def open(self, user_id: int) -> None:
        self.connection = await connect(self.target.url, max_size=2**20, open_timeout=30)
        hello = self.target.hello(user_id)
        if hello is not None:
            await self.connection.send(hello.decode())
            reply = _decode(await self.connection.recv())
            if self.target.error_code(reply) is not None:
                raise RuntimeError(f"hello refused: {reply}")
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.connection is not None
        try:
            async for raw in self.connection:
                frame = _decode(raw)
                frame_id = self.target.reply_id(frame)
                if frame_id is not None:
                    future = self._waiting.pop(frame_id, None)
                    if future is not None:
                        future.set_result(frame)
                    continue
                client_msg_id = self.target.delivered(frame)
                if client_msg_id is not None:
                    sent = self.m.sent_at.get(client_msg_id)
                    if sent is not None:
                        self.m.deliver_seconds.append(time.perf_counter() - sent)
                        self.m.delivered += 1
                        self.m.changed.set()
        except ConnectionClosed:
            pass

    async def send(self, conversation_id: int, client_msg_id: str) -> None:
        assert self.connection is not None
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[client_msg_id] = future
        started = time.perf_counter()
        self.m.sent_at[client_msg_id] = started
        self.m.sent += 1
        await self.connection.send(
            self.target.send(client_msg_id, conversation_id, client_msg_id).decode()
        )
        reply = await future
        code = self.target.error_code(reply)
        if code is not None:
            self.m.errors[code] += 1
            return
        self.m.ack_seconds.append(time.perf_counter() - started)
        self.m.acked += 1

    async def close(self) -> None:
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

    async def scheduled(socket: Socket, conversations: list[int], interval: float) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        next_at = time.perf_counter()
        for conversation_id in itertools.cycle(conversations):
            now = time.perf_counter()
            if now >= deadline:
                break
            if next_at > now:
                await asyncio.sleep(next_at - now)  # open loop: the schedule, not the acks
            task = asyncio.create_task(socket.send(conversation_id, f"b{next(_ids)}"))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            next_at += interval
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
    import socket as socket_module
    from urllib.parse import urlsplit

    parts = urlsplit(target.url)
    raw = socket_module.socket()
    raw.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, 4096)
    raw.connect((parts.hostname or "127.0.0.1", parts.port or 80))
    connection = await connect(target.url, sock=raw, max_queue=1)
    hello = target.hello(user_id)
    if hello is not None:
        await connection.send(hello.decode())
        await connection.recv()
    return connection

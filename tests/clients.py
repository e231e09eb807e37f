"""A real WebSocket client for the tests: replies matched by id, events awaited with timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from parley.config import Settings
from parley.fanout.events import Events
from parley.fanout.hub import Hub
from parley.gateway.auth import issue_token
from parley.gateway.session import Session
from parley.gateway.shared import Gateway as ServerGateway
from parley.protocol import WS_1012_SERVICE_RESTART
from parley.usecases.chat import Chat
from parley_client import (
    ConversationEvent,
    Event,
    MessageEvent,
    ParleyClient,
    StatusEvent,
)
from tests.servers import RunningServer
from tests.world import client_msg_id

Frame = dict[str, Any]
TIMEOUT = 5.0
SDK_TIMEOUT = 15.0  # a reconnect and a sync fit in it


class Client:
    """One socket. A reader task keeps every frame until a test takes it."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.frames: list[Frame] = []
        self.received: list[Frame] = []  # every frame, in arrival order, never taken
        self.closed = asyncio.Event()
        self._arrived = asyncio.Condition()
        self._ids = itertools.count(1)
        self._reader = asyncio.create_task(self._read())
        self.user: Frame = {}

    async def _read(self) -> None:
        try:
            async for raw in self.connection:
                frame = json.loads(raw)
                self.received.append(frame)
                async with self._arrived:
                    self.frames.append(frame)
                    self._arrived.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            async with self._arrived:
                self._arrived.notify_all()

    async def send_raw(self, data: str | bytes) -> None:
        await self.connection.send(data)

    async def wait_for(self, matches: Callable[[Frame], bool], within: float = TIMEOUT) -> Frame:
        """Take the first frame that matches, waiting for it if need be."""
        async with asyncio.timeout(within), self._arrived:
            while True:
                for index, frame in enumerate(self.frames):
                    if matches(frame):
                        return self.frames.pop(index)
                if self.closed.is_set():
                    raise AssertionError(f"socket closed ({self.close_code}) while waiting")
                await self._arrived.wait()

    async def request(self, frame_type: str, **fields: Any) -> Frame:
        """Send a request and return its reply (ok or error)."""
        frame_id = str(next(self._ids))
        await self.send_raw(json.dumps({"type": frame_type, "id": frame_id, **fields}))
        return await self.reply(frame_id)

    async def request_or_none(self, frame_type: str, **fields: Any) -> Frame | None:
        """A request's reply, or None when the socket closes before it comes."""
        frame_id = str(next(self._ids))
        with contextlib.suppress(ConnectionClosed):
            await self.send_raw(json.dumps({"type": frame_type, "id": frame_id, **fields}))
        async with asyncio.timeout(TIMEOUT), self._arrived:
            while True:
                for index, frame in enumerate(self.frames):
                    if frame.get("type") in ("ok", "error") and frame.get("id") == frame_id:
                        return self.frames.pop(index)
                if self.closed.is_set():
                    return None
                await self._arrived.wait()

    async def reply(self, frame_id: str | int | None) -> Frame:
        return await self.wait_for(
            lambda f: f.get("type") in ("ok", "error") and f.get("id") == frame_id
        )

    async def ok(self, frame_type: str, **fields: Any) -> Any:
        reply = await self.request(frame_type, **fields)
        assert reply["type"] == "ok", reply
        return reply["data"]

    async def error(self, frame_type: str, **fields: Any) -> Frame:
        reply = await self.request(frame_type, **fields)
        assert reply["type"] == "error", reply
        return reply

    async def send_message(self, conversation_id: int, content: str, **fields: Any) -> Frame:
        """message.send with a fresh client_msg_id; the stored message."""
        data = await self.ok(
            "message.send",
            conversation_id=conversation_id,
            client_msg_id=client_msg_id(),
            content=content,
            **fields,
        )
        return dict(data["message"])

    async def event(self, event_type: str, within: float = TIMEOUT, **match: Any) -> Frame:
        return await self.wait_for(
            lambda f: (
                f.get("type") == event_type
                and all(f.get(key) == value for key, value in match.items())
            ),
            within,
        )

    def pending(self, event_type: str | None = None) -> list[Frame]:
        return [f for f in self.frames if event_type is None or f.get("type") == event_type]

    async def wait_closed(self, within: float = TIMEOUT) -> int | None:
        async with asyncio.timeout(within):
            await self.closed.wait()
        return self.close_code

    @property
    def close_code(self) -> int | None:
        return self.connection.close_code

    async def close(self) -> None:
        await self.connection.close()
        await self._reader


@contextlib.asynccontextmanager
async def open_client(url: str, origin: str | None = None) -> AsyncIterator[Client]:
    connection = await connect(url, origin=origin, open_timeout=TIMEOUT)  # type: ignore[arg-type]
    client = Client(connection)
    try:
        yield client
    finally:
        await client.close()


class Gateway:
    """A running Parley under test: connect as any user, and a barrier for "nothing came"."""

    def __init__(self, server: RunningServer, settings: Settings) -> None:
        self.server = server
        self.settings = settings
        self._barriers = itertools.count(1)

    def token(self, user_id: int, ttl_seconds: int = 3600) -> str:
        return issue_token(self.settings, user_id, ttl_seconds)

    @contextlib.asynccontextmanager
    async def connect(self, user_id: int) -> AsyncIterator[Client]:
        """A socket that has said hello as ``user_id``."""
        async with open_client(self.server.ws_url) as client:
            client.user = await client.ok("hello", token=self.token(user_id))
            yield client

    @property
    def hub(self) -> Hub:
        hub: Hub = self.server.app.state.services.hub
        return hub

    @property
    def events(self) -> Events:
        events: Events = self.server.app.state.services.events
        return events

    @property
    def chat(self) -> Chat:
        chat: Chat = self.server.app.state.services.chat
        return chat

    @property
    def gateway(self) -> ServerGateway:
        gateway: ServerGateway = self.server.app.state.gateway
        return gateway

    async def until_sockets(self, user_id: int, count: int, within: float = TIMEOUT) -> None:
        """Wait until the server holds exactly ``count`` sockets of the user."""
        async with asyncio.timeout(within):
            while self.hub.sockets_of(user_id) != count:
                await self.hub.changed()

    async def barrier(self, client: Client, user_id: int) -> None:
        """Wait until everything published to ``user_id`` so far has reached ``client``.

        The broker delivers a user's channel in order, so once a marker published now
        arrives, every earlier event has too; what did not come is not coming.
        """
        marker = next(self._barriers)
        await self.events.publish(
            [user_id], json.dumps({"type": "test.barrier", "n": marker}).encode()
        )
        await client.event("test.barrier", n=marker)

    @property
    def sessions(self) -> list[Session]:
        """The server's sockets as the sessions they are (its gateway holds them only as
        things to drain)."""
        return [cast("Session", session) for session in self.gateway.sessions]

    def cut(self, user_id: int, code: int = WS_1012_SERVICE_RESTART) -> int:
        """Close every socket of ``user_id`` from the server side, dropping whatever they
        still had queued (replies included); returns how many there were."""
        sessions = [s for s in self.sessions if s.user_id == user_id]
        for session in sessions:
            session.close_soon(code, "cut by the test")
        return len(sessions)

    def lose_first_send_reply(self, monkeypatch: pytest.MonkeyPatch, user_id: int) -> list[int]:
        """Make the first message.send commit, then cut ``user_id``'s sockets before its ok
        leaves the server. Returns a list that holds one entry per send committed."""
        chat: Chat = self.server.app.state.services.chat
        commit = chat.send
        commits: list[int] = []

        async def commit_then_cut(*args: Any, **kwargs: Any) -> Any:
            sent = await commit(*args, **kwargs)
            commits.append(1)
            if len(commits) == 1:
                self.cut(user_id)  # committed, and the ok never leaves the server
            return sent

        monkeypatch.setattr(chat, "send", commit_then_cut)
        return commits

    def push(self, user_id: int, frame: Frame) -> None:
        """Hand a frame straight to every socket of ``user_id``, as if the broker had."""
        for session in self.sessions:
            if session.user_id == user_id:
                session.push(json.dumps(frame))


# --- the Python SDK, for tests that need no raw frames -------------------------------


class Recorder:
    """Every event a client hands the app, in order, with a way to await one."""

    def __init__(self, client: ParleyClient) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Condition()
        self._stream = client.events()
        self._task = asyncio.create_task(self._record())

    async def _record(self) -> None:
        async for event in self._stream:
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def until(self, done: Callable[[list[Event]], bool], within: float = SDK_TIMEOUT) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: done(self.events))

    def of(self, kind: type[Any]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    def stop(self) -> None:
        self._stream.close()
        self._task.cancel()


@contextlib.asynccontextmanager
async def sdk(gateway: Gateway, token: Any) -> AsyncIterator[tuple[ParleyClient, Recorder]]:
    client = ParleyClient(gateway.server.ws_url, token, reconnect_delay=0.05)
    recorder = Recorder(client)
    try:
        async with client:
            yield client, recorder
    finally:
        recorder.stop()


def states(recorder: Recorder) -> list[str]:
    return [event.state for event in recorder.of(StatusEvent)]


def announced(recorder: Recorder) -> set[int]:
    return {event.conversation["id"] for event in recorder.of(ConversationEvent)}


def delivered(recorder: Recorder, conversation_id: int) -> list[int]:
    return [
        event.message["seq"]
        for event in recorder.of(MessageEvent)
        if event.message["conversation_id"] == conversation_id
    ]


async def send_burst(mary: Client, conversation_id: int, count: int) -> None:
    """Pipeline ``count`` messages, then take every reply."""
    for number in range(count):
        frame = {
            "type": "message.send",
            "id": f"m{number}",
            "conversation_id": conversation_id,
            "client_msg_id": f"burst-{number}",
            "content": f"message {number}",
        }
        await mary.send_raw(json.dumps(frame))
    for number in range(count):
        assert (await mary.reply(f"m{number}"))["type"] == "ok"

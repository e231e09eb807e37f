"""Chaos: thousands of messages over two gateways while Redis restarts and a gateway dies.

Clients behave as docs/protocol.md asks: on any disconnect they reconnect to either gateway,
say hello and `sync`; on `resync` they `sync`; an unanswered send is resent with the same
client_msg_id. Afterwards every client must hold every message of its conversation exactly
once and in seq order, the database must have no duplicates, and counters must equal a
recount.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from parley import store
from parley.config import Settings
from parley.gateway.auth import issue_token
from tests.conftest import JWT_SECRET
from tests.services import GatewayProcess, redis_server
from tests.test_scale_out import gateway_env

PAIRS = 25  # conversations, each with a buyer and a seller client: 50 clients
MESSAGES_PER_CLIENT = 50  # 2,500 messages in all
SETTINGS = Settings(jwt_secret=JWT_SECRET)


@dataclass
class Stats:
    acked: int = 0
    reconnects: int = 0
    resyncs: int = 0
    replayed: int = 0
    wire_duplicates: int = 0
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def ack(self) -> None:
        async with self.progress:
            self.acked += 1
            self.progress.notify_all()

    async def reached(self, count: int) -> None:
        async with self.progress:
            await self.progress.wait_for(lambda: self.acked >= count)


class ChaosClient:
    """One user's device: sends its share, keeps every message of its conversation by seq."""

    def __init__(
        self,
        user_id: int,
        conversation_id: int,
        gateways: list[GatewayProcess],
        expected: int,
        stats: Stats,
        rng: random.Random,
    ) -> None:
        self.user_id = user_id
        self.conversation_id = conversation_id
        self.gateways = gateways
        self.expected = expected
        self.stats = stats
        self.rng = rng
        self.messages: dict[int, int] = {}  # seq -> message id
        self.conflicts = 0
        self.complete = asyncio.Event()
        self._socket: ClientConnection | None = None
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = 0

    # --- connection ------------------------------------------------------------------------

    async def _connect(self) -> None:
        while True:
            for gateway in self.rng.sample(self.gateways, len(self.gateways)):
                try:
                    self._socket = await connect(gateway.ws_url, open_timeout=5)
                    await self._socket.send(
                        json.dumps(
                            {
                                "type": "hello",
                                "id": "h",
                                "token": issue_token(SETTINGS, self.user_id),
                            }
                        )
                    )
                    hello = json.loads(await self._socket.recv())
                    assert hello["type"] == "ok", hello
                    return
                except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError):
                    continue
            await asyncio.sleep(0.05)  # both gateways down for a moment: back off, retry

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_all())
        try:
            while True:
                await self._connect()
                reader = asyncio.create_task(self._read())
                await self._sync()
                await reader  # returns when the socket drops
                self.stats.reconnects += 1
                for future in self._replies.values():
                    future.cancel()
                self._replies.clear()
        except asyncio.CancelledError:
            sender.cancel()
            raise

    async def _read(self) -> None:
        assert self._socket is not None
        try:
            async for raw in self._socket:
                frame = json.loads(raw)
                kind = frame["type"]
                if kind in ("ok", "error"):
                    future = self._replies.pop(frame["id"], None)
                    if future is not None and not future.done():
                        future.set_result(frame)
                elif kind == "message.new":
                    self._keep(frame["message"])
                elif kind == "resync":
                    self.stats.resyncs += 1
                    asyncio.create_task(self._sync())  # noqa: RUF006 - ends with the socket
        except ConnectionClosed:
            pass

    async def _request(self, frame: dict[str, Any]) -> dict[str, Any] | None:
        """Send and wait for the reply; None if the socket dropped first."""
        socket = self._socket
        if socket is None:
            return None
        self._ids += 1
        frame_id = f"r{self._ids}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[frame_id] = future
        try:
            await socket.send(json.dumps(frame | {"id": frame_id}))
            return await asyncio.wait_for(future, 10)
        except (ConnectionClosed, asyncio.CancelledError, TimeoutError):
            return None

    # --- behaviour ---------------------------------------------------------------------------

    def _keep(self, message: dict[str, Any]) -> None:
        if message["conversation_id"] != self.conversation_id:
            self.conflicts += 1  # an event for someone else's conversation: a leak
            return
        seq, message_id = message["seq"], message["id"]
        known = self.messages.get(seq)
        if known is None:
            self.messages[seq] = message_id
        elif known == message_id:
            self.stats.wire_duplicates += 1  # at-least-once delivery; kept once
        else:
            self.conflicts += 1
        if len(self.messages) >= self.expected:
            self.complete.set()

    def _contiguous(self) -> int:
        seq = 0
        while seq + 1 in self.messages:
            seq += 1
        return seq

    async def _sync(self) -> None:
        while True:
            reply = await self._request(
                {"type": "sync", "conversations": {str(self.conversation_id): self._contiguous()}}
            )
            if reply is None or reply["type"] != "ok":
                return
            entries = reply["data"]["conversations"]
            for entry in entries:
                for message in entry["messages"]:
                    self._keep(message)
            if not any(entry["has_more"] for entry in entries):
                return

    async def _send_all(self) -> None:
        for k in range(MESSAGES_PER_CLIENT):
            client_msg_id = f"u{self.user_id}-{k}"
            while True:  # resend with the same client_msg_id until answered
                reply = await self._request(
                    {
                        "type": "message.send",
                        "conversation_id": self.conversation_id,
                        "client_msg_id": client_msg_id,
                        "content": f"message {k} from {self.user_id}",
                    }
                )
                if reply is not None and reply["type"] == "ok":
                    self._keep(reply["data"]["message"])
                    self.stats.replayed += reply["data"]["replayed"]
                    await self.stats.ack()
                    break
                assert reply is None, reply  # errors other than a dropped socket are bugs
                await asyncio.sleep(0.01)  # the socket is reconnecting


async def seed(pool: asyncpg.Pool) -> list[tuple[int, int, int]]:
    """(conversation, buyer, seller) for each pair."""
    pairs = []
    for n in range(PAIRS):
        buyer, seller = 1000 + n, 2000 + n
        await store.upsert_user(pool, buyer, f"buyer {n}")
        await store.upsert_user(pool, seller, f"seller {n}")
        await store.upsert_product(pool, 3000 + n, seller, f"thing {n}")
        conversation, _ = await store.open_conversation(pool, buyer, 3000 + n)
        pairs.append((conversation.id, buyer, seller))
    return pairs


async def test_nothing_lost_through_redis_restarts_and_a_killed_gateway(
    database_url: str, pool: asyncpg.Pool, channel_prefix: str
) -> None:
    pairs = await seed(pool)
    total = PAIRS * 2 * MESSAGES_PER_CLIENT
    stats = Stats()
    rng = random.Random(20261124)
    started = time.perf_counter()
    events: list[str] = []

    async with redis_server() as redis:
        env = gateway_env(database_url, redis.url, channel_prefix)
        a, b = GatewayProcess("gateway-a", env), GatewayProcess("gateway-b", env)
        await asyncio.gather(a.start(), b.start())
        try:
            clients = [
                ChaosClient(user, conversation, [a, b], 2 * MESSAGES_PER_CLIENT, stats, rng)
                for conversation, buyer, seller in pairs
                for user in (buyer, seller)
            ]
            tasks = [asyncio.create_task(client.run()) for client in clients]

            schedule: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
                ("redis stopped", redis.stop),
                ("redis started", redis.start),
                ("gateway b killed", lambda: b.signal_and_wait(signal.SIGKILL)),
                ("gateway b restarted", b.start),
                ("redis stopped", redis.stop),
                ("redis started", redis.start),
            ]
            async with asyncio.timeout(120):
                # Each fault lasts (or each recovery holds) for 200 acknowledged messages.
                await stats.reached(total // 10)
                for what, action in schedule:
                    await action()
                    events.append(f"{what} at {stats.acked}")
                    await stats.reached(min(stats.acked + 200, total))
                await stats.reached(total)
                await asyncio.gather(*(client.complete.wait() for client in clients))
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await asyncio.gather(a.stop(), b.stop())
    elapsed = time.perf_counter() - started

    rows = await pool.fetch("SELECT id, conversation_id, seq, client_msg_id FROM messages")
    by_conversation: dict[int, dict[int, int]] = {}
    for row in rows:
        by_conversation.setdefault(row["conversation_id"], {})[row["seq"]] = row["id"]
    lost = sum(
        len(set(by_conversation[client.conversation_id].items()) - set(client.messages.items()))
        for client in clients
    )
    duplicated = (len(rows) - len({row["client_msg_id"] for row in rows})) + sum(
        client.conflicts for client in clients
    )
    drift = len(await store.recount_counters(pool))
    print(
        f"\nchaos: {len(rows)} messages from {len(clients)} clients over 2 gateways in "
        f"{elapsed:.1f} s; {'; '.join(events)}; {stats.reconnects} reconnects, "
        f"{stats.resyncs} resyncs, {stats.replayed} replayed sends, "
        f"{stats.wire_duplicates} duplicate deliveries dropped by clients; "
        f"lost/duplicated/drift = {lost}/{duplicated}/{drift}"
    )
    assert len(rows) == total
    for conversation_id, seqs in by_conversation.items():
        assert sorted(seqs) == list(range(1, len(seqs) + 1)), conversation_id
    for client in clients:
        assert sorted(client.messages) == list(range(1, 2 * MESSAGES_PER_CLIENT + 1))
    assert (lost, duplicated, drift) == (0, 0, 0)
    assert stats.reconnects > 0, "the killed gateway's clients reconnected"
    assert stats.resyncs > 0, "clients were told to sync after Redis came back"

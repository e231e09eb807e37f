"""A Redis Cluster master killed while messages flow between two gateways: its replica takes
over, the gateways subscribe again on the new topology, their clients get `resync`, and every
acknowledged message reaches its recipient, live or by the sync that follows."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from typing import Any

from redis.crc import key_slot

from parley import store
from tests.clients import Client
from tests.redis_cluster import SLOTS, ClusterNodeProcess, LocalCluster, local_cluster
from tests.test_scale_out import connect, gateways
from tests.world import World

PAIRS = 9
FLOWING = 3  # acknowledged messages per pair before the kill, and again after the failover


def shard_of(prefix: str, user_id: int, masters: int) -> int:
    return key_slot(f"{prefix}user:{user_id}".encode()) * masters // SLOTS


def recipients_on_every_shard(prefix: str, masters: int) -> list[int]:
    """Seller ids whose channels spread evenly over the shards: each shard carries some."""
    chosen: dict[int, list[int]] = {shard: [] for shard in range(masters)}
    candidate = 5000
    while any(len(ids) < PAIRS // masters for ids in chosen.values()):
        ids = chosen[shard_of(prefix, candidate, masters)]
        if len(ids) < PAIRS // masters:
            ids.append(candidate)
        candidate += 1
    return sorted(user for ids in chosen.values() for user in ids)


class Pair:
    """A buyer on one gateway writing to a seller on the other. The seller's socket acts as
    a client must: on `resync` it syncs at once."""

    def __init__(self, conversation_id: int, buyer: Client, seller: Client) -> None:
        self.conversation_id = conversation_id
        self.buyer = buyer
        self.seller = seller
        self.acked: list[int] = []  # seqs the buyer's gateway acknowledged
        self.target = FLOWING
        self.flowing = asyncio.Event()  # set once ``target`` messages are acknowledged
        self.synced: set[int] = set()  # seqs the seller's syncs brought
        self.resynced = asyncio.Event()
        self.handled = 0  # resyncs answered with a sync
        self.handled_one = asyncio.Event()

    async def keep_sending(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            self.acked.append(await self.send(f"flow-{n}"))
            if len(self.acked) >= self.target:
                self.flowing.set()

    async def send(self, client_msg_id: str) -> int:
        sent = await self.buyer.ok(
            "message.send",
            conversation_id=self.conversation_id,
            client_msg_id=client_msg_id,
            content=client_msg_id,
        )
        return int(sent["message"]["seq"])

    async def follow_resyncs(self) -> None:
        while True:
            await self.seller.event("resync", within=3600)
            self.resynced.set()
            last, more = 0, True
            while more:
                data = await self.seller.ok("sync", conversations={str(self.conversation_id): last})
                [entry] = data["conversations"]
                self.synced.update(message["seq"] for message in entry["messages"])
                last, more = max(self.synced, default=last), entry["has_more"]
            self.handled += 1
            self.handled_one.set()

    async def caught_up(self) -> None:
        """Every resync the seller got so far has been answered with a sync."""
        told = sum(frame.get("type") == "resync" for frame in self.seller.received)
        while self.handled < told:
            self.handled_one.clear()
            await self.handled_one.wait()

    def delivers(self, seq: int) -> Callable[[dict[str, Any]], bool]:
        def matches(frame: dict[str, Any]) -> bool:
            message = frame.get("message") or {}
            return frame.get("type") == "message.new" and (
                message.get("conversation_id"),
                message.get("seq"),
            ) == (self.conversation_id, seq)

        return matches

    def live(self) -> set[int]:
        return {
            frame["message"]["seq"]
            for frame in self.seller.received
            if frame.get("type") == "message.new"
            and frame["message"]["conversation_id"] == self.conversation_id
        }


async def until_each(pairs: list[Pair], target: int, within: float = 30.0) -> None:
    for pair in pairs:
        pair.target, pair.flowing = target, asyncio.Event()
        if len(pair.acked) >= target:
            pair.flowing.set()
    async with asyncio.timeout(within):
        await asyncio.gather(*(pair.flowing.wait() for pair in pairs))


async def test_a_master_killed_mid_flow_loses_nothing_acknowledged(
    database_url: str, channel_prefix: str, world: World
) -> None:
    async with local_cluster() as cluster:
        sellers = recipients_on_every_shard(channel_prefix, len(cluster.masters))
        conversations = []
        for n, seller in enumerate(sellers):
            await store.upsert_user(world.pool, seller, f"seller {n}")
            await store.upsert_user(world.pool, seller + 10_000, f"buyer {n}")
            product, _ = await store.upsert_product(world.pool, 8000 + n, seller, f"thing {n}")
            conversation, _ = await store.open_conversation(world.pool, seller + 10_000, product.id)
            conversations.append((conversation.id, seller + 10_000, seller))
        async with (
            gateways(2, database_url, cluster.url, channel_prefix) as (a, b),
            contextlib.AsyncExitStack() as clients,
        ):
            pairs = [
                Pair(
                    conversation_id,
                    await clients.enter_async_context(connect(a, buyer)),
                    await clients.enter_async_context(connect(b, seller)),
                )
                for conversation_id, buyer, seller in conversations
            ]
            followers = [asyncio.create_task(pair.follow_resyncs()) for pair in pairs]
            stop = asyncio.Event()
            senders = [asyncio.create_task(pair.keep_sending(stop)) for pair in pairs]
            try:
                await until_each(pairs, FLOWING)
                dead = busiest_master(cluster, channel_prefix, sellers)
                await cluster.kill(dead)
                await cluster.until_failed_over(dead)
                # Flowing after the failover, and every seller told to catch up.
                await until_each(pairs, max(len(pair.acked) for pair in pairs) + FLOWING)
                async with asyncio.timeout(30):
                    await asyncio.gather(*(pair.resynced.wait() for pair in pairs))
            finally:
                stop.set()
                await asyncio.gather(*senders, return_exceptions=True)
            # Live delivery is back: a message now arrives as message.new, no sync needed. A
            # gap travels ahead of what follows it on a channel, so once it is here every
            # resync meant for what came before is here too.
            for pair in pairs:
                seq = await pair.send("after the failover")
                await pair.seller.wait_for(pair.delivers(seq))
                async with asyncio.timeout(30):
                    await pair.caught_up()
            for follower in followers:
                follower.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            lost = {
                pair.conversation_id: missing
                for pair in pairs
                if (missing := sorted(set(pair.acked) - pair.live() - pair.synced))
            }
            assert lost == {}, "acknowledged, never delivered nor synced"
            assert all(len(pair.acked) >= 2 * FLOWING for pair in pairs)


def busiest_master(cluster: LocalCluster, prefix: str, sellers: list[int]) -> ClusterNodeProcess:
    shards = Counter(shard_of(prefix, seller, len(cluster.masters)) for seller in sellers)
    return cluster.masters[shards.most_common(1)[0][0]]

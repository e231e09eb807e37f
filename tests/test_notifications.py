"""Offline notifications end to end: messages open a window in their own transaction, a
gateway's dispatcher closes it when due and delivers a signed webhook to a real receiver,
which checks every signature with the Standard Webhooks reference library."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from parley import store
from parley.config import parse_webhook_secrets
from parley.usecases.notifications import webhook_id
from tests.clients import Gateway
from tests.conftest import JWT_SECRET, SERVICE_TOKEN, gateway_settings, running_gateway
from tests.services import GatewayProcess, free_port
from tests.webhook_receiver import SECRETS, Receiver, webhook_receiver
from tests.world import World


@dataclasses.dataclass
class Notifying:
    gateway: Gateway
    receiver: Receiver
    internal: httpx.AsyncClient


def notifying_settings(database_url: str, url: str, **overrides: Any) -> Any:
    settings = gateway_settings(database_url)
    values: dict[str, Any] = {
        "service_token": SERVICE_TOKEN,
        "webhook_url": url,
        "webhook_keys": parse_webhook_secrets(" ".join(SECRETS)),
        "notify_delay_seconds": 0.5,
        "notify_poll_seconds": 0.05,
        "webhook_retry_seconds": 0.05,
        "webhook_max_attempts": 3,
    }
    return dataclasses.replace(settings, **(values | overrides))


@contextlib.asynccontextmanager
async def notifying_gateway(database_url: str, receiver: Receiver) -> AsyncIterator[Notifying]:
    settings = notifying_settings(database_url, receiver.url)
    async with (
        running_gateway(settings) as gateway,
        httpx.AsyncClient(
            base_url=gateway.server.http_url,
            headers={"authorization": f"Bearer {SERVICE_TOKEN}"},
        ) as internal,
    ):
        yield Notifying(gateway, receiver, internal)


@pytest.fixture
async def notifying(database_url: str, world: World) -> AsyncIterator[Notifying]:
    async with (
        webhook_receiver() as receiver,
        notifying_gateway(database_url, receiver) as running,
    ):
        yield running


async def until_finished(pool: asyncpg.Pool, user_id: int, count: int = 1) -> list[Any]:
    """The user's notifications once ``count`` of them are delivered, skipped or failed."""
    async with asyncio.timeout(15):
        while True:
            rows = await pool.fetch(
                "SELECT * FROM notifications WHERE user_id = $1 ORDER BY id", user_id
            )
            if sum(row["status"] != "pending" for row in rows) >= count:
                return rows
            await asyncio.sleep(0.02)


async def until_none_pending(pool: asyncpg.Pool) -> None:
    """Wait until every notification is delivered, skipped or failed."""
    async with asyncio.timeout(15):
        while True:
            if not await pool.fetchval(
                "SELECT count(*) FROM notifications WHERE status = 'pending'"
            ):
                return
            await asyncio.sleep(0.02)


async def john_writes_to_each(world: World, sellers: range, text: str) -> None:
    """Each seller lists a product, and John writes to them about it: one window each."""
    for seller in sellers:
        await store.upsert_user(world.pool, seller, f"Seller {seller}")
        product, _ = await store.upsert_product(world.pool, seller * 10, seller, "Lamp")
        conversation, _ = await store.open_conversation(world.pool, world.john.id, product.id)
        await world.send(conversation.id, world.john, text)


async def test_an_offline_recipient_gets_one_notification_for_three_messages(
    notifying: Notifying, world: World
) -> None:
    conversation = await world.open()
    for text in ("Hi Mary", "Is the iPhone still for sale?", "I can pick it up today"):
        last = await world.send(conversation.id, world.john, text)
    [delivery] = await notifying.receiver.until_delivered(1)
    [row] = await until_finished(world.pool, world.mary.id)
    assert (row["status"], row["attempts"]) == ("delivered", 1)
    assert delivery.webhook_id == webhook_id(row["id"])
    assert delivery.payload["type"] == "notification.unread"
    data = delivery.payload["data"]
    assert (data["user_id"], data["unread_total"]) == (world.mary.id, 3)
    [named] = data["conversations"]
    assert named["conversation_id"] == conversation.id
    assert named["unread_count"] == 3
    assert named["from"] == {"id": world.john.id, "display_name": "John"}
    assert named["product"]["title"] == "iPhone 13, 128 GB"
    assert named["last_message"]["id"] == last.message.id
    assert named["last_message"]["seq"] == 3
    assert named["last_message"]["preview"] == "I can pick it up today"
    assert notifying.receiver.rejected == []
    # Nobody else was told: John sent, and messages to him raised no count.
    assert await world.pool.fetchval("SELECT count(*) FROM notifications") == 1


async def test_reading_muting_or_being_online_skips_the_notification(
    notifying: Notifying, world: World
) -> None:
    conversation = await world.open()
    sent = await world.send(conversation.id, world.john, "read me")
    await store.mark_read(world.pool, conversation.id, world.mary.id, sent.message.seq)
    rows = await until_finished(world.pool, world.mary.id, 1)
    assert (rows[0]["status"], rows[0]["skip_reason"]) == ("skipped", "read")

    async with notifying.gateway.connect(world.mary.id) as mary:
        await mary.ok("conversation.mute", conversation_id=conversation.id)
        await world.send(conversation.id, world.john, "muted")
        rows = await until_finished(world.pool, world.mary.id, 2)
        # Mary is online as well as muted: being online is what the dispatcher sees first.
        assert (rows[1]["status"], rows[1]["skip_reason"]) == ("skipped", "online")
        await mary.ok("conversation.unmute", conversation_id=conversation.id)
        await world.send(conversation.id, world.john, "while you are here")
        rows = await until_finished(world.pool, world.mary.id, 3)
        assert (rows[2]["status"], rows[2]["skip_reason"]) == ("skipped", "online")
        await mary.ok("conversation.mute", conversation_id=conversation.id)

    await world.send(conversation.id, world.john, "muted, and away")
    rows = await until_finished(world.pool, world.mary.id, 4)
    assert (rows[3]["status"], rows[3]["skip_reason"]) == ("skipped", "silenced")
    assert notifying.receiver.attempts == []


async def test_a_blocked_senders_messages_are_never_notified(
    notifying: Notifying, world: World
) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "before the block")
    async with notifying.gateway.connect(world.mary.id) as mary:
        await mary.ok("user.block", user_id=world.john.id)
    async with notifying.gateway.connect(world.john.id) as john:
        refused = await john.error(
            "message.send", conversation_id=conversation.id, client_msg_id="x", content="hey"
        )
        assert refused["code"] == "blocked"
    [row] = await until_finished(world.pool, world.mary.id)
    assert (row["status"], row["skip_reason"]) == ("skipped", "silenced")
    assert notifying.receiver.attempts == []


async def test_a_failing_receiver_gets_the_same_webhook_id_until_it_answers_2xx(
    notifying: Notifying, world: World
) -> None:
    notifying.receiver.script = [500, 500]
    conversation = await world.open()
    await world.send(conversation.id, world.john, "third time lucky")
    attempts = await notifying.receiver.until_attempts(3)
    [row] = await until_finished(world.pool, world.mary.id)
    assert [a.answered for a in attempts] == [500, 500, 200]
    assert {a.webhook_id for a in attempts} == {webhook_id(row["id"])}
    assert len({a.payload["timestamp"] for a in attempts}) == 1  # the same body each time
    assert (row["status"], row["attempts"]) == ("delivered", 3)
    assert notifying.receiver.rejected == []


async def test_a_receiver_that_hangs_on_one_notification_holds_back_no_other(
    notifying: Notifying, world: World
) -> None:
    notifying.receiver.script = [0]  # the first request is held until released
    conversation = await world.open()
    await world.send(conversation.id, world.john, "for Mary")
    await notifying.receiver.until_held(1)
    await store.upsert_user(world.pool, 704, "Sam")
    lamp, _ = await store.upsert_product(world.pool, 7040, 704, "Lamp")
    other, _ = await store.open_conversation(world.pool, world.john.id, lamp.id)
    await world.send(other.id, world.john, "for Sam")
    [delivery] = await notifying.receiver.until_delivered(1, within=5)
    assert delivery.payload["data"]["user_id"] == 704
    notifying.receiver.release.set()
    deliveries = await notifying.receiver.until_delivered(2)
    assert {d.payload["data"]["user_id"] for d in deliveries} == {704, world.mary.id}


async def test_after_the_last_attempt_a_notification_is_failed_listed_and_sent_again(
    notifying: Notifying, world: World
) -> None:
    notifying.receiver.script = [503, 503, 503]
    conversation = await world.open()
    await world.send(conversation.id, world.john, "anyone?")
    [row] = await until_finished(world.pool, world.mary.id)
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 3, "HTTP 503")

    listed = await notifying.internal.get(
        "/internal/notifications", params={"status": "failed", "user_id": world.mary.id}
    )
    assert listed.status_code == 200
    [shown] = listed.json()["notifications"]
    assert (shown["id"], shown["status"], shown["attempts"]) == (row["id"], "failed", 3)
    assert shown["last_error"] == "HTTP 503"

    retried = await notifying.internal.post(f"/internal/notifications/{row['id']}/retry")
    assert retried.status_code == 200
    assert retried.json()["notification"]["status"] == "pending"
    [delivery] = await notifying.receiver.until_delivered(1)
    assert delivery.webhook_id == webhook_id(row["id"])
    [row] = await until_finished(world.pool, world.mary.id)
    assert row["status"] == "delivered"

    again = await notifying.internal.post(f"/internal/notifications/{row['id']}/retry")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_failed")
    unknown = await notifying.internal.post("/internal/notifications/999999/retry")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")


async def test_two_gateways_share_the_outbox_and_deliver_each_notification_once(
    database_url: str, world: World
) -> None:
    sellers = range(800, 840)
    await john_writes_to_each(world, sellers, "still available?")
    async with (
        webhook_receiver() as receiver,
        notifying_gateway(database_url, receiver),
        notifying_gateway(database_url, receiver),
    ):
        deliveries = await receiver.until_delivered(len(sellers))
        ids = [d.webhook_id for d in deliveries]
        assert len(ids) == len(set(ids)) == len(sellers)
        assert {d.payload["data"]["user_id"] for d in deliveries} == set(sellers)
        await until_none_pending(world.pool)
        statuses = await world.pool.fetch("SELECT status, count(*) FROM notifications GROUP BY 1")
        assert [tuple(row) for row in statuses] == [("delivered", len(sellers))]


@contextlib.asynccontextmanager
async def silent_receiver(port: int) -> AsyncIterator[asyncio.Event]:
    """An endpoint that takes requests and never answers: every attempt is in flight. The
    event is set when the first request arrives."""
    arrived = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(1)
        arrived.set()

    server = await asyncio.start_server(hold, "127.0.0.1", port)
    try:
        yield arrived
    finally:
        server.close()
        for writer in held:
            writer.close()


async def test_notifications_in_flight_when_parley_is_killed_are_delivered_after_restart(
    database_url: str, world: World
) -> None:
    sellers = range(850, 855)
    await john_writes_to_each(world, sellers, "is it still there?")
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "PARLEY_JWT_SECRET": JWT_SECRET,
        "PARLEY_WEBHOOK_URL": f"http://127.0.0.1:{port}/hooks/parley",
        "PARLEY_WEBHOOK_SECRET": " ".join(SECRETS),
        "PARLEY_NOTIFY_DELAY_SECONDS": "0",
        "PARLEY_NOTIFY_POLL_SECONDS": "0.05",
        "PARLEY_NOTIFY_LEASE_SECONDS": "11",  # the least: one attempt and its bookkeeping
        "PARLEY_WEBHOOK_RETRY_SECONDS": "0.2",
        "PARLEY_WEBHOOK_MAX_ATTEMPTS": "50",
    }
    parley = GatewayProcess("parley", env)
    try:
        async with silent_receiver(port) as arrived:
            await parley.start()
            async with asyncio.timeout(15):
                await arrived.wait()
            await parley.signal_and_wait(signal.SIGKILL)
        in_flight = await world.pool.fetchval(
            "SELECT count(*) FROM notifications WHERE status = 'pending' AND lease_until > now()"
        )
        assert in_flight >= 1  # claims the dead process still holds
        async with webhook_receiver(port) as receiver:
            await parley.start()
            deliveries = await receiver.until_delivered(len(sellers), within=40)
            assert {d.payload["data"]["user_id"] for d in deliveries} == set(sellers)
            assert receiver.rejected == []
            await until_none_pending(world.pool)
    finally:
        await parley.stop()
    statuses = await world.pool.fetch("SELECT status, count(*) FROM notifications GROUP BY 1")
    assert [tuple(row) for row in statuses] == [("delivered", len(sellers))]

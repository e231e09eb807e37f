"""The seed's story told with the Python SDK over two gateway processes and Redis, with one
gateway killed in the middle: every device ends where the database is."""

from __future__ import annotations

import signal

from parley.config import Settings
from parley.gateway.auth import issue_token
from parley_client import ConversationEvent, MessageEvent, ParleyClient, ReadEvent
from tests.clients import Recorder
from tests.conftest import JWT_SECRET
from tests.services import redis_server
from tests.test_scale_out import gateways
from tests.world import World

TIMEOUT = 30.0


def token(user_id: int) -> str:
    return issue_token(Settings(jwt_secret=JWT_SECRET), user_id)


def contents(recorder: Recorder) -> list[str]:
    return [event.message["content"] for event in recorder.of(MessageEvent)]


async def test_buyer_and_seller_devices_on_two_gateways_survive_one_being_killed(
    database_url: str, redis_url: str, channel_prefix: str, world: World
) -> None:
    async with gateways(2, database_url, redis_url, channel_prefix) as (first, second):
        john = ParleyClient(first.ws_url, token(701), reconnect_delay=0.05)
        mary_phone = ParleyClient(first.ws_url, token(702), reconnect_delay=0.05)
        mary_laptop = ParleyClient(second.ws_url, token(702), reconnect_delay=0.05)
        seen = {name: Recorder(c) for name, c in
                (("john", john), ("phone", mary_phone), ("laptop", mary_laptop))}  # fmt: skip
        async with john, mary_phone, mary_laptop:
            conversation = await john.open_conversation(world.iphone.id)
            await john.send(conversation["id"], "Is this still available?")

            # Both of Mary's devices learn the new conversation, its message and the badge.
            for recorder, client in ((seen["phone"], mary_phone), (seen["laptop"], mary_laptop)):
                await recorder.until(lambda _: client.unread_total == 1, TIMEOUT)  # noqa: B023
                await recorder.until(lambda _: bool(recorder.of(ConversationEvent)))  # noqa: B023
                assert contents(recorder) == ["Is this still available?"]
                learned = recorder.of(ConversationEvent)[0].conversation
                assert learned["id"] == conversation["id"]

            # Read on the laptop: the phone's badge clears, John sees the receipt.
            await mary_laptop.mark_read(conversation["id"], 1)
            await seen["phone"].until(lambda _: mary_phone.unread_total == 0, TIMEOUT)
            await seen["john"].until(lambda _: bool(seen["john"].of(ReadEvent)), TIMEOUT)
            assert seen["john"].of(ReadEvent)[0].up_to_seq == 1

            # The first gateway dies; Mary writes from the laptop meanwhile; it comes back.
            await first.signal_and_wait(signal.SIGKILL)
            for n in (1, 2, 3):
                await mary_laptop.send(conversation["id"], f"reply {n}")
            await first.start()
            await seen["john"].until(lambda _: len(contents(seen["john"])) == 4, TIMEOUT)
            await seen["john"].until(lambda _: john.unread_total == 3, TIMEOUT)
            await seen["phone"].until(lambda _: len(contents(seen["phone"])) == 4, TIMEOUT)

        for recorder in seen.values():
            recorder.stop()
    expected = ["Is this still available?", "reply 1", "reply 2", "reply 3"]
    assert contents(seen["john"]) == expected
    assert contents(seen["phone"]) == expected
    assert contents(seen["laptop"]) == expected
    assert [event.message["seq"] for event in seen["john"].of(MessageEvent)] == [1, 2, 3, 4]
    recount = await world.pool.fetchval(
        "SELECT buyer_unread_count FROM conversations WHERE id = $1", conversation["id"]
    )
    assert recount == 3


async def test_while_redis_is_down_the_sdk_catches_up_by_itself(
    database_url: str, channel_prefix: str, world: World
) -> None:
    async with (
        redis_server() as redis,
        gateways(2, database_url, redis.url, channel_prefix) as (first, second),
    ):
        john = ParleyClient(first.ws_url, token(701), reconnect_delay=0.05)
        mary = ParleyClient(second.ws_url, token(702), reconnect_delay=0.05)
        seen = Recorder(mary)
        async with john, mary:
            conversation = await john.open_conversation(world.iphone.id)
            await john.send(conversation["id"], "before")
            await seen.until(lambda _: contents(seen) == ["before"], TIMEOUT)
            await redis.stop()
            for n in (1, 2, 3):
                await john.send(conversation["id"], f"while Redis was down {n}")
            await redis.start()
            # The gateway tells Mary's socket to resync; the SDK does, by itself.
            await seen.until(lambda _: len(contents(seen)) == 4, TIMEOUT)
            await seen.until(lambda _: mary.unread_total == 4, TIMEOUT)
            await john.send(conversation["id"], "after")
            await seen.until(lambda _: len(contents(seen)) == 5, TIMEOUT)
        seen.stop()
    assert contents(seen) == ["before", *(f"while Redis was down {n}" for n in (1, 2, 3)), "after"]
    assert [event.message["seq"] for event in seen.of(MessageEvent)] == [1, 2, 3, 4, 5]

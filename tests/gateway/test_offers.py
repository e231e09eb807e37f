"""Offers as a deal, over real sockets: made, superseded, countered, withdrawn, declined and
accepted; who may take each step; an accept reserves the listing and declines the other
buyers' offers; and racing answers leave exactly one winner."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from parley import store
from tests.clients import Client, Gateway
from tests.world import World

Backend = tuple[Gateway, httpx.AsyncClient]


async def offer(client: Client, conversation_id: int, cents: int, currency: str = "EUR") -> Any:
    return await client.send_message(
        conversation_id,
        "",
        message_type="offer",
        metadata={"amount_cents": cents, "currency": currency},
    )


async def statuses(world: World, conversation_id: int) -> list[tuple[int, str]]:
    rows = await world.pool.fetch(
        "SELECT id, offer_status FROM messages WHERE conversation_id = $1"
        " AND message_type = 'offer' ORDER BY seq",
        conversation_id,
    )
    return [(row["id"], row["offer_status"]) for row in rows]


async def notices(world: World, conversation_id: int) -> list[str]:
    rows = await world.pool.fetch(
        "SELECT content FROM messages WHERE conversation_id = $1 AND message_type = 'system'"
        " ORDER BY seq",
        conversation_id,
    )
    return [row["content"] for row in rows]


async def test_an_accepted_offer_reserves_the_listing_and_every_device_follows(
    backend: Backend, world: World
) -> None:
    gateway, marketplace = backend
    conversation = await world.open()
    async with (
        gateway.connect(701) as john,
        gateway.connect(702) as mary_phone,
        gateway.connect(702) as mary_laptop,
    ):
        made = await offer(john, conversation.id, 40000)
        assert made["offer_status"] == "open"
        assert (await mary_phone.event("message.new"))["message"] == made
        await mary_laptop.event("message.new")
        answer = await mary_phone.ok("offer.accept", message_id=made["id"])
        accepted, [notice] = answer["offer"], answer["messages"]
        assert (accepted["id"], accepted["offer_status"]) == (made["id"], "accepted")
        assert notice["message_type"] == "system"
        assert notice["content"] == "Mary accepted €400.00"
        assert notice["metadata"] == {
            "offer_id": made["id"],
            "offer_status": "accepted",
            "by": 702,
            "amount_cents": 40000,
            "currency": "EUR",
        }
        for device in (john, mary_laptop):
            assert (await device.event("message.updated"))["message"] == accepted
            assert (await device.event("message.new"))["message"] == notice
            view = (await device.event("conversation.updated"))["conversation"]
            assert view["product"]["status"] == "reserved"
            assert view["product"]["reserved_for"] == 701
        assert mary_phone.pending("message.updated") == []
        listing = await marketplace.get(f"/internal/products/{world.iphone.id}")
        assert listing.status_code == 200
        assert listing.json()["product"]["status"] == "reserved"
        assert listing.json()["product"]["reserved_for"] == 701
        history = await john.ok("message.history", conversation_id=conversation.id)
        assert [m["offer_status"] for m in history["messages"]] == ["accepted", None]
    assert await store.recount_counters(world.pool) == []


async def test_an_accept_declines_the_other_buyers_open_offers_and_tells_them(
    gateway: Gateway, world: World
) -> None:
    johns = await world.open()
    eves, _ = await store.open_conversation(world.pool, world.eve.id, world.iphone.id)
    async with (
        gateway.connect(701) as john,
        gateway.connect(702) as mary,
        gateway.connect(703) as eve,
    ):
        eves_offer = await offer(eve, eves.id, 38000)
        johns_offer = await offer(john, johns.id, 40000)
        answer = await mary.ok("offer.accept", message_id=johns_offer["id"])
        assert [m["conversation_id"] for m in answer["messages"]] == [johns.id]
        declined = (await eve.event("message.updated"))["message"]
        assert (declined["id"], declined["offer_status"]) == (eves_offer["id"], "declined")
        notice = (await eve.event("message.new"))["message"]
        assert notice["conversation_id"] == eves.id
        assert notice["content"] == (
            "This item was reserved for another buyer; the offer of €380.00 was declined"
        )
        assert notice["metadata"]["by"] is None
        assert (await mary.event("message.updated"))["message"]["id"] == eves_offer["id"]
        refused = await eve.error(
            "message.send",
            conversation_id=eves.id,
            client_msg_id="again",
            message_type="offer",
            metadata={"amount_cents": 45000, "currency": "EUR"},
        )
        assert refused["code"] == "product_unavailable"
        # John hears of his own offer only; Eve's is not his to see.
        await john.event("conversation.updated")
        updates = [u["message"]["id"] for u in john.pending("message.updated")]
        assert updates == [johns_offer["id"]]
    assert await statuses(world, eves.id) == [(eves_offer["id"], "declined")]
    assert await store.recount_counters(world.pool) == []


async def test_a_newer_offer_supersedes_the_open_one_which_can_no_longer_be_taken(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        first = await offer(john, conversation.id, 38000)
        second = await offer(john, conversation.id, 40000)
        superseded = (await mary.event("message.updated"))["message"]
        assert (superseded["id"], superseded["offer_status"]) == (first["id"], "superseded")
        refused = await mary.error("offer.accept", message_id=first["id"])
        assert refused["code"] == "offer_not_open"
        assert "superseded" in refused["message"]
        await mary.ok("offer.accept", message_id=second["id"])
    assert await statuses(world, conversation.id) == [
        (first["id"], "superseded"),
        (second["id"], "accepted"),
    ]


async def test_a_counter_is_an_offer_the_buyer_can_accept(gateway: Gateway, world: World) -> None:
    conversation = await world.open()
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        made = await offer(john, conversation.id, 38000)
        answer = await mary.ok("offer.counter", message_id=made["id"], amount_cents=42000)
        countered, (notice, counter) = answer["offer"], answer["messages"]
        assert countered["offer_status"] == "countered"
        assert notice["content"] == "Mary countered €380.00 with €420.00"
        assert (counter["sender_id"], counter["recipient_id"]) == (702, 701)
        assert counter["metadata"] == {
            "amount_cents": 42000,
            "currency": "EUR",
            "counter_of": made["id"],
        }
        assert counter["offer_status"] == "open"
        assert (await john.event("message.updated"))["message"] == countered
        assert (await john.event("message.new"))["message"] == notice
        assert (await john.event("message.new"))["message"] == counter
        badge = await john.event("unread", conversation_id=conversation.id)
        assert badge["count"] == 1
        own = await mary.error("offer.accept", message_id=counter["id"])
        assert own["code"] == "own_offer"
        answer = await john.ok("offer.accept", message_id=counter["id"])
        assert answer["messages"][0]["content"] == "John accepted €420.00"
    product = await store.get_product(world.pool, world.iphone.id)
    assert (product.status, product.reserved_for) == ("reserved", 701)
    assert await store.recount_counters(world.pool) == []


async def test_only_the_right_side_takes_each_step_and_outsiders_learn_nothing(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        made = await offer(john, conversation.id, 40000)
        text = await john.send_message(conversation.id, "or best offer")
        for action, fields in (
            ("offer.accept", {}),
            ("offer.decline", {}),
            ("offer.counter", {"amount_cents": 1}),
        ):
            refused = await john.error(action, message_id=made["id"], **fields)
            assert refused["code"] == "own_offer", action
        assert (await mary.error("offer.withdraw", message_id=made["id"]))[
            "code"
        ] == "not_your_message"
        assert (await mary.error("offer.accept", message_id=text["id"]))["code"] == "not_an_offer"
        async with gateway.connect(703) as eve:
            hidden = await eve.error("offer.accept", message_id=made["id"])
            unknown = await eve.error("offer.accept", message_id=10**12)
            assert hidden["code"] == unknown["code"] == "not_found"
        for amount in (0, -5, 2**60, "400"):
            bad = await mary.error("offer.counter", message_id=made["id"], amount_cents=amount)
            assert bad["code"] == "invalid_frame", amount
        refused = await john.error(
            "message.send",
            conversation_id=conversation.id,
            client_msg_id="dollars",
            message_type="offer",
            metadata={"amount_cents": 40000, "currency": "USD"},
        )
        assert refused["code"] == "invalid_metadata"
    assert await statuses(world, conversation.id) == [(made["id"], "open")]
    assert await notices(world, conversation.id) == []


async def test_withdrawn_and_declined_offers_are_closed(gateway: Gateway, world: World) -> None:
    conversation = await world.open()
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        first = await offer(john, conversation.id, 30000)
        await john.ok("offer.withdraw", message_id=first["id"])
        assert (await mary.event("message.updated"))["message"]["offer_status"] == "withdrawn"
        assert (await mary.error("offer.accept", message_id=first["id"]))[
            "code"
        ] == "offer_not_open"
        second = await offer(john, conversation.id, 35000)
        await mary.ok("offer.decline", message_id=second["id"])
        assert (await john.error("offer.withdraw", message_id=second["id"]))[
            "code"
        ] == "offer_not_open"
        third = await offer(john, conversation.id, 36000)
        unsent = (await john.ok("message.unsend", message_id=third["id"]))["message"]
        assert unsent["offer_status"] == "withdrawn"
    assert await notices(world, conversation.id) == [
        "John withdrew €300.00",
        "Mary declined €350.00",
    ]


async def test_nothing_can_be_done_once_the_listing_is_sold(backend: Backend, world: World) -> None:
    gateway, marketplace = backend
    conversation = await world.open()
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        made = await offer(john, conversation.id, 40000)
        sold = await marketplace.put(
            f"/internal/products/{world.iphone.id}",
            json={"seller_id": 702, "title": "iPhone 13", "currency": "EUR", "status": "sold"},
        )
        assert sold.status_code == 200
        for client, action in (
            (mary, "offer.accept"),
            (mary, "offer.decline"),
            (john, "offer.withdraw"),
        ):
            refused = await client.error(action, message_id=made["id"])
            assert refused["code"] == "product_unavailable", action
        refused = await john.error(
            "message.send",
            conversation_id=conversation.id,
            client_msg_id="late",
            message_type="offer",
            metadata={"amount_cents": 45000, "currency": "EUR"},
        )
        assert refused["code"] == "product_unavailable"
        # Only an accepted offer reserves a listing.
        reserve = await marketplace.put(
            f"/internal/products/{world.iphone.id}",
            json={"seller_id": 702, "currency": "EUR", "status": "reserved"},
        )
        assert (reserve.status_code, reserve.json()["error"]["code"]) == (409, "not_reserved")
    assert await statuses(world, conversation.id) == [(made["id"], "open")]


async def test_two_accepts_of_the_same_offer_race_and_exactly_one_wins(
    roomy_gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with (
        roomy_gateway.connect(701) as john,
        roomy_gateway.connect(702) as mary_phone,
        roomy_gateway.connect(702) as mary_laptop,
    ):
        for _ in range(5):
            made = await offer(john, conversation.id, 40000)
            replies = await asyncio.gather(
                mary_phone.request("offer.decline", message_id=made["id"]),
                mary_laptop.request("offer.decline", message_id=made["id"]),
            )
            assert sorted(r["type"] for r in replies) == ["error", "ok"]
            assert [r["code"] for r in replies if r["type"] == "error"] == ["offer_not_open"]
        made = await offer(john, conversation.id, 41000)
        replies = await asyncio.gather(
            mary_phone.request("offer.accept", message_id=made["id"]),
            mary_laptop.request("offer.accept", message_id=made["id"]),
        )
        assert sorted(r["type"] for r in replies) == ["error", "ok"]
    assert (await notices(world, conversation.id)).count("Mary accepted €410.00") == 1
    assert await store.recount_counters(world.pool) == []


@pytest.mark.parametrize("rounds", [6])
async def test_accepts_of_two_buyers_race_and_the_listing_goes_to_one(
    roomy_gateway: Gateway, world: World, rounds: int
) -> None:
    for round_ in range(rounds):
        product, _ = await store.upsert_product(
            world.pool, 9000 + round_, 702, "Lamp", price_cents=5000, currency="EUR"
        )
        johns, _ = await store.open_conversation(world.pool, 701, product.id)
        eves, _ = await store.open_conversation(world.pool, 703, product.id)
        async with (
            roomy_gateway.connect(701) as john,
            roomy_gateway.connect(703) as eve,
            roomy_gateway.connect(702) as mary_phone,
            roomy_gateway.connect(702) as mary_laptop,
        ):
            to_john = await offer(john, johns.id, 4000)
            to_eve = await offer(eve, eves.id, 4500)
            replies = await asyncio.gather(
                mary_phone.request("offer.accept", message_id=to_john["id"]),
                mary_laptop.request("offer.accept", message_id=to_eve["id"]),
            )
        won = [r for r in replies if r["type"] == "ok"]
        assert len(won) == 1, replies
        lost = next(r for r in replies if r["type"] == "error")
        assert lost["code"] in ("offer_not_open", "product_unavailable")
        winner = won[0]["data"]["offer"]["sender_id"]
        reserved = await store.get_product(world.pool, product.id)
        assert (reserved.status, reserved.reserved_for) == ("reserved", winner)
        open_left = await world.pool.fetchval(
            "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id"
            " WHERE c.product_id = $1 AND m.offer_status = 'open'",
            product.id,
        )
        assert open_left == 0
    assert await store.recount_counters(world.pool) == []

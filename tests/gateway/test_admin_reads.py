"""The marketplace's admin reads, through the internal API of a real gateway: a user's
conversations paged, a conversation with both sides' state, and its messages as stored
(what a side cleared or unsent included), paged."""

from __future__ import annotations

import httpx

from parley import store
from tests.clients import Gateway
from tests.world import World

Backend = tuple[Gateway, httpx.AsyncClient]


async def test_a_users_conversations_one_and_its_messages_as_stored(
    backend: Backend, world: World
) -> None:
    gateway, marketplace = backend
    phone = await world.open()
    lamp, _ = await store.upsert_product(world.pool, 7011, world.eve.id, "Desk lamp")
    other, _ = await store.open_conversation(world.pool, world.john.id, lamp.id)
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        first = await john.send_message(phone.id, "Is it still available?")
        oops = await john.send_message(phone.id, "call me on 0151 2345 6789")
        await john.ok("message.unsend", message_id=oops["id"])
        await mary.send_message(phone.id, "Yes, Saturday?")
        await mary.ok("conversation.delete", conversation_id=phone.id)
        await john.send_message(other.id, "Does the lamp work?")

    page = (await marketplace.get("/internal/users/701/conversations", params={"limit": 1})).json()
    assert [(c["id"], c["role"], c["other_user_id"]) for c in page["conversations"]] == [
        (phone.id, "buyer", 702)
    ]
    assert page["next_after"] == phone.id
    rest = (
        await marketplace.get("/internal/users/701/conversations", params={"after": phone.id})
    ).json()
    assert [c["id"] for c in rest["conversations"]] == [other.id]
    assert rest["next_after"] is None

    got = (await marketplace.get(f"/internal/conversations/{phone.id}")).json()
    assert got["last_seq"] == 3
    assert (got["buyer"]["user_id"], got["seller"]["user_id"]) == (701, 702)
    assert got["seller"]["cleared_seq"] == 3  # Mary cleared it; the marketplace still sees it
    assert got["chain_length"] == 4  # three messages and the unsend

    listed = (
        await marketplace.get(f"/internal/conversations/{phone.id}/messages", params={"limit": 2})
    ).json()
    assert [m["id"] for m in listed["messages"]] == [first["id"], oops["id"]]
    assert listed["messages"][1]["unsent_at"] is not None
    assert listed["next_after_seq"] == 2
    after = (
        await marketplace.get(
            f"/internal/conversations/{phone.id}/messages", params={"after_seq": 2}
        )
    ).json()
    assert [m["content"] for m in after["messages"]] == ["Yes, Saturday?"]
    assert after["next_after_seq"] is None


async def test_unknown_ids_are_404_and_bad_pages_400(backend: Backend) -> None:
    _, marketplace = backend
    for path in (
        "/internal/users/999999/conversations",
        "/internal/conversations/999999",
        "/internal/conversations/999999/messages",
    ):
        response = await marketplace.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    bad = await marketplace.get("/internal/conversations/1/messages", params={"limit": 0})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_query"

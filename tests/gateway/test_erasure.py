"""A user's own data and their erasure, through the internal API of a real gateway: the export
holds what they sent and did; erasure is held while a report on them is open; once erased,
their sockets close, their hello is refused with 4403, the other party keeps the conversation
with "Deleted user" and redacted content, and the conversation's chain still verifies."""

from __future__ import annotations

import json
from typing import Any

import httpx

from parley.protocol import WS_4403_USER_ERASED
from tests.clients import Gateway, open_client
from tests.gateway.test_disputes import export_of, verdict, walk
from tests.world import World

Backend = tuple[Gateway, httpx.AsyncClient]


async def user_export(marketplace: httpx.AsyncClient, user_id: int) -> dict[str, Any]:
    response = await marketplace.get(f"/internal/users/{user_id}/export")
    assert response.status_code == 200, response.text
    exported: dict[str, Any] = json.loads(response.content)
    return exported


async def test_a_users_export_holds_what_they_sent_and_did(backend: Backend, world: World) -> None:
    gateway, marketplace = backend
    conversation = await world.open()
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        sent = await john.send_message(conversation.id, "Is it still avialable?")
        await john.ok("message.edit", message_id=sent["id"], content="Is it still available?")
        hers = await mary.send_message(conversation.id, "Yes, pick it up on Saturday")
        await john.ok("message.report", message_id=hers["id"], reason="rude")
        await john.ok("user.block", user_id=703)
    export = await user_export(marketplace, 701)
    assert export["format"] == "parley.user-export/1"
    assert export["profile"]["display_name"] == "John"
    assert [(c["id"], c["role"], c["other_user_id"]) for c in export["conversations"]] == [
        (conversation.id, "buyer", 702)
    ]
    assert [(m["id"], m["content"]) for m in export["messages"]] == [
        (sent["id"], "Is it still available?")
    ]
    assert [v["content"] for v in export["messages"][0]["versions"]] == ["Is it still avialable?"]
    assert [(r["message_id"], r["reason"]) for r in export["reports"]] == [(hers["id"], "rude")]
    assert [b["blocked_id"] for b in export["blocks"]] == [703]
    missing = await marketplace.get("/internal/users/999999/export")
    assert missing.status_code == 404


async def test_an_erased_user_is_gone_for_good_and_the_chain_still_verifies(
    backend: Backend, world: World
) -> None:
    gateway, marketplace = backend
    conversation = await world.open()
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        first = await john.send_message(conversation.id, "call me on 0151 2345 6789")
        await john.ok("message.edit", message_id=first["id"], content="my mail is j@example.com")
        offer = await john.send_message(
            conversation.id,
            "",
            message_type="offer",
            metadata={"amount_cents": 40000, "currency": "EUR"},
        )
        rude = await john.send_message(conversation.id, "answer me now")
        report = await mary.ok("message.report", message_id=rude["id"], reason="pushy")

        held = await marketplace.delete("/internal/users/701")
        assert held.status_code == 409
        assert held.json()["error"]["code"] == "held"
        resolved = await marketplace.post(
            f"/internal/reports/{report['report']['id']}/resolve", json={"resolution": "ok"}
        )
        assert resolved.status_code == 200, resolved.text

        erased = await marketplace.delete("/internal/users/701")
        assert erased.status_code == 200, erased.text
        assert erased.json() == {"user_id": 701, "messages_redacted": 3}
        assert await john.wait_closed() == WS_4403_USER_ERASED

        async with gateway.connect(702) as mary_again:
            listed = await mary_again.ok("conversation.list")
            [row] = listed["conversations"]
            assert row["peer"]["display_name"] == "Deleted user"
            history = await mary_again.ok("message.history", conversation_id=conversation.id)
            contents = {m["id"]: (m["content"], m["metadata"]) for m in history["messages"]}
        assert contents[first["id"]] == ("", {})
        assert contents[rude["id"]] == ("", {})
        assert contents[offer["id"]][1] == {"amount_cents": 40000, "currency": "EUR"}

    versions = await world.pool.fetch(
        "SELECT content FROM message_versions WHERE message_id = $1", first["id"]
    )
    assert [v["content"] for v in versions] == [""]
    assert (await world.pool.fetchval("SELECT offer_status FROM messages WHERE id = $1",
                                      offer["id"])) == "withdrawn"  # fmt: skip
    answer = await verdict(marketplace, conversation.id)
    assert answer["ok"] is True, answer
    export = await export_of(marketplace, conversation.id)
    assert walk(export) == answer["head"]
    erased_links = [link for link in export["chain"]["links"] if link["record"] is None]
    assert {link["message_id"] for link in erased_links} == {first["id"], offer["id"], rude["id"]}

    async with open_client(gateway.server.ws_url) as john_again:
        refusal = await john_again.error("hello", token=gateway.token(701))
        assert refusal["code"] == "user_erased"
        assert await john_again.wait_closed() == WS_4403_USER_ERASED
    again = await marketplace.put("/internal/users/701", json={"display_name": "John"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "user_erased"
    assert (await marketplace.delete("/internal/users/701")).json()["messages_redacted"] == 0

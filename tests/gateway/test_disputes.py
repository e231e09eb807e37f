"""The dispute export and its chain, through the internal API of a real gateway: a conversation
with edits, an unsend, a counter-offer, an accepted offer, a report and a block is exported
whole; its chain recomputes from the export alone; and a change made behind Parley's back, with
the triggers off, is named by verify."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from parley import store
from tests.clients import Gateway
from tests.world import World

Backend = tuple[Gateway, httpx.AsyncClient]


def _walk_from_the_docs() -> Callable[[dict[str, Any]], str | None]:
    """docs/disputes.md's check, from the export alone, run as the docs write it."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "disputes.md").read_text()
    [code] = re.findall(r"^```python\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    scope: dict[str, Any] = {}
    exec(compile(code, "docs/disputes.md", "exec"), scope)
    walk: Callable[[dict[str, Any]], str | None] = scope["walk"]
    return walk


walk = _walk_from_the_docs()


async def export_of(marketplace: httpx.AsyncClient, conversation_id: int) -> dict[str, Any]:
    response = await marketplace.get(f"/internal/conversations/{conversation_id}/export")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    exported: dict[str, Any] = json.loads(response.content)
    return exported


async def verdict(marketplace: httpx.AsyncClient, conversation_id: int) -> dict[str, Any]:
    response = await marketplace.get(f"/internal/conversations/{conversation_id}/verify")
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def behind_parleys_back(world: World, statement: str, *args: Any) -> None:
    """As a database administrator would: with session_replication_role = replica, no trigger
    fires, so no link is appended and no rule refuses the change."""
    async with world.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(statement, *args)


async def a_disputed_deal(gateway: Gateway, world: World) -> tuple[int, dict[str, int]]:
    """John and Mary: an edit, an unsend, an offer superseded, a counter-offer accepted, a
    report, a block."""
    conversation = await world.open()
    ids: dict[str, int] = {}
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        first = await john.send_message(conversation.id, "Is it still avialable?")
        await john.ok("message.edit", message_id=first["id"], content="Is it still available?")
        oops = await john.send_message(conversation.id, "my number is 0151 2345 6789")
        await john.ok("message.unsend", message_id=oops["id"])
        low, made = [
            await john.send_message(
                conversation.id,
                "",
                message_type="offer",
                metadata={"amount_cents": cents, "currency": "EUR"},
            )
            for cents in (35000, 38000)  # the second supersedes the first
        ]
        counter = (await mary.ok("offer.counter", message_id=made["id"], amount_cents=42000))[
            "messages"
        ][1]
        await john.ok("offer.accept", message_id=counter["id"])
        rude = await mary.send_message(conversation.id, "pay by western union or forget it")
        await john.ok("message.report", message_id=rude["id"], reason="asks to pay outside")
        await john.ok("user.block", user_id=702)
        ids |= {
            "first": first["id"],
            "oops": oops["id"],
            "low": low["id"],
            "offer": made["id"],
            "counter": counter["id"],
            "rude": rude["id"],
        }
    return conversation.id, ids


async def test_the_export_holds_the_whole_dispute_and_its_chain_walks(
    backend: Backend, world: World
) -> None:
    gateway, marketplace = backend
    conversation_id, ids = await a_disputed_deal(gateway, world)
    async with gateway.connect(702) as mary:  # Mary clears it all: the export keeps it
        await mary.ok("conversation.delete", conversation_id=conversation_id)
    export = await export_of(marketplace, conversation_id)

    assert export["format"] == "parley.dispute-export/1"
    assert [u["id"] for u in export["users"]] == [701, 702]
    assert export["product"]["status"] == "reserved"
    assert export["conversation"]["seller"]["cleared_seq"] == export["conversation"]["last_seq"]
    messages = {m["id"]: m for m in export["messages"]}
    assert len(messages) == export["conversation"]["last_seq"]
    edited = messages[ids["first"]]
    assert edited["content"] == "Is it still available?"
    assert [(v["change"], v["content"], v["changed_by"]) for v in edited["versions"]] == [
        ("edit", "Is it still avialable?", 701)
    ]
    unsent = messages[ids["oops"]]
    assert unsent["content"] == ""
    assert unsent["unsent_at"] is not None
    assert [(v["change"], v["content"]) for v in unsent["versions"]] == [
        ("unsend", "my number is 0151 2345 6789")
    ]
    offers = {o["message_id"]: o for o in export["offers"]}
    assert [(t["status"], t["by"]) for t in offers[ids["low"]]["transitions"]] == [
        ("superseded", 701)
    ]
    assert [(t["status"], t["by"]) for t in offers[ids["offer"]]["transitions"]] == [
        ("countered", 702)
    ]
    assert offers[ids["counter"]]["made_by"] == 702
    assert [(t["status"], t["by"]) for t in offers[ids["counter"]]["transitions"]] == [
        ("accepted", 701)
    ]
    assert [(r["message_id"], r["reporter_id"]) for r in export["reports"]] == [(ids["rude"], 701)]
    assert [(b["blocker_id"], b["blocked_id"]) for b in export["blocks"]] == [(701, 702)]
    assert export["conversation"]["buyer"]["blocked_the_other"] is True

    kinds = [link["kind"] for link in export["chain"]["links"]]
    assert kinds.count("message") == len(messages)
    assert (kinds.count("edit"), kinds.count("unsend")) == (1, 1)
    assert kinds.count("offer") == 3  # superseded, countered, accepted
    head = walk(export)
    assert await verdict(marketplace, conversation_id) == {
        "ok": True,
        "links": len(kinds),
        "head": head,
        "broken": None,
    }


async def test_a_change_behind_parleys_back_is_named_by_verify(
    backend: Backend, world: World
) -> None:
    gateway, marketplace = backend
    conversation_id, ids = await a_disputed_deal(gateway, world)
    before = await export_of(marketplace, conversation_id)
    await behind_parleys_back(
        world,
        "UPDATE messages SET content = 'pay by bank transfer, all fine' WHERE id = $1",
        ids["rude"],
    )
    answer = await verdict(marketplace, conversation_id)
    link = next(
        link
        for link in before["chain"]["links"]
        if link["kind"] == "message" and link["message_id"] == ids["rude"]
    )
    assert answer["ok"] is False
    assert answer["broken"]["n"] == link["n"]
    assert answer["broken"]["message_id"] == ids["rude"]
    assert "record" in answer["broken"]["reason"]


async def test_a_forged_link_or_an_unchained_message_is_found(
    backend: Backend, world: World
) -> None:
    gateway, marketplace = backend
    conversation = await world.open()
    async with gateway.connect(701) as john:
        for text in ("one", "two", "three"):
            await john.send_message(conversation.id, text)
    await behind_parleys_back(
        world,
        "UPDATE messages SET chain_digest = sha256('forged')"
        " WHERE conversation_id = $1 AND chain_n = 2",
        conversation.id,
    )
    answer = await verdict(marketplace, conversation.id)
    assert (answer["ok"], answer["broken"]["n"]) == (False, 2)
    lamp, _ = await store.upsert_product(world.pool, 7011, world.mary.id, "Desk lamp")
    other, _ = await store.open_conversation(world.pool, world.eve.id, lamp.id)
    await behind_parleys_back(
        world,
        "INSERT INTO messages (conversation_id, seq, sender_id, recipient_id, message_type,"
        " content, client_msg_id) VALUES ($1, 1, 703, 702, 'text', 'slipped in', 'x1')",
        other.id,
    )
    answer = await verdict(marketplace, other.id)
    assert answer["ok"] is False
    assert answer["broken"]["n"] is None
    assert "no link" in answer["broken"]["reason"]


async def test_links_cannot_be_rewritten_with_the_triggers_on(
    backend: Backend, world: World
) -> None:
    gateway, _ = backend
    conversation = await world.open()
    async with gateway.connect(701) as john:
        sent = await john.send_message(conversation.id, "one")
        await john.ok("message.edit", message_id=sent["id"], content="two")
    for statement in (
        "UPDATE messages SET chain_hash = sha256('forged') WHERE id = $1",
        "UPDATE messages SET chain_n = chain_n + 1 WHERE id = $1",
        "UPDATE chain_links SET digest = sha256('forged') WHERE message_id = $1",
        "DELETE FROM chain_links WHERE message_id = $1",
    ):
        with pytest.raises(asyncpg.RestrictViolationError):
            await world.pool.execute(statement, sent["id"])
    assert (
        await world.pool.fetchval(
            "SELECT count(*) FROM chain_links WHERE message_id = $1", sent["id"]
        )
        == 1
    )


async def test_a_chain_cut_short_at_its_end_is_found(backend: Backend, world: World) -> None:
    """The last message deleted, its link with it, leaves a chain that walks: the head the
    conversation row keeps says it is short."""
    gateway, marketplace = backend
    conversation = await world.open()
    async with gateway.connect(701) as john:
        for text in ("one", "two", "the one I regret"):
            last = await john.send_message(conversation.id, text)
    assert (await verdict(marketplace, conversation.id))["ok"] is True
    await behind_parleys_back(world, "DELETE FROM messages WHERE id = $1", last["id"])
    answer = await verdict(marketplace, conversation.id)
    assert answer["ok"] is False
    assert answer["links"] == 2
    assert "head is link 3" in answer["broken"]["reason"]


async def test_export_and_verify_of_no_such_conversation_are_404(backend: Backend) -> None:
    _, marketplace = backend
    for path in ("export", "verify"):
        response = await marketplace.get(f"/internal/conversations/999999/{path}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"

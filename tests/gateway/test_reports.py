"""Reports: a participant reports the other side's message over a real socket; the
marketplace reads the queue, with the evidence, and resolves it over the internal API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.clients import Client, Gateway
from tests.world import World

Backend = tuple[Gateway, httpx.AsyncClient]


@pytest.fixture
async def scene(backend: Backend, world: World) -> AsyncIterator[tuple[Client, Client, int]]:
    gateway, _ = backend
    conversation = await world.open()
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        yield john, mary, conversation.id


async def test_a_report_is_stored_once_and_reaches_the_queue_with_the_evidence(
    backend: Backend,
    scene: tuple[Client, Client, int],
) -> None:
    _, http = backend
    john, mary, conversation_id = scene
    message = await mary.send_message(conversation_id, "Pay me by wire, outside the app")
    await mary.ok("message.edit", message_id=message["id"], content="Hello!")
    first = await john.ok("message.report", message_id=message["id"], reason="scam attempt")
    assert first["created"] is True
    assert (first["report"]["status"], first["report"]["reporter_id"]) == ("open", 701)
    again = await john.ok("message.report", message_id=message["id"], reason="again")
    assert again == {"report": first["report"], "created": False}
    assert mary.pending() == [], "the reported side is not told"

    queue = (await http.get("/internal/reports", params={"status": "open"})).json()
    [case] = queue["reports"]
    assert case["report"] == first["report"]
    assert case["message"]["content"] == "Hello!"
    assert [v["content"] for v in case["versions"]] == ["Pay me by wire, outside the app"]
    assert queue["next_after"] is None

    resolved = await http.post(
        f"/internal/reports/{first['report']['id']}/resolve", json={"resolution": "warned"}
    )
    assert resolved.status_code == 200
    report = resolved.json()["report"]
    assert (report["status"], report["resolution"]) == ("resolved", "warned")
    assert report["resolved_at"] is not None
    assert (await http.get("/internal/reports")).json()["reports"] == []
    done = (await http.get("/internal/reports", params={"status": "resolved"})).json()
    assert [c["report"]["id"] for c in done["reports"]] == [report["id"]]
    again_resolved = await http.post(f"/internal/reports/{report['id']}/resolve", json={})
    assert again_resolved.json()["report"]["resolved_at"] == report["resolved_at"]


async def test_what_cannot_be_reported_is_refused(
    backend: Backend,
    scene: tuple[Client, Client, int],
) -> None:
    gateway, http = backend
    john, mary, conversation_id = scene
    own = await john.send_message(conversation_id, "my own words")
    theirs = await mary.send_message(conversation_id, "hello")
    assert (await john.error("message.report", message_id=own["id"], reason="x"))[
        "code"
    ] == "forbidden"
    for reason in ("", "   ", "\u200b", "x" * 1001, "a\x00"):
        refused = await john.error("message.report", message_id=theirs["id"], reason=reason)
        assert refused["code"] in ("invalid_argument", "invalid_text"), reason[:5]
    async with gateway.connect(703) as eve:
        hidden = await eve.error("message.report", message_id=theirs["id"], reason="x")
        unknown = await eve.error("message.report", message_id=10**12, reason="x")
    assert hidden["code"] == unknown["code"] == "not_found"
    await john.ok("conversation.delete", conversation_id=conversation_id)
    cleared = await john.error("message.report", message_id=theirs["id"], reason="x")
    assert cleared["code"] == "not_found"
    assert (await http.get("/internal/reports")).json()["reports"] == []


async def test_the_queue_pages_and_refuses_bad_queries(
    backend: Backend,
    scene: tuple[Client, Client, int],
) -> None:
    _, http = backend
    john, mary, conversation_id = scene
    for n in range(5):
        message = await mary.send_message(conversation_id, f"spam {n}")
        await john.ok("message.report", message_id=message["id"], reason=f"spam {n}")
    first = (await http.get("/internal/reports", params={"limit": 3})).json()
    assert len(first["reports"]) == 3
    rest = (
        await http.get("/internal/reports", params={"limit": 3, "after": first["next_after"]})
    ).json()
    assert [c["report"]["reason"] for c in first["reports"] + rest["reports"]] == [
        f"spam {n}" for n in range(5)
    ]
    assert rest["next_after"] is None
    for params in ({"status": "closed"}, {"limit": 0}, {"limit": "many"}, {"after": -1},
                   {"after": str(2**63)}):  # fmt: skip
        response = await http.get("/internal/reports", params=params)
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == "invalid_query"
    missing = await http.post("/internal/reports/999999/resolve", json={})
    assert missing.status_code == 404
    async with httpx.AsyncClient(base_url=str(http.base_url)) as anonymous:
        assert (await anonymous.get("/internal/reports")).status_code == 401

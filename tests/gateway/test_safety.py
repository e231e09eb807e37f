"""Off-platform contact warnings over real sockets: a flagged message is delivered with its
`safety` kinds, stored with it; an edit cannot take a warning back; a sender past
PARLEY_SAFETY_REPORT_AFTER flagged messages in a day gets one report from Parley; and the
settings that switch it off or tune it are read and checked."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import asyncpg
import pytest

from parley.config import ConfigError, Settings
from parley.safety import DEFAULT_PAYMENT_PHRASES
from tests.clients import Gateway
from tests.conftest import gateway_settings, running_gateway
from tests.world import World

PHONE = "Call me on +49 151 23456789, easier than this app"


@pytest.fixture
async def strict_gateway(database_url: str, pool: asyncpg.Pool) -> AsyncIterator[Gateway]:
    """Parley reports a sender after more than one flagged message a day."""
    settings = dataclasses.replace(gateway_settings(database_url), safety_report_after=1)
    async with running_gateway(settings) as running:
        yield running


async def test_a_flagged_message_is_delivered_with_its_kinds_and_reported_once(
    strict_gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with strict_gateway.connect(701) as john, strict_gateway.connect(702) as mary:
        sent = await john.send_message(conversation.id, PHONE)
        assert sent["safety"] == ["phone"]
        got = await mary.event("message.new")
        assert got["message"]["safety"] == ["phone"]
        clean = await john.send_message(conversation.id, "Would you take 420?")
        assert clean["safety"] == []
        # One more flagged message passes the threshold (1): Parley reports John, once. The
        # report counts what was flagged when it is written, so it is awaited before the next.
        await john.send_message(conversation.id, "or write to john at gmail dot com")
        await strict_gateway.chat.moderation.idle()
        await john.send_message(conversation.id, "Western Union is fine too")
        await strict_gateway.chat.moderation.idle()
    rows = await world.pool.fetch(
        "SELECT reporter_id, subject_id, reason, status FROM reports ORDER BY id"
    )
    assert [tuple(row) for row in rows] == [
        (None, 701, "2 messages with off-platform contact today", "open")
    ]
    stored = await world.pool.fetch(
        "SELECT safety FROM messages WHERE conversation_id = $1 ORDER BY seq", conversation.id
    )
    assert [row["safety"] for row in stored] == [["phone"], [], ["email"], ["payment"]]


async def test_the_moderation_queue_shows_parleys_report_as_systems(
    strict_gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with strict_gateway.connect(701) as john:
        for text in (PHONE, "IBAN DE89 3704 0044 0532 0130 00"):
            await john.send_message(conversation.id, text)
        await strict_gateway.chat.moderation.idle()
    [case] = await strict_gateway.chat.moderation.cases("open", 0, 10)
    assert (case.report.reporter, case.report.reporter_id) == ("system", None)
    assert case.message.safety == ["iban"]


async def test_an_edit_is_scanned_and_cannot_take_a_warning_back(
    gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    async with gateway.connect(701) as john:
        sent = await john.send_message(conversation.id, "hello")
        edited = await john.ok("message.edit", message_id=sent["id"], content=PHONE)
        assert edited["message"]["safety"] == ["phone"]
        again = await john.ok("message.edit", message_id=sent["id"], content="hi!")
        assert again["message"]["safety"] == ["phone"]


async def test_safety_off_flags_nothing(database_url: str, world: World) -> None:
    settings = dataclasses.replace(gateway_settings(database_url), safety=None)
    conversation = await world.open()
    async with running_gateway(settings) as running, running.connect(701) as john:
        sent = await john.send_message(conversation.id, PHONE)
        assert sent["safety"] == []


def test_the_safety_settings_are_read_and_checked() -> None:
    base = {"PARLEY_JWT_SECRET": "x" * 32}
    assert Settings.from_env(base | {"PARLEY_SAFETY": "off"}).safety is None
    tuned = Settings.from_env(
        base
        | {
            "PARLEY_SAFETY_REGION": "gb",
            "PARLEY_SAFE_LINK_HOSTS": "Marketplace.example, cdn.example",
            "PARLEY_SAFETY_PAYMENT_PHRASES": "crypto, gift card",
            "PARLEY_SAFETY_REPORT_AFTER": "5",
        }
    )
    assert tuned.safety is not None
    assert tuned.safety.region == "GB"
    assert tuned.safety.safe_hosts == ("marketplace.example", "cdn.example")
    assert tuned.safety.payment_phrases == ("crypto", "gift card")
    assert tuned.safety_report_after == 5
    default = Settings.from_env(base).safety
    assert default is not None
    assert default.payment_phrases == DEFAULT_PAYMENT_PHRASES
    for name, value, words in (
        ("PARLEY_SAFETY", "loud", "PARLEY_SAFETY must be one of off, warn"),
        ("PARLEY_SAFETY_REGION", "XX", "PARLEY_SAFETY_REGION must be a two-letter"),
        ("PARLEY_SAFETY_REPORT_AFTER", "-1", "PARLEY_SAFETY_REPORT_AFTER must not be negative"),
    ):
        with pytest.raises(ConfigError, match=words):
            Settings.from_env(base | {name: value})

"""The internal API's dispute endpoints: a conversation's export, streamed, and the check of
its chain against the tables (parley/store/disputes.py, parley/store/chain.py).

The structs below describe the export for the OpenAPI document; the export itself is written
piece by piece in their shape, never held whole.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from parley.errors import NotFound
from parley.models import Message, Report, User
from parley.store import chain, disputes
from parley.web.openapi import Operation
from parley.web.replies import json_response, streamed_json


class ExportedVersion(msgspec.Struct, frozen=True):
    """The content and metadata a message had before one change."""

    id: int
    change: Literal["edit", "unsend"]
    content: str
    metadata: dict[str, Any]
    changed_by: int
    changed_at: datetime


class ExportedMessage(Message, frozen=True):
    """Every message, cleared or unsent, with the versions before each change."""

    versions: list[ExportedVersion] = msgspec.field(default_factory=list)


class ExportedSide(msgspec.Struct, frozen=True):
    user_id: int
    cleared_seq: int
    deleted: bool
    archived: bool
    blocked_the_other: bool
    muted_until: datetime | None
    read_seq: int
    read_at: datetime | None
    delivered_seq: int
    delivered_at: datetime | None


class ExportedConversation(msgspec.Struct, frozen=True):
    id: int
    product_id: int
    status: str
    created_at: datetime
    last_seq: int
    chain_length: int
    buyer: ExportedSide
    seller: ExportedSide


class ExportedProduct(msgspec.Struct, frozen=True):
    id: int
    seller_id: int
    title: str
    price_cents: int | None
    currency: str
    image_url: str | None
    status: str
    reserved_for: int | None
    created_at: datetime
    updated_at: datetime


class ExportedUser(User, frozen=True):
    created_at: datetime


class ExportedBlock(msgspec.Struct, frozen=True):
    blocker_id: int
    blocked_id: int
    created_at: datetime


class OfferTransition(msgspec.Struct, frozen=True):
    status: str
    at: datetime
    by: int | None


class ExportedOffer(msgspec.Struct, frozen=True):
    message_id: int
    made_by: int | None
    made_at: datetime
    amount_cents: int | None
    currency: str | None
    status: str | None
    transitions: list[OfferTransition]


class ChainLink(msgspec.Struct, frozen=True):
    """One link: ``hash = sha256(previous hash || kind || digest)``, ``digest =
    sha256(record)``, each record field as ``<bytes>:<utf-8>`` or ``-`` for null."""

    n: int
    kind: Literal["message", "edit", "unsend", "offer"]
    message_id: int
    at: datetime
    record: list[str | None] | None
    digest: str
    hash: str


class ExportedChain(msgspec.Struct, frozen=True):
    links: list[ChainLink]
    head: str | None


class ConversationExport(msgspec.Struct, frozen=True):
    """Everything Parley holds about a conversation, read in one snapshot (docs/disputes.md)."""

    format: Literal["parley.dispute-export/1"]
    exported_at: datetime
    conversation: ExportedConversation
    product: ExportedProduct | None
    users: list[ExportedUser]
    blocks: list[ExportedBlock]
    reports: list[Report]
    offers: list[ExportedOffer]
    messages: list[ExportedMessage]
    chain: ExportedChain


async def get_conversation_export(request: Request, conversation_id: int, _: None) -> Response:
    return await streamed_json(
        request.app.state.services.pool,
        lambda conn: disputes.conversation_export(conn, conversation_id),
        f"conversation-{conversation_id}.json",
    )


async def get_conversation_verify(request: Request, conversation_id: int, _: None) -> Response:
    pool = request.app.state.services.pool
    async with pool.acquire() as conn:
        if (
            await conn.fetchval("SELECT 1 FROM conversations WHERE id = $1", conversation_id)
            is None
        ):
            raise NotFound(f"conversation {conversation_id} not found")
        return json_response(await chain.verify(conn, conversation_id))


OPERATIONS: Final[list[Operation]] = [
    Operation(
        "GET",
        "/internal/conversations/{id}/export",
        "Everything about a conversation for a dispute, streamed: every message (cleared,"
        " unsent, each earlier version), offers, receipts, reports, blocks, and its chain",
        None,
        {
            200: ("the export (docs/disputes.md)", ConversationExport),
            404: ("no such conversation (`not_found`)", None),
        },
        get_conversation_export,
        "exportConversation",
        links={"VerifyConversation": ("verifyConversation", "$request.path.id")},
    ),
    Operation(
        "GET",
        "/internal/conversations/{id}/verify",
        "Rebuild every link of the conversation's chain from the tables: ok, or the first"
        " link that does not match",
        None,
        {
            200: ("the verdict", chain.Verdict),
            404: ("no such conversation (`not_found`)", None),
        },
        get_conversation_verify,
        "verifyConversation",
    ),
]

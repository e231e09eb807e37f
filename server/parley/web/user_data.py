"""The internal API's endpoints for a user's own data: the export a data-access request is
answered with, and erasure (parley/store/erasure.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from parley.models import Message
from parley.protocol import WS_4403_USER_ERASED
from parley.store import erasure
from parley.web.openapi import Operation
from parley.web.replies import json_response, streamed_json


class ExportedProfile(msgspec.Struct, frozen=True):
    id: int
    display_name: str
    avatar_url: str | None
    show_presence: bool
    last_seen_at: datetime | None
    created_at: datetime
    updated_at: datetime
    erased_at: datetime | None


class UserConversation(msgspec.Struct, frozen=True):
    id: int
    product_id: int
    product_title: str
    role: Literal["buyer", "seller"]
    other_user_id: int
    created_at: datetime
    last_message_at: datetime | None
    last_seq: int


class UserReport(msgspec.Struct, frozen=True):
    id: int
    message_id: int
    reason: str
    status: Literal["open", "resolved"]
    resolution: str | None
    created_at: datetime
    resolved_at: datetime | None


class UserBlock(msgspec.Struct, frozen=True):
    blocked_id: int
    created_at: datetime


class UserVersion(msgspec.Struct, frozen=True):
    change: Literal["edit", "unsend"]
    content: str
    metadata: dict[str, Any]
    changed_at: datetime


class UserMessage(Message, frozen=True):
    versions: list[UserVersion] = msgspec.field(default_factory=list)


class UserExport(msgspec.Struct, frozen=True):
    """What Parley holds about a user: their profile, their conversations, every message they
    sent (with its earlier versions), and the reports and blocks they made."""

    format: Literal["parley.user-export/1"]
    exported_at: datetime
    profile: ExportedProfile
    conversations: list[UserConversation]
    reports: list[UserReport]
    blocks: list[UserBlock]
    messages: list[UserMessage]


class Erased(msgspec.Struct, frozen=True):
    user_id: int
    messages_redacted: int


async def get_user_export(request: Request, user_id: int, _: None) -> Response:
    return await streamed_json(
        request.app.state.services.pool,
        lambda conn: erasure.user_export(conn, user_id),
        f"user-{user_id}.json",
    )


async def delete_user(request: Request, user_id: int, _: None) -> Response:
    services = request.app.state.services
    redacted = await erasure.erase_user(services.pool, user_id)
    # Their sockets, on every gateway: a hello from then on is refused with the same code.
    await services.events.close_user(user_id, WS_4403_USER_ERASED, "this user was erased")
    return json_response(Erased(user_id, redacted))


OPERATIONS: Final[list[Operation]] = [
    Operation(
        "GET",
        "/internal/users/{id}/export",
        "Everything Parley holds about a user, streamed: profile, conversations, the messages"
        " they sent with every earlier version, the reports and blocks they made",
        None,
        {
            200: ("the user's data", UserExport),
            404: ("no such user (`not_found`)", None),
        },
        get_user_export,
        "exportUser",
    ),
    Operation(
        "DELETE",
        "/internal/users/{id}",
        "Erase a user: profile blanked to `Deleted user`, the content of every message they"
        " sent redacted (digests kept), their sockets closed with 4403 and their tokens"
        " refused from then on; the other party keeps the conversation",
        None,
        {
            200: ("erased (again: nothing more to redact)", Erased),
            404: ("no such user (`not_found`)", None),
            409: ("a report on the user's messages is open (`held`): resolve it first", None),
        },
        delete_user,
        "eraseUser",
    ),
]

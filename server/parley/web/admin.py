"""The internal API's admin reads, paged: a user's conversations, one conversation with both
sides' state, and its messages as stored (parley/store/admin.py)."""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from parley.models import Message
from parley.store import admin
from parley.validation import MAX_ID, PageLimit
from parley.web.disputes import ExportedConversation
from parley.web.openapi import Operation
from parley.web.replies import json_response
from parley.web.user_data import UserConversation

_After = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]


class AfterQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    after: _After = 0  # the last conversation id seen
    limit: PageLimit = 50


class AfterSeqQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    after_seq: _After = 0  # the last seq seen
    limit: PageLimit = 50


class UserConversationList(msgspec.Struct, frozen=True):
    conversations: list[UserConversation]
    next_after: int | None  # pass as ``after`` for the next page; null on the last


class MessageList(msgspec.Struct, frozen=True):
    messages: list[Message]
    next_after_seq: int | None  # pass as ``after_seq`` for the next page; null on the last


async def get_user_conversations(request: Request, user_id: int, query: AfterQuery) -> Response:
    pool = request.app.state.services.pool
    rows = await admin.user_conversations(pool, user_id, query.after, query.limit)
    page = [msgspec.convert(row, UserConversation) for row in rows]
    last = page[-1].id if len(page) == query.limit else None
    return json_response(UserConversationList(page, last))


async def get_conversation(request: Request, conversation_id: int, _: None) -> Response:
    pool = request.app.state.services.pool
    record = await admin.conversation(pool, conversation_id)
    return json_response(msgspec.convert(record, ExportedConversation))


async def get_messages(request: Request, conversation_id: int, query: AfterSeqQuery) -> Response:
    pool = request.app.state.services.pool
    page = await admin.messages(pool, conversation_id, query.after_seq, query.limit)
    last = page[-1].seq if len(page) == query.limit else None
    return json_response(MessageList(page, last))


OPERATIONS: Final[list[Operation]] = [
    Operation(
        "GET",
        "/internal/users/{id}/conversations",
        "A user's conversations, as buyer and as seller, by id",
        None,
        {
            200: ("a page; next_after for the next one", UserConversationList),
            404: ("no such user (`not_found`)", None),
        },
        get_user_conversations,
        "listUserConversations",
        query=AfterQuery,
        links={"GetConversation": ("getConversation", "$response.body#/conversations/0/id")},
    ),
    Operation(
        "GET",
        "/internal/conversations/{id}",
        "A conversation with both sides' state: cleared, archived, blocked, muted, read and"
        " delivered watermarks",
        None,
        {
            200: ("the conversation", ExportedConversation),
            404: ("no such conversation (`not_found`)", None),
        },
        get_conversation,
        "getConversation",
        links={"ListMessages": ("listConversationMessages", "$request.path.id")},
    ),
    Operation(
        "GET",
        "/internal/conversations/{id}/messages",
        "A conversation's messages by seq, as stored: cleared, unsent and erased ones too",
        None,
        {
            200: ("a page; next_after_seq for the next one", MessageList),
            404: ("no such conversation (`not_found`)", None),
        },
        get_messages,
        "listConversationMessages",
        query=AfterSeqQuery,
    ),
]

"""The internal API the marketplace backend calls: the bearer-token check, path ids, bodies
and queries decoded, errors mapped to statuses, and each endpoint a call to one use case.
Its OpenAPI document is built from OPERATIONS (docs/openapi.json)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from parley.errors import (
    ClientMsgIdConflict,
    Forbidden,
    Held,
    InvalidArgument,
    InvalidMessage,
    NotFound,
    NotReserved,
    NotRetryable,
    ParleyError,
    ProductUnavailable,
    Unavailable,
    UserErased,
)
from parley.models import SentMessage
from parley.store import notifications
from parley.usecases.chat import Chat
from parley.validation import MAX_JSON_DEPTH, id_from_text, nests_deeper_than
from parley.web import admin, disputes, user_data
from parley.web.bodies import (
    NotificationAnswer,
    NotificationList,
    NotificationQuery,
    ProductAnswer,
    ProductBody,
    ProductView,
    ReportAnswer,
    ReportList,
    ReportQuery,
    ResolveBody,
    SystemMessageBody,
    UserAnswer,
    UserBody,
    decode_body,
)
from parley.web.openapi import Operation, dumps
from parley.web.replies import error_response, json_response, read_body

_STATUS_BY_ERROR: dict[type[ParleyError], int] = {
    NotFound: 404,
    Forbidden: 403,
    ClientMsgIdConflict: 409,
    ProductUnavailable: 409,
    NotReserved: 409,
    NotRetryable: 409,
    Held: 409,
    UserErased: 409,
    InvalidArgument: 400,
    InvalidMessage: 400,
    Unavailable: 503,
}


def internal(op: Operation) -> Callable[[Request], Awaitable[Response]]:
    """Bearer-token check, path id, body or query decoding, and error mapping around an
    internal endpoint: the handler only calls its use case and answers."""
    decoder = msgspec.json.Decoder(op.body) if op.body is not None else None

    async def endpoint(request: Request) -> Response:
        if (refusal := _refuse_without_service_token(request)) is not None:
            return refusal
        path_id = None
        if "{id}" in op.path:
            raw_id = request.path_params["id"]
            path_id = id_from_text(raw_id)
            if path_id is None:
                return error_response(404, "not_found", f"no such id {raw_id[:40]!r}")
        payload: Any = None
        if decoder is not None:
            limit = request.app.state.services.settings.limits.max_body_bytes
            raw = await read_body(request, limit)
            if raw is None:
                return error_response(413, "payload_too_large", f"the body is over {limit} bytes")
            if nests_deeper_than(raw):
                message = f"the body nests deeper than {MAX_JSON_DEPTH}"
                return error_response(400, "invalid_body", message)
            assert op.body is not None  # a decoder is made for a body only
            try:
                payload = decode_body(decoder, op.body, raw)
            except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as error:
                return error_response(400, "invalid_body", str(error)[:200])
        elif op.query is not None:
            try:
                payload = msgspec.convert(dict(request.query_params), op.query, strict=False)
            except msgspec.ValidationError as error:
                return error_response(400, "invalid_query", str(error)[:200])
        try:
            response: Response = await op.handler(request, path_id, payload)
        except ParleyError as error:
            status = next((s for cls, s in _STATUS_BY_ERROR.items() if isinstance(error, cls)), 500)
            return error_response(status, error.code, str(error))
        return response

    return endpoint


def _refuse_without_service_token(request: Request) -> Response | None:
    """The answer to a request without the marketplace's bearer token, or None."""
    expected = request.app.state.services.settings.service_token
    if not expected:
        return error_response(503, "disabled", "the internal API is off: set PARLEY_SERVICE_TOKEN")
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
        return error_response(401, "unauthorized", "a valid service bearer token is required")
    return None


async def put_user(request: Request, user_id: int, body: UserBody) -> Response:
    chat: Chat = request.app.state.services.chat
    user = await chat.update_user(user_id, body.display_name, body.avatar_url)
    return json_response(UserAnswer(user))


async def put_product(request: Request, product_id: int, body: ProductBody) -> Response:
    chat: Chat = request.app.state.services.chat
    product, changed = await chat.update_product(
        product_id,
        body.seller_id,
        body.title,
        price_cents=body.price_cents,
        currency=body.currency,
        image_url=body.image_url,
        status=body.status,
    )
    return json_response(ProductAnswer(product, changed))


async def get_product(request: Request, product_id: int, _: None) -> Response:
    chat: Chat = request.app.state.services.chat
    return json_response(ProductView(await chat.product(product_id)))


async def post_system_message(
    request: Request, conversation_id: int, body: SystemMessageBody
) -> Response:
    chat: Chat = request.app.state.services.chat
    sent = await chat.post_system_message(
        conversation_id,
        client_msg_id=body.client_msg_id,
        content=body.content,
        metadata=body.metadata,
    )
    return json_response(sent, status=200 if sent.replayed else 201)


async def get_reports(request: Request, _: None, query: ReportQuery) -> Response:
    chat: Chat = request.app.state.services.chat
    cases = await chat.moderation.cases(query.status, query.after, query.limit)
    last = cases[-1].report.id if len(cases) == query.limit else None
    return json_response(ReportList(cases, last))


async def resolve_report(request: Request, report_id: int, body: ResolveBody) -> Response:
    chat: Chat = request.app.state.services.chat
    return json_response(ReportAnswer(await chat.moderation.resolve(report_id, body.resolution)))


async def get_notifications(request: Request, _: None, query: NotificationQuery) -> Response:
    pool = request.app.state.services.pool
    page = await notifications.list_notifications(
        pool, query.status, query.user_id, query.after, query.limit
    )
    last = page[-1].id if len(page) == query.limit else None
    return json_response(NotificationList(page, last))


async def retry_notification(request: Request, notification_id: int, _: None) -> Response:
    pool = request.app.state.services.pool
    return json_response(NotificationAnswer(await notifications.retry(pool, notification_id)))


OPERATIONS: Final[list[Operation]] = [
    Operation(
        "PUT",
        "/internal/users/{id}",
        "Create or update a user as the marketplace knows them",
        UserBody,
        {
            200: ("the user as stored", UserAnswer),
            409: ("the user was erased (`user_erased`): a profile is never written again", None),
        },
        put_user,
        "putUser",
    ),
    Operation(
        "PUT",
        "/internal/products/{id}",
        "Create or update a listing; sold or deleted archives its conversations",
        ProductBody,
        {
            200: ("the product, and the conversations whose status changed", ProductAnswer),
            403: ("the product belongs to another seller (`forbidden`)", None),
            409: (
                "`reserved` for a listing no accepted offer reserved (`not_reserved`): only an"
                " offer reserves, and `reserved` keeps a reservation",
                None,
            ),
        },
        put_product,
        "putProduct",
        links={"GetProduct": ("getProduct", "$request.path.id")},
    ),
    Operation(
        "GET",
        "/internal/products/{id}",
        "A listing as Parley has it: status `reserved` (with `reserved_for`) after an accept",
        None,
        {200: ("the product", ProductView), 404: ("no such product (`not_found`)", None)},
        get_product,
        "getProduct",
    ),
    Operation(
        "POST",
        "/internal/conversations/{id}/messages",
        "Post a system notice in a conversation (idempotent on client_msg_id)",
        SystemMessageBody,
        {
            200: ("a retry of a notice already stored: nothing written", SentMessage),
            201: ("the notice, stored and sent", SentMessage),
            409: ("client_msg_id was used for another notice", None),
        },
        post_system_message,
        "postSystemMessage",
    ),
    Operation(
        "GET",
        "/internal/reports",
        "Reports of messages, oldest first, each with the message and its earlier versions",
        None,
        {200: ("a page of reports; next_after for the next one", ReportList)},
        get_reports,
        "listReports",
        query=ReportQuery,
        links={"ResolveReport": ("resolveReport", "$response.body#/reports/0/report/id")},
    ),
    Operation(
        "POST",
        "/internal/reports/{id}/resolve",
        "Close a report (again: nothing changes but the resolution text)",
        ResolveBody,
        {200: ("the report, resolved", ReportAnswer)},
        resolve_report,
        "resolveReport",
    ),
    Operation(
        "GET",
        "/internal/notifications",
        "Offline notifications, oldest first: pending, delivered, skipped (with the reason) or"
        " failed (with the attempts and the last error)",
        None,
        {200: ("a page of notifications; next_after for the next one", NotificationList)},
        get_notifications,
        "listNotifications",
        query=NotificationQuery,
        links={"RetryNotification": ("retryNotification", "$response.body#/notifications/0/id")},
    ),
    Operation(
        "POST",
        "/internal/notifications/{id}/retry",
        "Send a failed notification again: a fresh round of attempts, the same webhook-id",
        None,
        {
            200: ("the notification, pending again", NotificationAnswer),
            404: ("no such notification (`not_found`)", None),
            409: ("the notification has not failed (`not_failed`)", None),
        },
        retry_notification,
        "retryNotification",
    ),
    *disputes.OPERATIONS,
    *user_data.OPERATIONS,
    *admin.OPERATIONS,
]
_DOCUMENT: Final = dumps(OPERATIONS).encode()


async def openapi_document(request: Request) -> Response:
    """The internal API's OpenAPI 3.1 document (docs/openapi.json), behind the same token."""
    refusal = _refuse_without_service_token(request)
    return refusal or Response(_DOCUMENT, media_type="application/json")


def routes() -> list[BaseRoute]:
    return [Route("/internal/openapi.json", openapi_document), *_internal_routes()]


def _internal_routes() -> list[BaseRoute]:
    """One route per path, whatever its methods, so a 405 lists all of them in ``Allow``."""
    by_path: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {}
    for op in OPERATIONS:
        by_path.setdefault(op.path, {})[op.method] = internal(op)

    def route(path: str, endpoints: dict[str, Callable[[Request], Awaitable[Response]]]) -> Route:
        async def endpoint(request: Request) -> Response:
            # Starlette answers HEAD wherever GET is allowed.
            method = "GET" if request.method == "HEAD" else request.method
            return await endpoints[method](request)

        return Route(path, endpoint, methods=list(endpoints))

    return [route(path, endpoints) for path, endpoints in by_path.items()]

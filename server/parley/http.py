"""Plain HTTP: health for load balancers, and the internal API the marketplace backend calls."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any, Final

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from parley import metrics
from parley.chat import Chat
from parley.config import Limits
from parley.errors import (
    ClientMsgIdConflict,
    Forbidden,
    InvalidArgument,
    InvalidMessage,
    NotFound,
    NotReserved,
    ParleyError,
    ProductUnavailable,
    Unavailable,
)
from parley.models import (
    Product,
    ProductStatus,
    Report,
    ReportCase,
    ReportStatus,
    SentMessage,
    User,
)
from parley.openapi import METADATA_SCHEMA, Operation, dumps
from parley.validation import (
    MARKETPLACE_TEXT_PATTERN,
    MAX_CLIENT_MSG_ID,
    MAX_ID,
    MAX_JSON_DEPTH,
    MAX_NAME_CHARS,
    MAX_REASON_CHARS,
    MAX_URL_CHARS,
    SITE_URL_PATTERN,
    Id,
    PageLimit,
    id_from_text,
    nests_deeper_than,
)

READY_TIMEOUT_SECONDS = 2.0


async def healthz(request: Request) -> Response:
    """The process is up and serving HTTP; says nothing about its dependencies."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready for traffic: the database answers a query within a short timeout, and the broker
    is connected and subscribed (else sends would commit and reach no other device live)."""
    services = request.app.state.services
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await services.pool.fetchval("SELECT 1")
        database = "ok"
    except Exception as error:  # any failure at all means "not ready"
        database = f"unavailable: {type(error).__name__}"
    broker = services.hub.broker.status()
    ready = database == "ok" and broker == "ok"
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "database": database, "broker": broker},
        status_code=200 if ready else 503,
    )


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus exposition, over every worker of this server."""
    request.app.state.services.update_pool_metrics()
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


# --- internal API -----------------------------------------------------------------------------


# What the store checks beyond the shape, said in the schema too (docs/openapi.json).
_NO_NUL = "^[^\\x00]*$"  # Postgres text holds no NUL
_Name = Annotated[
    str, msgspec.Meta(extra_json_schema={"maxLength": MAX_NAME_CHARS, "pattern": _NO_NUL})
]
_Url = Annotated[
    str,
    msgspec.Meta(extra_json_schema={"maxLength": MAX_URL_CHARS, "pattern": SITE_URL_PATTERN}),
]
_Currency = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": "^[A-Z]{3}$"})]
_ClientMsgId = Annotated[
    str,
    msgspec.Meta(
        extra_json_schema={"minLength": 1, "maxLength": MAX_CLIENT_MSG_ID, "pattern": _NO_NUL}
    ),
]


class UserBody(msgspec.Struct, frozen=True):
    display_name: _Name = ""
    avatar_url: _Url | None = None


class ProductBody(msgspec.Struct, frozen=True):
    seller_id: Id
    title: _Name = ""
    price_cents: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] | None = None
    currency: _Currency = "USD"
    image_url: _Url | None = None
    status: ProductStatus = "active"


# The marketplace's own words: not only whitespace, no NUL (validation.is_marketplace_text).
_SystemText = Annotated[
    str,
    msgspec.Meta(
        extra_json_schema={
            "minLength": 1,
            "maxLength": Limits().max_content_chars,
            "pattern": MARKETPLACE_TEXT_PATTERN,
            "description": "at most PARLEY_MAX_CONTENT_CHARS (4000 by default) characters",
        }
    ),
]
_Resolution = Annotated[
    str,
    msgspec.Meta(
        extra_json_schema={
            "minLength": 1,
            "maxLength": MAX_REASON_CHARS,
            "pattern": MARKETPLACE_TEXT_PATTERN,
        }
    ),
]


_Metadata = Annotated[dict[str, Any], msgspec.Meta(extra_json_schema=METADATA_SCHEMA)]


class SystemMessageBody(msgspec.Struct, frozen=True):
    client_msg_id: _ClientMsgId
    content: _SystemText
    metadata: _Metadata = {}


class ReportQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    status: ReportStatus = "open"
    after: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] = 0  # the last report id seen
    limit: PageLimit = 50


class ResolveBody(msgspec.Struct, frozen=True):
    resolution: _Resolution | None = None


class ReportList(msgspec.Struct, frozen=True):
    reports: list[ReportCase]
    next_after: int | None  # pass as ``after`` for the next page; null on the last


class ReportAnswer(msgspec.Struct, frozen=True):
    report: Report


class UserAnswer(msgspec.Struct, frozen=True):
    user: User


class ProductView(msgspec.Struct, frozen=True):
    product: Product


class ProductAnswer(msgspec.Struct, frozen=True):
    product: Product
    changed_conversations: list[int]


_STATUS_BY_ERROR: dict[type[ParleyError], int] = {
    NotFound: 404,
    Forbidden: 403,
    ClientMsgIdConflict: 409,
    ProductUnavailable: 409,
    NotReserved: 409,
    InvalidArgument: 400,
    InvalidMessage: 400,
    Unavailable: 503,
}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """Every HTTP error Parley answers: ``{"error": {"code", "message"}}``."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _json(payload: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(payload), status, media_type="application/json")


_exact_numbers = msgspec.json.Decoder(float_hook=Decimal)


def _decode_body(decoder: msgspec.json.Decoder[Any], body: type[Any], raw: bytes) -> Any:
    """The body as its struct. JSON Schema's "integer" takes ``7.0`` as well as ``7``, so an
    id or an amount written with a zero fraction is taken too, read exactly (never through
    a float); other fractions are refused as before. Only the body's own fields, which hold
    its numbers: metadata is kept as sent."""
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as error:
        if "got `float`" not in str(error):
            raise
        fields = _exact_numbers.decode(raw)
        if not isinstance(fields, dict):
            raise
    fields = {name: _whole(value) for name, value in fields.items()}
    return msgspec.convert(_floats_back(fields), body)


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, Decimal) and value == value.to_integral() else value


def _floats_back(value: Any) -> Any:
    """What the exact reading made Decimal, deeper than the body's fields, is a float again."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {key: _floats_back(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_floats_back(item) for item in value]
    return value


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
                payload = _decode_body(decoder, op.body, raw)
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


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is over ``limit`` bytes (read no further than that)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isascii() or not declared.isdigit()):
        return None
    if declared is not None and int(declared[:20]) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def put_user(request: Request, user_id: int, body: UserBody) -> Response:
    chat: Chat = request.app.state.services.chat
    user = await chat.update_user(user_id, body.display_name, body.avatar_url)
    return _json(UserAnswer(user))


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
    return _json(ProductAnswer(product, changed))


async def get_product(request: Request, product_id: int, _: None) -> Response:
    chat: Chat = request.app.state.services.chat
    return _json(ProductView(await chat.product(product_id)))


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
    return _json(sent, status=200 if sent.replayed else 201)


async def get_reports(request: Request, _: None, query: ReportQuery) -> Response:
    chat: Chat = request.app.state.services.chat
    cases = await chat.moderation.cases(query.status, query.after, query.limit)
    last = cases[-1].report.id if len(cases) == query.limit else None
    return _json(ReportList(cases, last))


async def resolve_report(request: Request, report_id: int, body: ResolveBody) -> Response:
    chat: Chat = request.app.state.services.chat
    return _json(ReportAnswer(await chat.moderation.resolve(report_id, body.resolution)))


OPERATIONS: Final[list[Operation]] = [
    Operation(
        "PUT",
        "/internal/users/{id}",
        "Create or update a user as the marketplace knows them",
        UserBody,
        {200: ("the user as stored", UserAnswer)},
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
]
_DOCUMENT: Final = dumps(OPERATIONS).encode()


async def openapi_document(request: Request) -> Response:
    """The internal API's OpenAPI 3.1 document (docs/openapi.json), behind the same token."""
    refusal = _refuse_without_service_token(request)
    return refusal or Response(_DOCUMENT, media_type="application/json")


def routes() -> list[BaseRoute]:
    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        Route("/internal/openapi.json", openapi_document),
        *_internal_routes(),
    ]


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

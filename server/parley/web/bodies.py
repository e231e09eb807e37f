"""The internal API's bodies and answers: the structs that decode and encode them, and what
its OpenAPI document says of each field beyond its type (lengths, patterns), which is what
the server keeps. Also how a body is read: ``decode_body``."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import msgspec

from parley.config import Limits
from parley.models import (
    Notification,
    NotificationStatus,
    Product,
    ProductStatus,
    Report,
    ReportCase,
    ReportStatus,
    User,
)
from parley.validation import (
    MARKETPLACE_TEXT_PATTERN,
    MAX_CLIENT_MSG_ID,
    MAX_ID,
    MAX_NAME_CHARS,
    MAX_REASON_CHARS,
    MAX_URL_CHARS,
    NO_NUL_PATTERN,
    SITE_URL_PATTERN,
    Id,
    PageLimit,
)
from parley.web.openapi import METADATA_SCHEMA

# What the store checks beyond the shape, said in the schema too (docs/openapi.json).
_Name = Annotated[
    str, msgspec.Meta(extra_json_schema={"maxLength": MAX_NAME_CHARS, "pattern": NO_NUL_PATTERN})
]
_Url = Annotated[
    str,
    msgspec.Meta(extra_json_schema={"maxLength": MAX_URL_CHARS, "pattern": SITE_URL_PATTERN}),
]
_Currency = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": "^[A-Z]{3}$"})]
_ClientMsgId = Annotated[
    str,
    msgspec.Meta(
        extra_json_schema={
            "minLength": 1,
            "maxLength": MAX_CLIENT_MSG_ID,
            "pattern": NO_NUL_PATTERN,
        }
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


class NotificationQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    status: NotificationStatus | None = None
    user_id: Id | None = None
    after: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] = 0  # the last notification id seen
    limit: PageLimit = 50


class NotificationList(msgspec.Struct, frozen=True):
    notifications: list[Notification]
    next_after: int | None  # pass as ``after`` for the next page; null on the last


class NotificationAnswer(msgspec.Struct, frozen=True):
    notification: Notification


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


_exact_numbers = msgspec.json.Decoder(float_hook=Decimal)


def decode_body(decoder: msgspec.json.Decoder[Any], body: type[Any], raw: bytes) -> Any:
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

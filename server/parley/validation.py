"""What a caller may send, declared once: ids, seqs, page sizes, client_msg_id, text, metadata
and the rules of each message type.

Frames (protocol.py) and the internal API's bodies (http.py) decode into the ``Annotated``
types below, so a bad value is refused at the edge with the field's name; the store checks
the same bounds with the functions below, so a caller that skips the edge (a use case, the
demo seeder, a test) meets the same rules. Configurable bounds (content length, metadata
size) live in ``config.Limits``; the ones here are fixed by the schema or the protocol.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Annotated, Any, Final

import msgspec

from parley.config import Limits
from parley.errors import (
    ContentTooLong,
    EmptyContent,
    Forbidden,
    InvalidArgument,
    InvalidMetadata,
    InvalidText,
    MetadataTooLarge,
    UnknownMessageType,
)
from parley.models import MESSAGE_TYPES, PRODUCT_STATUSES

# Ids and seqs are Postgres bigints.
MAX_ID: Final = 2**63 - 1
Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
PositiveSeq = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]

MAX_PAGE: Final = 200
PageLimit = Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE)]
# Messages per conversation in one sync reply; has_more says to ask again.
SYNC_PAGE: Final = 100

# The schema's CHECK on messages.client_msg_id says the same.
MAX_CLIENT_MSG_ID: Final = 64
ClientMsgId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CLIENT_MSG_ID)]
# message.search's query (store/search.py reads its words; none is invalid_argument).
MAX_SEARCH_CHARS: Final = 200
SearchQuery = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SEARCH_CHARS)]

# How deep JSON may nest: a frame or body itself, and the metadata inside a message.
MAX_JSON_DEPTH: Final = 32
MAX_METADATA_DEPTH: Final = 16
MAX_URL_CHARS: Final = 2048
# Names and titles the marketplace sends.
MAX_NAME_CHARS: Final = 200
# Offers are whole minor units that a JavaScript client can hold exactly.
MAX_OFFER_AMOUNT: Final = 2**53
# Conversations in one sync frame.
MAX_SYNC_CONVERSATIONS: Final = 100
MAX_LISTED_BLOCKS: Final = 500  # user.blocks lists the most recent this many
# ISO 4217; the schema's CHECK on products.currency says the same. fullmatch: Python's `$`
# would also match before a final newline.
CURRENCY: Final = re.compile(r"[A-Z]{3}")
# An https URL as Parley stores it: printable ASCII only (no spaces, tabs or controls, which
# browsers strip or reinterpret), the scheme exactly "https", then a host.
_HTTPS_URL_RE: Final = r"https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][\x21-\x7e]*)?"
_HTTPS_URL: Final = re.compile(_HTTPS_URL_RE)
# A path on Parley's own origin (the demo's pictures): no scheme, no host, no "//", so it
# can only ever point back at the server that serves the page.
_SITE_PATH_RE: Final = r"/[A-Za-z0-9._~-][A-Za-z0-9._~/-]*"
_SITE_PATH: Final = re.compile(_SITE_PATH_RE)
# Both, whole, as the internal API's document states it (ECMA-262 and Python alike).
SITE_URL_PATTERN: Final = f"^(?:{_HTTPS_URL_RE}|{_SITE_PATH_RE})$"
# Text the marketplace sends (system messages, resolutions): something that is not
# whitespace, and no NUL, which Postgres text cannot hold. What users send is held to
# has_visible_text, which no JSON Schema pattern can say; the marketplace is trusted.
# Any text Parley stores: Postgres text and jsonb hold no NUL (check_text refuses it).
NO_NUL_PATTERN: Final = r"^[^\x00]*$"
MARKETPLACE_TEXT_PATTERN: Final = r"^[^\x00]*[^\s\x00][^\x00]*$"
_MARKETPLACE_TEXT: Final = re.compile(MARKETPLACE_TEXT_PATTERN)
# An id written in text (a path, a token's sub): ASCII digits only (int() would also take
# fullwidth and Arabic-Indic digits), no sign, no leading zero, at most 19 of them.
_ID_DIGITS: Final = re.compile(r"[1-9][0-9]{0,18}")
# Letters that show as nothing (Hangul fillers, the braille blank, the Mongolian vowel
# separator); other invisible characters are found by their Unicode category.
_BLANK_LETTERS: Final = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")
_INVISIBLE_CATEGORIES: Final = frozenset(
    {"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me", "Mc"}
)


def check_id(value: int, name: str) -> None:
    """Raise InvalidArgument unless ``value`` is a positive bigint."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise InvalidArgument(f"{name} must be a positive 64-bit integer")


def id_from_text(text: str) -> int | None:
    """The id written in ``text`` (ASCII digits of a positive bigint), or None."""
    if not _ID_DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def has_visible_text(text: str) -> bool:
    """True when something would show: not only spaces, zero-width and format characters,
    fillers or combining marks."""
    return any(
        char not in _BLANK_LETTERS and unicodedata.category(char) not in _INVISIBLE_CATEGORIES
        for char in text
    )


def nests_deeper_than(document: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the JSON ``document`` nests arrays and objects more than ``limit`` deep.

    Cheap for what clients send: only a document with more than ``limit`` brackets is
    looked at, with a few regular-expression passes (strings removed, then innermost pairs
    peeled ``limit`` times), never a recursive descent.
    """
    data = document.encode() if isinstance(document, str) else document
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    skeleton = _JSON_STRING.sub(b"", data)
    for _ in range(limit):
        skeleton, peeled = _INNERMOST_PAIR.subn(b"", skeleton)
        if not peeled:
            return False
    return _INNERMOST_PAIR.search(skeleton) is not None


_JSON_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_INNERMOST_PAIR: Final = re.compile(rb"\[[^\[\]{}]*\]|\{[^\[\]{}]*\}")


def check_page_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE}")


def check_text(text: str, name: str) -> None:
    """Refuse what Postgres text cannot hold: NUL, and lone surrogates (not valid UTF-8)."""
    if "\x00" in text:
        raise InvalidText(f"{name} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidText(f"{name} contains a lone surrogate (not valid Unicode)") from None


def check_client_msg_id(client_msg_id: str) -> None:
    if not isinstance(client_msg_id, str) or not 0 < len(client_msg_id) <= MAX_CLIENT_MSG_ID:
        raise InvalidArgument(f"client_msg_id must be 1 to {MAX_CLIENT_MSG_ID} characters")
    check_text(client_msg_id, "client_msg_id")


def is_currency(value: object) -> bool:
    """True for three capital letters (ISO 4217)."""
    return isinstance(value, str) and CURRENCY.fullmatch(value) is not None


def check_product(status: str, currency: str, price_cents: int | None) -> None:
    """The product fields the marketplace sends; raises InvalidArgument."""
    if status not in PRODUCT_STATUSES:
        raise InvalidArgument(
            f"product status must be active, reserved, sold or deleted, not {status!r}"
        )
    if not is_currency(currency):
        raise InvalidArgument(
            f"currency must be three capital letters (ISO 4217), not {currency!r}"
        )
    if price_cents is not None and not 0 <= price_cents <= MAX_ID:
        raise InvalidArgument("price_cents must be a whole number from 0 to 2^63 - 1")


def is_https_url(url: str) -> bool:
    """An https URL of printable ASCII with a host, at most MAX_URL_CHARS long."""
    # The pattern fixes the scheme and requires a host of its own characters, so what
    # urlsplit would tell (scheme, hostname) is already known.
    return len(url) <= MAX_URL_CHARS and _HTTPS_URL.fullmatch(url) is not None


def is_site_url(url: str) -> bool:
    """An https URL, or a path on Parley's own origin such as ``/demo/images/7010.svg``."""
    if len(url) > MAX_URL_CHARS:
        return False
    return _HTTPS_URL.fullmatch(url) is not None or _SITE_PATH.fullmatch(url) is not None


def check_url(url: str | None, name: str) -> None:
    """None, an https URL or a path on this origin (no javascript:, data: or plain http)."""
    if url is not None and not is_site_url(url):
        raise InvalidArgument(f"{name} must be an https:// URL or a /path, of printable ASCII")


MAX_REASON_CHARS: Final = 1000


def check_reason(reason: str, name: str = "reason") -> None:
    """A user's report reason: 1 to MAX_REASON_CHARS, something visible."""
    check_text(reason, name)
    if not has_visible_text(reason) or len(reason) > MAX_REASON_CHARS:
        raise InvalidArgument(f"{name} must be 1 to {MAX_REASON_CHARS} characters, not blank")


def is_marketplace_text(text: str) -> bool:
    """Text the marketplace sends: MARKETPLACE_TEXT_PATTERN (not only whitespace, no NUL)."""
    return _MARKETPLACE_TEXT.search(text) is not None


def check_resolution(resolution: str) -> None:
    """A moderator's resolution: 1 to MAX_REASON_CHARS, not only whitespace."""
    check_text(resolution, "resolution")
    if not is_marketplace_text(resolution) or len(resolution) > MAX_REASON_CHARS:
        raise InvalidArgument(
            f"resolution must be 1 to {MAX_REASON_CHARS} characters, not only whitespace"
        )


def check_name(text: str, name: str) -> None:
    """A display name or title: storable text of at most MAX_NAME_CHARS characters."""
    check_text(text, name)
    if len(text) > MAX_NAME_CHARS:
        raise InvalidArgument(f"{name} is longer than {MAX_NAME_CHARS} characters")


_metadata_encoder = msgspec.json.Encoder()


def metadata_json(metadata: Mapping[str, Any]) -> bytes:
    """The metadata as the store writes it (and as its size limit counts it)."""
    return _metadata_encoder.encode(metadata)


def validate_message(
    message_type: str, content: str, metadata: Mapping[str, Any], limits: Limits
) -> None:
    """Check a message against the per-type rules without touching the database.

    text and system need non-blank content; image needs ``metadata.url`` (https) and may
    have a caption; offer needs ``metadata.amount_cents`` (a positive whole number of minor units)
    and ``metadata.currency`` (ISO 4217). Raises a subclass of InvalidMessage.
    """
    if message_type not in MESSAGE_TYPES:
        raise UnknownMessageType(
            f"message_type must be one of {', '.join(sorted(MESSAGE_TYPES))}, not {message_type!r}"
        )
    if not isinstance(content, str):
        raise InvalidText("content must be a string")
    check_text(content, "content")
    if len(content) > limits.max_content_chars:
        raise ContentTooLong(
            f"content has {len(content)} characters; the limit is {limits.max_content_chars}"
        )
    if message_type == "text" and not has_visible_text(content):
        raise EmptyContent("a text message needs visible content")
    if message_type == "system" and not is_marketplace_text(content):
        raise EmptyContent("a system message needs content that is not only whitespace")
    if not isinstance(metadata, Mapping):
        raise InvalidMetadata("metadata must be a JSON object")
    _check_json(metadata, depth=0)
    size = len(metadata_json(metadata))
    if size > limits.max_metadata_bytes:
        raise MetadataTooLarge(
            f"metadata is {size} bytes as JSON; the limit is {limits.max_metadata_bytes}"
        )
    if message_type == "image":
        url = metadata.get("url")
        if not isinstance(url, str) or not is_https_url(url):
            raise InvalidMetadata("an image message needs metadata.url, an https:// URL")
    elif message_type == "offer":
        check_amount(metadata.get("amount_cents"))
        if not is_currency(metadata.get("currency")):
            raise InvalidMetadata("an offer needs metadata.currency, three capital letters")


def check_amount(amount: object) -> int:
    """An offer's amount_cents: a positive whole number of minor units, at most 2^53."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidMetadata("an offer needs amount_cents, a positive whole number")
    if amount > MAX_OFFER_AMOUNT:
        raise InvalidMetadata("amount_cents is too large")
    return amount


def check_sender(message_type: str, sender_id: int | None) -> None:
    """Only the marketplace (no sender) sends system messages, and only system messages."""
    if (message_type == "system") != (sender_id is None):
        raise Forbidden("only the marketplace sends system messages, and only system messages")


def _check_json(value: Any, depth: int) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise InvalidMetadata(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels")
    if isinstance(value, str):
        try:
            check_text(value, "metadata")
        except InvalidText as error:
            raise InvalidMetadata(str(error)) from None
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidMetadata("metadata keys must be strings")
            _check_json(key, depth + 1)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMetadata("metadata numbers must be finite")
    elif value is not None and not isinstance(value, bool | int):
        raise InvalidMetadata(f"metadata cannot hold a {type(value).__name__}")

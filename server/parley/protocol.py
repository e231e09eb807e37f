"""The wire protocol as typed frames: parse and validate client frames, encode server frames;
and the close codes. (The error codes are the ParleyError classes' in errors.py.)

No I/O here: bytes or text in, structs out, and back. docs/protocol.md is the reference;
tests/test_protocol.py checks that it lists exactly the types and codes defined here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal, get_args

import msgspec
from starlette import status

from parley.errors import BadJson, InvalidFrame, ParleyError, UnknownType
from parley.models import User, UserSettings
from parley.validation import (
    MAX_ID,
    MAX_JSON_DEPTH,
    MAX_OFFER_AMOUNT,
    MAX_SYNC_CONVERSATIONS,
    ClientMsgId,
    Id,
    PageLimit,
    PositiveSeq,
    SearchQuery,
    Seq,
    nests_deeper_than,
)

# Close codes (docs/protocol.md): the standard ones as starlette names them, then Parley's.
WS_1000_NORMAL_CLOSURE: Final = status.WS_1000_NORMAL_CLOSURE
WS_1008_POLICY_VIOLATION: Final = status.WS_1008_POLICY_VIOLATION
WS_1009_MESSAGE_TOO_BIG: Final = status.WS_1009_MESSAGE_TOO_BIG
WS_1011_INTERNAL_ERROR: Final = status.WS_1011_INTERNAL_ERROR
WS_1012_SERVICE_RESTART: Final = status.WS_1012_SERVICE_RESTART
WS_4400_HELLO_EXPECTED: Final = 4400
WS_4401_UNAUTHORIZED: Final = 4401
WS_4403_USER_ERASED: Final = 4403
WS_4408_HELLO_TIMEOUT: Final = 4408
WS_4411_TOKEN_EXPIRED: Final = 4411
WS_4420_SLOW_CONSUMER: Final = 4420
WS_4429_TOO_MANY_CONNECTIONS: Final = 4429

# A close frame's reason: at most 123 bytes of UTF-8 (RFC 6455, 5.5.1).
MAX_CLOSE_REASON_BYTES: Final = 123

MAX_FRAME_ID: Final = 64
FrameId = (
    Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_FRAME_ID)]
    | Annotated[int, msgspec.Meta(ge=-MAX_ID - 1, le=MAX_ID)]
)


# --- client → server --------------------------------------------------------------------------


class Request(msgspec.Struct, tag_field="type", frozen=True):
    """Base of every client frame. Unknown fields are ignored (a forged sender_id included)."""

    id: FrameId


class Hello(Request, tag="hello", frozen=True):
    token: str


class ConversationOpen(Request, tag="conversation.open", frozen=True):
    product_id: Id


class ConversationList(Request, tag="conversation.list", frozen=True):
    cursor: str | None = None
    limit: PageLimit = 20
    archived: bool = False
    query: SearchQuery | None = None  # the product's title or the other party's name holds it


class ConversationGet(Request, tag="conversation.get", frozen=True):
    conversation_id: Id


class MessageSend(Request, tag="message.send", frozen=True):
    conversation_id: Id
    client_msg_id: ClientMsgId
    content: str = ""
    message_type: str = "text"
    metadata: dict[str, Any] = {}


class MessageHistory(Request, tag="message.history", frozen=True):
    conversation_id: Id
    before_seq: PositiveSeq | None = None
    limit: PageLimit = 50
    # Instead of before_seq: a page with this seq in it, about half the page before it.
    around_seq: PositiveSeq | None = None


class MessageSearch(Request, tag="message.search", frozen=True):
    query: SearchQuery
    conversation_id: Id | None = None
    before: Id | None = None  # the `next` of the previous page
    limit: PageLimit = 20


class ConversationRead(Request, tag="conversation.read", frozen=True):
    conversation_id: Id
    up_to_seq: Seq


class MessageReceived(Request, tag="message.received", frozen=True):
    """A device confirms that the other side's messages up to ``up_to_seq`` reached it; or,
    in one frame, for several conversations: ``conversations`` maps each to its
    ``up_to_seq``. Exactly one of the two forms."""

    conversation_id: Id | None = None
    up_to_seq: Seq | None = None
    conversations: Annotated[dict[Id, Seq], msgspec.Meta(max_length=MAX_SYNC_CONVERSATIONS)] = {}

    def __post_init__(self) -> None:
        single = self.conversation_id is not None and self.up_to_seq is not None
        if single == bool(self.conversations) or (
            not single and (self.conversation_id is not None or self.up_to_seq is not None)
        ):
            raise ValueError("give conversation_id and up_to_seq, or conversations, and not both")


class ConversationDelete(Request, tag="conversation.delete", frozen=True):
    conversation_id: Id


class ConversationArchive(Request, tag="conversation.archive", frozen=True):
    conversation_id: Id


class ConversationUnarchive(Request, tag="conversation.unarchive", frozen=True):
    conversation_id: Id


class MessageEdit(Request, tag="message.edit", frozen=True):
    message_id: Id
    content: str


class MessageUnsend(Request, tag="message.unsend", frozen=True):
    message_id: Id


class MessageReport(Request, tag="message.report", frozen=True):
    message_id: Id
    reason: str


class OfferAccept(Request, tag="offer.accept", frozen=True):
    message_id: Id


class OfferDecline(Request, tag="offer.decline", frozen=True):
    message_id: Id


class OfferCounter(Request, tag="offer.counter", frozen=True):
    message_id: Id
    amount_cents: Annotated[int, msgspec.Meta(ge=1, le=MAX_OFFER_AMOUNT)]


class OfferWithdraw(Request, tag="offer.withdraw", frozen=True):
    message_id: Id


class UserBlock(Request, tag="user.block", frozen=True):
    user_id: Id


class UserUnblock(Request, tag="user.unblock", frozen=True):
    user_id: Id


class UserBlocks(Request, tag="user.blocks", frozen=True):
    """The people the caller blocked, most recent first."""


class ConversationMute(Request, tag="conversation.mute", frozen=True):
    conversation_id: Id
    # RFC 3339 with an offset; null: until unmuted.
    until: Annotated[datetime, msgspec.Meta(tz=True)] | None = None


class ConversationUnmute(Request, tag="conversation.unmute", frozen=True):
    conversation_id: Id


class Typing(msgspec.Struct, tag="typing", tag_field="type", frozen=True):
    """A typing indicator. Its id is optional: without one, no reply is sent."""

    conversation_id: Id
    state: Literal["start", "stop"]
    id: FrameId | None = None


class Sync(Request, tag="sync", frozen=True):
    conversations: Annotated[dict[Id, Seq], msgspec.Meta(max_length=MAX_SYNC_CONVERSATIONS)]


MAX_PRESENCE_IDS: Final = 100  # user ids in one presence.subscribe or presence.unsubscribe
PresenceIds = Annotated[list[Id], msgspec.Meta(min_length=1, max_length=MAX_PRESENCE_IDS)]


class PresenceSubscribe(Request, tag="presence.subscribe", frozen=True):
    user_ids: PresenceIds


class PresenceUnsubscribe(Request, tag="presence.unsubscribe", frozen=True):
    user_ids: PresenceIds


class UserSettingsUpdate(Request, tag="user.settings", frozen=True):
    """Change the caller's settings; a field left out keeps its value."""

    show_presence: bool | None = None


ClientFrame = (
    Hello
    | ConversationOpen
    | ConversationList
    | ConversationGet
    | MessageSend
    | MessageHistory
    | MessageSearch
    | ConversationRead
    | MessageReceived
    | ConversationDelete
    | ConversationArchive
    | ConversationUnarchive
    | Typing
    | Sync
    | MessageEdit
    | MessageUnsend
    | MessageReport
    | OfferAccept
    | OfferDecline
    | OfferCounter
    | OfferWithdraw
    | UserBlock
    | UserUnblock
    | UserBlocks
    | ConversationMute
    | ConversationUnmute
    | PresenceSubscribe
    | PresenceUnsubscribe
    | UserSettingsUpdate
)
CLIENT_FRAME_TYPES: Final[dict[str, type[Any]]] = {
    str(cls.__struct_config__.tag): cls for cls in get_args(ClientFrame)
}

_typed_decoder: msgspec.json.Decoder[ClientFrame] = msgspec.json.Decoder(ClientFrame)
_decoders = {cls: msgspec.json.Decoder(cls) for cls in CLIENT_FRAME_TYPES.values()}
_any_decoder = msgspec.json.Decoder()


def parse(frame: str | bytes) -> ClientFrame:
    """Decode one client frame, or raise a ProtocolError subclass saying what is wrong.
    Nothing else escapes, whatever the input: this is the boundary (a hypothesis property in
    tests/test_protocol.py holds it to that).

    The fast path decodes straight into the frame's struct; only a frame that fails it is
    decoded again, generically, to find the best error and the frame's id for the reply.
    """
    if nests_deeper_than(frame):
        raise InvalidFrame(f"frame nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return _typed_decoder.decode(frame)
    except msgspec.DecodeError:
        pass
    except (RecursionError, UnicodeDecodeError):
        raise BadJson("frame is not valid JSON") from None
    try:
        raw = _any_decoder.decode(frame)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        raise BadJson("frame is not valid JSON") from None
    if not isinstance(raw, dict):
        raise InvalidFrame("a frame is a JSON object")
    frame_id = raw.get("id")
    if not _is_frame_id(frame_id):
        frame_id = None
    frame_type = raw.get("type")
    cls = CLIENT_FRAME_TYPES.get(frame_type) if isinstance(frame_type, str) else None
    if cls is None:
        raise UnknownType(f"unknown frame type {frame_type!r}", frame_id)
    try:
        parsed: ClientFrame = _decoders[cls].decode(frame)
    except (msgspec.DecodeError, RecursionError) as error:
        raise InvalidFrame(f"{frame_type}: {error}", frame_id) from None
    return parsed  # pragma: no cover - the union decoder would have taken it


def _is_frame_id(value: object) -> bool:
    if isinstance(value, str):
        return 0 < len(value) <= MAX_FRAME_ID
    return isinstance(value, int) and not isinstance(value, bool) and -MAX_ID - 1 <= value <= MAX_ID


# --- server → client --------------------------------------------------------------------------


class Ok(msgspec.Struct, tag="ok", tag_field="type", frozen=True):
    id: FrameId | None
    data: Any


class Error(msgspec.Struct, tag="error", tag_field="type", frozen=True, omit_defaults=True):
    id: FrameId | None
    code: str
    message: str
    retryable: bool = False
    retry_after_ms: int | None = None


class HelloData(msgspec.Struct, frozen=True):
    user: User
    unread_total: int
    unread_version: int
    connection_id: str
    limits: dict[str, int | float]
    settings: UserSettings


_encoder = msgspec.json.Encoder()


def encode(frame: msgspec.Struct) -> bytes:
    """Encode a server frame. Encode an event once and send the same bytes to every socket."""
    return _encoder.encode(frame)


def error_frame(error: ParleyError, frame_id: str | int | None) -> str:
    """The ``error`` reply for a refusal, with its stable code and when to retry."""
    retry_after = getattr(error, "retry_after", None)
    frame = Error(
        id=frame_id,
        code=error.code,
        message=str(error),
        retryable=error.retryable,
        retry_after_ms=None if retry_after is None else max(1, round(retry_after * 1000)),
    )
    return encode(frame).decode()


def close_reason(reason: str) -> str:
    """``reason`` cut to what a close frame can carry, on a character boundary."""
    encoded = reason.encode()
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return reason
    return encoded[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")

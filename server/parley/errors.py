"""One exception tree for everything a client can be refused, each class with a stable code.

The codes are part of the wire protocol (docs/protocol.md lists them); never rename one.
"""

from __future__ import annotations

from typing import ClassVar


class ParleyError(Exception):
    """Root of every refusal Parley reports to a caller.

    ``code`` is stable and machine-readable; the message is for humans and may change.
    ``retryable`` says whether the same request may succeed later unchanged.
    """

    code: ClassVar[str] = "internal"
    retryable: ClassVar[bool] = False


class NotFound(ParleyError):
    """The thing does not exist, or the caller may not know that it exists.

    Non-participants get this for conversations that do exist: no existence is leaked.
    """

    code = "not_found"


class Forbidden(ParleyError):
    """The caller is known and the thing exists, but this action is not theirs to take."""

    code = "forbidden"


class OwnProduct(Forbidden):
    """A seller tried to open a conversation about their own product."""

    code = "own_product"


class NotYours(Forbidden):
    """Only a message's sender may edit or unsend it."""

    code = "not_your_message"


class Blocked(ParleyError):
    """A block stands between the two users (either blocked the other): no message passes
    between them, and no new conversation starts."""

    code = "blocked"


class OwnOffer(Forbidden):
    """Only the other side answers an offer: accepts, declines or counters it."""

    code = "own_offer"


class OfferNotOpen(ParleyError):
    """The offer was already answered, withdrawn or superseded by a newer one: only the
    conversation's open offer can be acted on."""

    code = "offer_not_open"


class NotAnOffer(ParleyError):
    """An offer action named a message that is not an offer."""

    code = "not_an_offer"


class EditWindowClosed(ParleyError):
    """The message is older than the edit window (PARLEY_EDIT_WINDOW_SECONDS)."""

    code = "edit_window_closed"


class NotEditable(ParleyError):
    """The message cannot change that way: only text is edited, a marketplace notice never
    changes, and an unsent message is gone for good."""

    code = "not_editable"


class NotReserved(ParleyError):
    """The marketplace set a listing to ``reserved`` that no accepted offer reserved: only an
    offer reserves (for its buyer); ``reserved`` in a product PUT keeps a reservation."""

    code = "not_reserved"


class NotRetryable(ParleyError):
    """Only a failed notification is sent again: a pending one is still being tried, and a
    delivered or skipped one is finished (internal API, 409)."""

    code = "not_failed"


class ProductUnavailable(ParleyError):
    """The product is sold or deleted, so no new conversation can start about it; or it is
    not for sale any more (reserved, sold or deleted), so no offer can be made or answered."""

    code = "product_unavailable"


class InvalidArgument(ParleyError):
    """A parameter is out of range (a negative seq, a zero page size, a bad cursor)."""

    code = "invalid_argument"


class InvalidMessage(ParleyError):
    """A message fails validation; nothing was written. Subclasses say which rule."""

    code = "invalid_message"


class UnknownMessageType(InvalidMessage):
    code = "unknown_message_type"


class EmptyContent(InvalidMessage):
    code = "empty_content"


class ContentTooLong(InvalidMessage):
    code = "content_too_long"


class InvalidText(InvalidMessage):
    """Text Postgres cannot store faithfully: a NUL character or a lone surrogate."""

    code = "invalid_text"


class InvalidMetadata(InvalidMessage):
    code = "invalid_metadata"


class MetadataTooLarge(InvalidMessage):
    code = "metadata_too_large"


class ClientMsgIdConflict(ParleyError):
    """The client_msg_id was already used by this sender for a different message."""

    code = "client_msg_id_conflict"


class Unavailable(ParleyError):
    """The database cannot be reached right now. Retry later: for a send, with the same
    client_msg_id (if its commit did land before the connection died, the retry says so)."""

    code = "unavailable"
    retryable = True


class Unauthorized(ParleyError):
    """The token is missing, malformed, expired, or not signed with the configured key."""

    code = "unauthorized"


class RateLimited(ParleyError):
    """Too many frames or messages; wait ``retry_after`` seconds. Nothing was written."""

    code = "rate_limited"
    retryable = True

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProtocolError(ParleyError):
    """A frame Parley cannot act on; carries the frame's id when one could be read."""

    code = "invalid_frame"

    def __init__(self, message: str, frame_id: str | int | None = None) -> None:
        super().__init__(message)
        self.frame_id = frame_id


class BadJson(ProtocolError):
    code = "bad_json"


class BinaryFrame(ProtocolError):
    code = "binary_frame"


class UnknownType(ProtocolError):
    code = "unknown_type"


class InvalidFrame(ProtocolError):
    """Valid JSON of a known type, with a field missing or of the wrong type."""

    code = "invalid_frame"


class TooManyConnectionsError(ParleyError):
    """The user already has the allowed number of sockets open to this gateway process."""

    code = "too_many_connections"
    retryable = True


class Held(ParleyError):
    """A user's data is held while a report on their messages is open: erasure waits until
    the marketplace has resolved it (internal API, 409)."""

    code = "held"


class UserErased(ParleyError):
    """The user was erased (DELETE /internal/users/{id}): their tokens are refused, with close
    4403 after the error, and their profile cannot be written again (internal API, 409)."""

    code = "user_erased"

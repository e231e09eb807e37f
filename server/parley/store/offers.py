"""Offers as a deal: making one, and answering it (accept, decline, counter, withdraw).

sql/007 keeps the state machine itself (born open, one open offer per conversation, a state
moves once, only on an active listing). Here is who may take which step, checked in the
same transaction, under the locks of sql/007's order: the product row, then the
conversation rows (all of the listing's for an accept, which reserves the listing and
declines the other buyers' offers), then the offer's row. Every answer writes a notice
(a system message) in the conversation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

import asyncpg

from parley.config import Limits
from parley.errors import (
    Blocked,
    NotAnOffer,
    NotFound,
    NotYours,
    OfferNotOpen,
    OwnOffer,
    ProductUnavailable,
)
from parley.models import Message, OfferOutcome, Product, SentMessage
from parley.store._sql import (
    MESSAGE_COLUMNS,
    PRODUCT_COLUMNS,
    connection,
    own_cleared,
    participant,
)
from parley.store.changes import changed_message
from parley.store.messages import (
    EXISTING_ONE,
    INSERT_SYSTEM,
    INSERT_USER,
    insert_refusal,
    not_sent,
    replay,
    send_message,
)
from parley.validation import check_amount, check_client_msg_id, check_id, validate_message

if TYPE_CHECKING:
    from parley.store._sql import Connection, Database

OfferAction = Literal["accept", "decline", "counter", "withdraw"]
_NEW_STATUS: Final[dict[OfferAction, str]] = {
    "accept": "accepted",
    "decline": "declined",
    "counter": "countered",
    "withdraw": "withdrawn",
}
_SYMBOLS: Final = {"EUR": "€", "USD": "$", "GBP": "£"}

_LOCK_CONVERSATION: Final = f"""
    SELECT c.id FROM conversations c WHERE c.id = $1 AND {participant("$2")} FOR UPDATE
"""
_OPEN_OFFER: Final = "SELECT id FROM messages WHERE conversation_id = $1 AND offer_status = 'open'"
_MESSAGE: Final = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1"
# Where the offer is, as the caller may see it (outsiders and cleared messages find nothing).
_FIND: Final = f"""
    SELECT c.id AS conversation_id, c.product_id, c.buyer_id, m.seq,
           {own_cleared("$2")} AS cleared_seq
      FROM messages m JOIN conversations c ON c.id = m.conversation_id
     WHERE m.id = $1 AND {participant("$2")}
"""
_BLOCKED: Final = "SELECT blocked_by_buyer OR blocked_by_seller FROM conversations WHERE id = $1"
# NO KEY UPDATE: the lock an UPDATE of the row takes, which foreign-key checks (KEY SHARE)
# of conversations being written elsewhere do not wait for.
_LOCK_PRODUCT: Final = "SELECT status FROM products WHERE id = $1 FOR NO KEY UPDATE"
_LOCK_CONVERSATIONS: Final = """
    SELECT id FROM conversations WHERE product_id = $1 ORDER BY id FOR UPDATE
"""
_SET_STATUS: Final = f"""
    UPDATE messages SET offer_status = $2 WHERE id = $1 RETURNING {MESSAGE_COLUMNS}
"""
_DECLINE_OTHERS: Final = f"""
    UPDATE messages m SET offer_status = 'declined'
      FROM conversations c
     WHERE c.product_id = $1 AND c.id <> $2
       AND m.conversation_id = c.id AND m.offer_status = 'open'
    RETURNING {", ".join(f"m.{column.strip()}" for column in MESSAGE_COLUMNS.split(","))}
"""
_RESERVE: Final = f"""
    UPDATE products SET status = 'reserved', reserved_for = $2 WHERE id = $1
    RETURNING {PRODUCT_COLUMNS}
"""


async def make_offer(
    db: Database,
    *,
    conversation_id: int,
    sender_id: int,
    client_msg_id: str,
    content: str,
    metadata: Mapping[str, Any],
    limits: Limits,
) -> tuple[SentMessage, Message | None]:
    """Send an offer (message_type ``offer``); it opens, and the conversation's open offer,
    if any, becomes superseded: returned second, in that state. Idempotent on
    (sender, client_msg_id) like any send. ProductUnavailable unless the listing is active."""
    validate_message("offer", content, metadata, limits)
    check_client_msg_id(client_msg_id)
    async with connection(db) as conn:
        try:
            async with conn.transaction():
                if await conn.fetchval(_LOCK_CONVERSATION, conversation_id, sender_id) is None:
                    raise NotFound(f"conversation {conversation_id} not found")
                earlier = await conn.fetchrow(EXISTING_ONE, sender_id, client_msg_id)
                if earlier is not None:
                    return replay(Message(**earlier), conversation_id, "offer", content), None
                open_id = await conn.fetchval(_OPEN_OFFER, conversation_id)
                row = await conn.fetchrow(
                    INSERT_USER,
                    conversation_id,
                    sender_id,
                    "offer",
                    content,
                    metadata,
                    client_msg_id,
                    [],  # offers are not scanned (safety.py reads text messages)
                )
                if row is None:
                    raise await not_sent(conn, conversation_id, sender_id)
                superseded = await _message(conn, open_id) if open_id is not None else None
        except asyncpg.CheckViolationError as error:
            raise insert_refusal(error) from None
        except asyncpg.UniqueViolationError:
            # The same client_msg_id, sent at this moment to another conversation.
            sent = await send_message(
                conn,
                conversation_id=conversation_id,
                sender_id=sender_id,
                client_msg_id=client_msg_id,
                content=content,
                message_type="offer",
                metadata=metadata,
                limits=limits,
            )
            return sent, None
    return SentMessage(message=Message(**row), replayed=False), superseded


async def answer_offer(
    db: Database,
    user_id: int,
    message_id: int,
    action: OfferAction,
    amount_cents: int | None = None,
) -> OfferOutcome:
    """Accept, decline or counter the other side's open offer, or withdraw one's own.

    A counter is an offer from the answering side, of ``amount_cents`` in the same currency.
    An accept reserves the listing for the conversation's buyer and declines every other
    buyer's open offer on it. Refusals: NotFound (outsiders, as for no such message),
    NotAnOffer, OwnOffer (answering one's own), NotYours (withdrawing the other side's),
    ProductUnavailable (the listing is reserved, sold or deleted), OfferNotOpen.
    """
    check_id(message_id, "message_id")
    if action == "counter":
        check_amount(amount_cents)
    async with connection(db) as conn, conn.transaction():
        place = await conn.fetchrow(_FIND, message_id, user_id)
        if place is None or place["seq"] <= place["cleared_seq"]:
            raise NotFound(f"message {message_id} not found")
        product_status = await conn.fetchval(_LOCK_PRODUCT, place["product_id"])
        if action == "accept":
            locked = [r["id"] for r in await conn.fetch(_LOCK_CONVERSATIONS, place["product_id"])]
        else:
            await conn.fetchval(_LOCK_CONVERSATION, place["conversation_id"], user_id)
        offer = await _message(conn, message_id, lock=True)
        _check(offer, user_id, action, product_status)
        if await conn.fetchval(_BLOCKED, offer.conversation_id):
            raise Blocked("you cannot message this user")
        answered = await changed_message(conn, _SET_STATUS, message_id, _NEW_STATUS[action])
        name = await _name(conn, user_id, place["buyer_id"])
        money = _money(offer.metadata)
        if action == "counter":
            assert amount_cents is not None
            counter = {"amount_cents": amount_cents, "currency": offer.metadata["currency"]}
            text = f"{name} countered {money} with {_money(counter)}"
            notice = await _notice(conn, answered, text, user_id)
            made = await conn.fetchrow(
                INSERT_USER,
                offer.conversation_id,
                user_id,
                "offer",
                "",
                {**counter, "counter_of": offer.id},
                f"counter-{offer.id}",
                [],
            )
            assert made is not None, "the conversation is locked and the caller is in it"
            return OfferOutcome(answered, [notice, Message(**made)])
        verb = {"accept": "accepted", "decline": "declined", "withdraw": "withdrew"}[action]
        notice = await _notice(conn, answered, f"{name} {verb} {money}", user_id)
        if action != "accept":
            return OfferOutcome(answered, [notice])
        declined = []
        for other in await conn.fetch(_DECLINE_OTHERS, place["product_id"], offer.conversation_id):
            loser = Message(**other)
            money = _money(loser.metadata)
            text = f"This item was reserved for another buyer; the offer of {money} was declined"
            declined.append((loser, await _notice(conn, loser, text, None)))
        product = await conn.fetchrow(_RESERVE, place["product_id"], place["buyer_id"])
        assert product is not None, "the product is locked"
        return OfferOutcome(answered, [notice], declined, Product(**product), locked)


def _check(offer: Message, user_id: int, action: OfferAction, product_status: str) -> None:
    if offer.message_type != "offer":
        raise NotAnOffer(f"message {offer.id} is not an offer")
    if action == "withdraw" and offer.sender_id != user_id:
        raise NotYours("only the side that made an offer withdraws it")
    if action != "withdraw" and offer.sender_id == user_id:
        raise OwnOffer("an offer is answered by the other side")
    if product_status != "active":
        raise ProductUnavailable(f"the product is {product_status}: its offers are closed")
    if offer.offer_status != "open":
        raise OfferNotOpen(f"the offer is {offer.offer_status}, not open")


async def _notice(conn: Connection, offer: Message, text: str, by: int | None) -> Message:
    """The system message that tells both sides what happened to ``offer`` (in its new
    state), and who did it (None: it followed from another buyer's accepted offer)."""
    status = offer.offer_status
    metadata = {"offer_id": offer.id, "offer_status": status, "by": by, **_terms(offer.metadata)}
    row = await conn.fetchrow(
        INSERT_SYSTEM, offer.conversation_id, text, metadata, f"offer-{offer.id}-{status}"
    )
    assert row is not None, "the conversation is locked"
    return Message(**row)


def _terms(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {"amount_cents": metadata["amount_cents"], "currency": metadata["currency"]}


def _money(metadata: Mapping[str, Any]) -> str:
    """12345 EUR as €123.45: two decimals, the symbol of the common ones, else the code."""
    units, cents = divmod(int(metadata["amount_cents"]), 100)
    amount = f"{units:,}.{cents:02d}"
    symbol = _SYMBOLS.get(metadata["currency"])
    return f"{symbol}{amount}" if symbol else f"{amount} {metadata['currency']}"


async def _name(conn: Connection, user_id: int, buyer_id: int) -> str:
    name = await conn.fetchval("SELECT display_name FROM users WHERE id = $1", user_id)
    return name or ("The buyer" if user_id == buyer_id else "The seller")


async def _message(conn: Connection, message_id: int, *, lock: bool = False) -> Message:
    row = await conn.fetchrow(_MESSAGE + (" FOR UPDATE" if lock else ""), message_id)
    assert row is not None, "messages are never deleted"
    return Message(**row)

"""A conversation's dispute export: everything Parley holds about it, as streamed JSON, read in
one snapshot (docs/disputes.md has the layout, and how to check its chain).

Messages and links are read through cursors and written out as they come, so memory stays
flat however long the conversation is (bench/export.py measures it). Messages cleared by
either side and unsent ones are all there; earlier versions carry the content before each
change.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec

from parley.errors import NotFound
from parley.store import chain
from parley.store._sql import MESSAGE_COLUMNS
from parley.validation import check_id

if TYPE_CHECKING:
    from parley.store._sql import Connection

FORMAT: Final = "parley.dispute-export/1"

CONVERSATION: Final = """
    SELECT c.id, c.product_id, c.buyer_id, c.seller_id, c.status, c.created_at, c.last_seq,
           c.buyer_cleared_seq, c.seller_cleared_seq, c.deleted_by_buyer, c.deleted_by_seller,
           c.archived_by_buyer, c.archived_by_seller, c.blocked_by_buyer, c.blocked_by_seller,
           c.buyer_muted_until, c.seller_muted_until,
           c.buyer_last_read_seq, c.seller_last_read_seq,
           c.buyer_delivered_seq, c.seller_delivered_seq,
           c.buyer_delivered_at, c.seller_delivered_at,
           (SELECT max(m.read_at) FROM messages m
             WHERE m.conversation_id = c.id AND m.recipient_id = c.buyer_id
               AND m.seq <= c.buyer_last_read_seq) AS buyer_read_at,
           (SELECT max(m.read_at) FROM messages m
             WHERE m.conversation_id = c.id AND m.recipient_id = c.seller_id
               AND m.seq <= c.seller_last_read_seq) AS seller_read_at,
           c.chain_n AS chain_length
      FROM conversations c WHERE c.id = $1
"""
_PRODUCT: Final = """
    SELECT id, seller_id, title, price_cents, currency, image_url, status, reserved_for,
           created_at, updated_at
      FROM products WHERE id = $1
"""
_USERS: Final = """
    SELECT id, display_name, avatar_url, created_at FROM users
     WHERE id = ANY($1::bigint[]) ORDER BY id
"""
_BLOCKS: Final = """
    SELECT blocker_id, blocked_id, created_at FROM blocks
     WHERE (blocker_id, blocked_id) IN (($1, $2), ($2, $1)) ORDER BY created_at
"""
_REPORTS: Final = """
    SELECT r.id, r.message_id, r.reporter_id,
           CASE WHEN r.reporter_id IS NULL THEN 'system' ELSE 'user' END AS reporter,
           r.reason, r.status, r.resolution, r.created_at, r.resolved_at
      FROM reports r JOIN messages m ON m.id = r.message_id
     WHERE m.conversation_id = $1 ORDER BY r.id
"""
# Each offer, and each move of its status: who made the move is the notice's `by` where a
# notice was posted (accept, decline), else the offer's sender (withdrawn), else the sender of
# the offer that replaced it (countered, superseded: the conversation's next offer, as only
# one offer is open at a time).
_OFFERS: Final = """
    SELECT o.id, o.sender_id, o.created_at, o.metadata, o.offer_status,
           coalesce((SELECT json_agg(json_build_object(
                        'status', l.offer_status, 'at', l.at,
                        'by', coalesce(
                            (SELECT (n.metadata ->> 'by')::bigint FROM messages n
                              WHERE n.conversation_id = o.conversation_id
                                AND n.message_type = 'system'
                                AND n.metadata ->> 'offer_id' = o.id::text
                                AND n.metadata ->> 'offer_status' = l.offer_status
                              LIMIT 1),
                            CASE WHEN l.offer_status = 'withdrawn' THEN o.sender_id END,
                            (SELECT nm.sender_id FROM messages nm
                              WHERE nm.conversation_id = o.conversation_id
                                AND nm.message_type = 'offer' AND nm.seq > o.seq
                              ORDER BY nm.seq LIMIT 1)))
                      ORDER BY l.n)
                       FROM chain_links l
                      WHERE l.conversation_id = o.conversation_id AND l.message_id = o.id
                        AND l.kind = 'offer'), '[]')::text AS transitions
      FROM messages o
     WHERE o.conversation_id = $1 AND o.message_type = 'offer'
     ORDER BY o.seq
"""
_MESSAGES: Final = f"""
    SELECT {MESSAGE_COLUMNS},
           coalesce((SELECT json_agg(json_build_object(
                        'id', v.id, 'change', v.change, 'content', v.content,
                        'metadata', v.metadata, 'changed_by', v.changed_by,
                        'changed_at', v.changed_at) ORDER BY v.id)
                       FROM message_versions v WHERE v.message_id = m.id), '[]')::text
               AS versions
      FROM messages m WHERE m.conversation_id = $1 ORDER BY m.seq
"""

_encode = msgspec.json.Encoder().encode


async def conversation_export(
    conn: Connection, conversation_id: int
) -> AsyncGenerator[bytes, None]:
    """The export's bytes, in pieces; NotFound before the first piece when there is no such
    conversation. Run on a connection of its own: it holds a read-only transaction open
    while the caller writes the pieces out."""
    check_id(conversation_id, "conversation_id")
    transaction = conn.transaction(isolation="repeatable_read", readonly=True)
    await transaction.start()
    try:
        head = await _head(conn, conversation_id)
    except BaseException:
        await transaction.rollback()
        raise
    return _pieces(conn, transaction, conversation_id, head)


async def _head(conn: Connection, conversation_id: int) -> bytes:
    """Everything before the messages: small, read at once."""
    c = await conn.fetchrow(CONVERSATION, conversation_id)
    if c is None:
        raise NotFound(f"conversation {conversation_id} not found")
    product = await conn.fetchrow(_PRODUCT, c["product_id"])
    users = await conn.fetch(_USERS, [c["buyer_id"], c["seller_id"]])
    blocks = await conn.fetch(_BLOCKS, c["buyer_id"], c["seller_id"])
    reports = await conn.fetch(_REPORTS, conversation_id)
    offers = await conn.fetch(_OFFERS, conversation_id)
    head: dict[str, Any] = {
        "format": FORMAT,
        "exported_at": datetime.now(UTC),
        "conversation": conversation_record(c),
        "product": dict(product) if product is not None else None,
        "users": [dict(u) for u in users],
        "blocks": [dict(b) for b in blocks],
        "reports": [dict(r) for r in reports],
        "offers": [_offer(o) for o in offers],
    }
    encoded = _encode(head)
    return encoded[:-1] + b',"messages":['  # the object stays open for what follows


def conversation_record(c: Any) -> dict[str, Any]:
    """A conversation as the marketplace sees it: both sides' state (CONVERSATION's row)."""

    def side(name: str) -> dict[str, Any]:
        return {
            "user_id": c[f"{name}_id"],
            "cleared_seq": c[f"{name}_cleared_seq"],
            "deleted": c[f"deleted_by_{name}"],
            "archived": c[f"archived_by_{name}"],
            "blocked_the_other": c[f"blocked_by_{name}"],
            "muted_until": c[f"{name}_muted_until"],
            "read_seq": c[f"{name}_last_read_seq"],
            "read_at": c[f"{name}_read_at"],
            "delivered_seq": c[f"{name}_delivered_seq"],
            "delivered_at": c[f"{name}_delivered_at"],
        }

    return {
        "id": c["id"],
        "product_id": c["product_id"],
        "status": c["status"],
        "created_at": c["created_at"],
        "last_seq": c["last_seq"],
        "chain_length": c["chain_length"],
        "buyer": side("buyer"),
        "seller": side("seller"),
    }


def _offer(o: Any) -> dict[str, Any]:
    metadata = o["metadata"]
    return {
        "message_id": o["id"],
        "made_by": o["sender_id"],
        "made_at": o["created_at"],
        "amount_cents": metadata.get("amount_cents"),
        "currency": metadata.get("currency"),
        "status": o["offer_status"],
        "transitions": msgspec.Raw(o["transitions"].encode()),
    }


async def message_pieces(conn: Connection, query: str, key: int) -> AsyncIterator[bytes]:
    """Each message ``query`` gives for ``key`` (its columns, and ``versions`` as JSON text),
    encoded and comma-separated, read through a cursor (run inside a transaction)."""
    comma = b""
    async for row in conn.cursor(query, key, prefetch=chain.PREFETCH):
        message = {k: v for k, v in row.items() if k != "versions"}
        message["versions"] = msgspec.Raw(row["versions"].encode())
        yield comma + _encode(message)
        comma = b","


async def _pieces(
    conn: Connection, transaction: Any, conversation_id: int, head: bytes
) -> AsyncGenerator[bytes, None]:
    try:
        yield head
        async for message in message_pieces(conn, _MESSAGES, conversation_id):
            yield message
        yield b'],"chain":{"links":['
        comma, previous = b"", ""
        async for link in chain.links(conn, conversation_id):
            previous = link["hash"].hex()
            piece = {
                "n": link["n"],
                "kind": link["kind"],
                "message_id": link["message_id"],
                "at": link["at"],
                "record": link["record"],
                "digest": link["digest"].hex(),
                "hash": previous,
            }
            yield comma + _encode(piece)
            comma = b","
        yield b'],"head":' + _encode(previous or None) + b"}}"
    finally:
        await transaction.rollback()

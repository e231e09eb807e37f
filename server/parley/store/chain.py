"""A conversation's chain of links (sql/015_chain.sql), read back: each link's record rebuilt
from the tables, and the chain walked again to prove nothing was changed behind Parley's back.
A message's own link is on its row (sql/018); edits, unsends and offer moves are in
chain_links.

The triggers write ``digest = sha256(record)`` and ``hash = sha256(previous || kind ||
digest)``; RECORDS rebuilds every record with the same SQL functions, and ``walk`` redoes both
hashes in Python, so a change to a message, a version or a link shows as the first link whose
digest or hash no longer matches. docs/disputes.md walks an export the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Final

import asyncpg
import msgspec

if TYPE_CHECKING:
    from parley.store._sql import Connection

# Every link of a conversation in order, with its record as the tables give it now. A message
# or edit record of an erased message (sql/016) is NULL: its stored digest stands for it.
RECORDS: Final = """
    WITH v AS (
        SELECT v.id, v.message_id, v.changed_by, v.changed_at,
               coalesce(lead(v.content) OVER w, m.content) AS content_after,
               coalesce(lead(v.metadata) OVER w, m.metadata) AS metadata_after,
               first_value(v.content) OVER w AS first_content,
               first_value(v.metadata) OVER w AS first_metadata
          FROM message_versions v JOIN messages m ON m.id = v.message_id
         WHERE m.conversation_id = $1
        WINDOW w AS (PARTITION BY v.message_id ORDER BY v.id
                     ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    ), firsts AS (
        SELECT DISTINCT ON (message_id) message_id, first_content, first_metadata FROM v
    ), links AS (
        SELECT n, kind, message_id, version_id, offer_status, at, digest, hash
          FROM chain_links WHERE conversation_id = $1
        UNION ALL
        SELECT chain_n, 'message', id, NULL, NULL, created_at, chain_digest, chain_hash
          FROM messages WHERE conversation_id = $1 AND chain_n IS NOT NULL
    )
    SELECT l.n, l.kind, l.message_id, l.at, l.digest, l.hash,
           CASE WHEN m.erased_at IS NOT NULL AND l.kind IN ('message', 'edit') THEN NULL
                WHEN l.kind = 'message' THEN chain_message_record(
                    m.id, m.seq, m.sender_id, m.recipient_id, m.message_type,
                    coalesce(f.first_content, m.content), coalesce(f.first_metadata, m.metadata),
                    m.created_at)
                WHEN l.kind = 'edit' THEN chain_edit_record(
                    m.id, v.id, v.changed_by, v.content_after, v.metadata_after, v.changed_at)
                WHEN l.kind = 'unsend' THEN chain_unsend_record(
                    m.id, v.id, v.changed_by, v.changed_at)
                ELSE chain_offer_record(l.message_id, l.offer_status, l.at)
           END AS record
      FROM links l
      LEFT JOIN messages m ON m.id = l.message_id AND m.conversation_id = $1
      LEFT JOIN v ON v.id = l.version_id AND v.message_id = l.message_id
      LEFT JOIN firsts f ON f.message_id = l.message_id
     ORDER BY l.n
"""
# A message with no link (inserted with the triggers off), and offers whose status is not the
# one their last link says (a set operation, not a look-up per offer: links are indexed by n).
_UNCHAINED: Final = """
    SELECT id FROM messages WHERE conversation_id = $1 AND chain_n IS NULL ORDER BY id LIMIT 1
"""
_OFFER_DRIFT: Final = """
    SELECT m.id, last.n
      FROM (SELECT DISTINCT ON (message_id) message_id, n, offer_status FROM chain_links
             WHERE conversation_id = $1 AND kind = 'offer'
             ORDER BY message_id, n DESC) last
      JOIN messages m ON m.id = last.message_id
     WHERE m.offer_status IS DISTINCT FROM last.offer_status
     ORDER BY last.n LIMIT 1
"""
# The head the conversation row keeps (sql/018): the last link's number and hash.
_HEAD: Final = "SELECT chain_n, chain_hash FROM conversations WHERE id = $1"
PREFETCH: Final = 500


def encode_record(fields: Sequence[str | None]) -> bytes:
    """chain_record: each field as ``<bytes>:<utf-8>``, NULL as ``-``, run together."""
    out = bytearray()
    for field in fields:
        if field is None:
            out += b"-"
        else:
            data = field.encode()
            out += b"%d:%s" % (len(data), data)
    return bytes(out)


def next_hash(previous: bytes, kind: str, digest: bytes) -> bytes:
    return hashlib.sha256(previous + kind.encode() + digest).digest()


class Broken(msgspec.Struct, frozen=True):
    """The first link that does not match, and why."""

    n: int | None
    kind: str | None
    message_id: int | None
    reason: str


class Verdict(msgspec.Struct, frozen=True):
    ok: bool
    links: int
    head: str | None
    broken: Broken | None = None


async def links(conn: Connection, conversation_id: int) -> AsyncIterator[asyncpg.Record]:
    """Each link with its record, in order (run inside a transaction: a cursor)."""
    async for row in conn.cursor(RECORDS, conversation_id, prefetch=PREFETCH):
        yield row


async def verify(conn: Connection, conversation_id: int) -> Verdict:
    """Rebuild every record from the tables and walk the chain again, in one snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        previous, count = b"", 0
        async for row in links(conn, conversation_id):
            count += 1
            broken = _check(row, count, previous)
            if broken is not None:
                return Verdict(False, count, None, broken)
            previous = row["hash"]
        unchained = await conn.fetchval(_UNCHAINED, conversation_id)
        if unchained is not None:
            reason = "a message with no link: stored with the triggers off"
            return Verdict(False, count, None, Broken(None, "message", unchained, reason))
        drift = await conn.fetchrow(_OFFER_DRIFT, conversation_id)
        if drift is not None:
            reason = "the offer's status is not the one its last link holds"
            return Verdict(False, count, None, Broken(drift["n"], "offer", drift["id"], reason))
        head = await conn.fetchrow(_HEAD, conversation_id)
        if head is not None and (head["chain_n"], bytes(head["chain_hash"])) != (count, previous):
            reason = f"the conversation's head is link {head['chain_n']}, not this last link"
            return Verdict(False, count, None, Broken(count or None, None, None, reason))
    return Verdict(True, count, previous.hex() if count else None)


def _check(row: asyncpg.Record, expected_n: int, previous: bytes) -> Broken | None:
    n, kind, message_id = row["n"], row["kind"], row["message_id"]
    if n != expected_n:
        return Broken(expected_n, None, None, f"link {expected_n} is missing")
    record = row["record"]
    if record is not None and hashlib.sha256(encode_record(record)).digest() != row["digest"]:
        return Broken(n, kind, message_id, "the record is not the one the link was made of")
    if next_hash(previous, kind, row["digest"]) != row["hash"]:
        return Broken(n, kind, message_id, "the hash does not follow from the previous link")
    return None

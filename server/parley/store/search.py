"""Search in one's own conversations (sql/017_search.sql), and history opened around a seq.

A query is cut into words; every word must be in the message, the last one as a prefix
("iph" finds "iPhone"). Postgres folds case and accents on both sides (parley_fold). Only
what the caller can see is searched: their conversations, past what they cleared, not
unsent or erased messages, and not conversations they blocked the other side of. The GIN
index holds each word once per party, prefixed with their id, so the caller's lexemes lead
to the caller's matches only, however many messages others have.

Highlights are computed here, on the content returned: offsets in code points of the words
that match, never markup.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Final

import msgspec

from parley.errors import InvalidArgument
from parley.models import Message
from parley.store._sql import MESSAGE_COLUMNS, connection, own_cleared, participant
from parley.store.messages import HISTORY_QUERY, cleared_seq
from parley.validation import MAX_ID, MAX_SEARCH_CHARS, check_id, check_page_limit

if TYPE_CHECKING:
    from parley.store._sql import Database

MAX_QUERY_WORDS: Final = 10
# Letters and digits: what Postgres's parser makes words of (it splits at "_" too).
_WORD: Final = re.compile(r"[^\W_]+")

_COLUMNS: Final = ", ".join(f"m.{column.strip()}" for column in MESSAGE_COLUMNS.split(","))
_SEARCH: Final = f"""
    SELECT {_COLUMNS}
      FROM messages m JOIN conversations c ON c.id = m.conversation_id
     WHERE m.search @@ parley_search_query($1, $2::text[])
       AND {participant("$1")}
       AND m.seq > {own_cleared("$1")}
       AND m.unsent_at IS NULL AND m.erased_at IS NULL
       AND NOT CASE WHEN c.buyer_id = $1 THEN c.blocked_by_buyer ELSE c.blocked_by_seller END
       AND ($3::bigint IS NULL OR m.conversation_id = $3)
       AND m.id < $4
     ORDER BY m.id + 0 DESC
     LIMIT $5
"""
# `m.id + 0`: ordered by id all the same, but not by walking the primary key backwards and
# testing each message, which the planner picks for a common word and which reads every
# newer message of every user before the caller's (S7: 250 ms). The GIN index's intersection
# with the caller's lexeme is bounded by the caller's own messages.


_PLAN_FOR_THESE_WORDS: Final = (
    "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL max_parallel_workers_per_gather = 0"
)


class Found(msgspec.Struct, frozen=True):
    conversation_id: int
    message: Message
    highlights: list[tuple[int, int]]


class SearchPage(msgspec.Struct, frozen=True):
    results: list[Found]
    next: int | None  # the `before` of the next page, or None when this is the last


def words_of(query: str) -> list[str]:
    """The query's words; InvalidArgument when it has none or too many."""
    if len(query) > MAX_SEARCH_CHARS:
        raise InvalidArgument(f"query must be at most {MAX_SEARCH_CHARS} characters")
    words = _WORD.findall(query)
    if not words:
        raise InvalidArgument("query must have at least one word")
    if len(words) > MAX_QUERY_WORDS:
        raise InvalidArgument(f"query must have at most {MAX_QUERY_WORDS} words")
    return words


def fold(text: str) -> str:
    """Case and accents off, as parley_fold does (near enough for highlighting)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def highlights(content: str, folded: list[str]) -> list[tuple[int, int]]:
    """[start, end) of each word of ``content`` that a query word (``fold``ed) matches."""
    whole, prefix = set(folded[:-1]), folded[-1]
    found = []
    for match in _WORD.finditer(content):
        word = fold(match.group())
        if word in whole or word.startswith(prefix):
            found.append((match.start(), match.end()))
    return found


async def search(
    db: Database,
    user_id: int,
    query: str,
    conversation_id: int | None = None,
    before: int | None = None,
    limit: int = 20,
) -> SearchPage:
    """The user's messages that hold every word of ``query``, newest first."""
    check_page_limit(limit)
    if conversation_id is not None:
        check_id(conversation_id, "conversation_id")
    if before is not None:
        check_id(before, "before")
    words = words_of(query)
    async with connection(db) as conn, conn.transaction(readonly=True):
        # A plan for these words and this user, not a generic one made once for any (which
        # cannot tell a rare word from a common one); and no parallel workers, which cost
        # more to start than one user's matches take to read (bench S7).
        await conn.execute(_PLAN_FOR_THESE_WORDS)
        rows = await conn.fetch(
            _SEARCH,
            user_id,
            words,
            conversation_id,
            MAX_ID if before is None else before,
            limit,
        )
    folded = [fold(word) for word in words]  # once, not once per result
    results = [
        Found(row["conversation_id"], Message(**row), highlights(row["content"], folded))
        for row in rows
    ]
    return SearchPage(results, results[-1].message.id if len(results) == limit else None)


_FROM_SEQ: Final = f"""
    SELECT {MESSAGE_COLUMNS} FROM messages
     WHERE conversation_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3
"""


async def history_around(
    db: Database, conversation_id: int, user_id: int, around_seq: int, limit: int = 50
) -> list[Message]:
    """Up to ``limit`` messages oldest first, ``around_seq`` among them with about half the
    page before it: a conversation opened at a found message. Cleared ones are left out."""
    check_page_limit(limit)
    if around_seq < 1:
        raise InvalidArgument("around_seq must be a positive seq")
    async with connection(db) as conn, conn.transaction(isolation="repeatable_read"):
        cleared = await cleared_seq(conn, conversation_id, user_id)
        start = max(around_seq, cleared + 1)
        older = await conn.fetch(HISTORY_QUERY, conversation_id, cleared, start, limit // 2)
        newer = await conn.fetch(_FROM_SEQ, conversation_id, start, limit - len(older))
    return [Message(**row) for row in [*reversed(older), *newer]]

"""`python -m bench s7`: search in one's own conversations at scale.

``--messages`` messages (1,000,000), 20 per conversation (50,000); one user, the seller,
has a fifth of the conversations (10,000), and so a fifth of all messages. Texts are 6 to 12
words drawn with a long tail from 2,000 words (a few very common, most rare; some accented).
The rows are written with COPY and the triggers off (this scenario reads; S1 measures
writing), then the GIN index is built and the tables analysed.

Then ``store.search`` runs as the seller for 210 queries: one common word, one rare word, two
words, and a prefix of three letters, 50 each, and 10 of a word in most texts ("the"); the
median and 95th percentile are reported, by kind too, with the plan Postgres chose for the
commonest marketplace word.
"""

from __future__ import annotations

import itertools
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.pieces import DATABASE
from bench.world import fresh_database
from parley.store import search
from parley.store.pool import create_pool
from parley.validation import MAX_ID

SELLER = 1
WORDS = 2_000
_CUMULATIVE = list(itertools.accumulate(1 / rank for rank in range(1, WORDS + 1)))
QUERIES_PER_KIND = 50
# The head of the tail: words in most texts, as "the" and "is" are in English.
_STOP = ["the", "is", "a", "to", "you", "it", "and", "for", "i", "on", "can", "this"]
# Marketplace words, common but not everywhere: ranks 13 to 21.
_COMMON = ["available", "price", "still", "pickup", "today", "phone", "bike", "offer", "ok"]
_ACCENTED = ["café", "vélo", "größe", "niño", "señal", "über", "crème", "zürich"]


def vocabulary(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    made = {
        "".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(WORDS * 2)
    }
    head = _STOP + _COMMON + _ACCENTED
    return head + sorted(made)[: WORDS - len(head)]


def text(rng: random.Random, words: list[str]) -> str:
    # Zipf's law, roughly: the word of rank r drawn in proportion to 1 / r.
    count = rng.randint(6, 12)
    return " ".join(rng.choices(words, cum_weights=_CUMULATIVE, k=count))


async def s7(admin_dsn: str, messages: int) -> dict[str, Any]:
    rng = random.Random(7)
    words = vocabulary(rng)
    tail = words[len(_STOP) + len(_COMMON) :]
    rng.shuffle(tail)  # the stop and common words keep their ranks
    words[len(_STOP) + len(_COMMON) :] = tail
    conversations = max(10, messages // 20)
    dsn = await fresh_database(admin_dsn, DATABASE)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        started = time.perf_counter()
        await _fill(pool, rng, words, messages, conversations)
        filled = time.perf_counter() - started
        page_ms = []
        plan = ""
        for kind, query in _queries(rng, words):
            begun = time.perf_counter()
            await search.search(pool, SELLER, query, limit=20)
            page_ms.append((kind, (time.perf_counter() - begun) * 1000))
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")  # as search
            explained = await conn.fetch(
                "EXPLAIN (ANALYZE, BUFFERS) " + search._SEARCH,
                SELLER,
                ["available"],
                None,
                MAX_ID,
                20,
            )
        plan = "\n".join(row[0] for row in explained)
    finally:
        await pool.close()
    every = [ms for _, ms in page_ms]
    by_kind = {
        kind: round(statistics.median(ms for k, ms in page_ms if k == kind), 2)
        for kind in dict(page_ms)
    }
    result = {
        "messages": messages,
        "conversations": conversations,
        "users_conversations": conversations // 5,
        "fill_seconds": round(filled, 1),
        "queries": len(every),
        "median_ms": round(statistics.median(every), 2),
        "p95_ms": round(statistics.quantiles(every, n=20)[-1], 2),
        "median_ms_by_kind": by_kind,
        "uses_gin_index": "messages_search" in plan,
        "plan": plan,
    }
    print(
        f"S7 search: {messages:,} messages, a user in {conversations // 5:,} conversations: "
        f"median {result['median_ms']} ms, p95 {result['p95_ms']} ms over {len(every)} "
        f"queries {by_kind}; GIN index used: {result['uses_gin_index']}",
        flush=True,
    )
    print(plan, flush=True)
    return result


def _queries(rng: random.Random, words: list[str]) -> list[tuple[str, str]]:
    common, rare = _COMMON, words[200:]
    made = [("stop word", rng.choice(_STOP)) for _ in range(10)]
    for _ in range(QUERIES_PER_KIND):
        made.append(("common word", rng.choice(common)))
        made.append(("rare word", rng.choice(rare)))
        made.append(("two words", f"{rng.choice(words[:300])} {rng.choice(words[:300])}"))
        made.append(("prefix", rng.choice(words[:500])[:3]))
    rng.shuffle(made)
    return made


async def _fill(
    pool: Any, rng: random.Random, words: list[str], messages: int, conversations: int
) -> None:
    """Users, products, conversations and messages, by COPY with the triggers off. One buyer
    per conversation (ids from 1001); the seller is 1, everyone else's seller 2."""
    sellers = conversations // 5
    async with pool.acquire() as conn:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "INSERT INTO users (id, display_name) VALUES (1, 'seller')"
            " UNION ALL SELECT 2, 'other seller'"
        )
        await conn.execute(
            "INSERT INTO users (id, display_name) SELECT 1000 + g, 'buyer ' || g"
            " FROM generate_series(1, $1) g",
            conversations,
        )
        await conn.execute(
            "INSERT INTO products (id, seller_id, title) SELECT g, CASE WHEN g <= $2 THEN 1"
            " ELSE 2 END, 'product ' || g FROM generate_series(1, $1) g",
            conversations,
            sellers,
        )
        per_conversation = messages // conversations
        start = datetime(2026, 1, 1, tzinfo=UTC)
        await conn.execute(
            """
            INSERT INTO conversations (product_id, buyer_id, seller_id, last_seq,
                                       last_message_at)
            SELECT g, 1000 + g, CASE WHEN g <= $2 THEN 1 ELSE 2 END, $3, $4
              FROM generate_series(1, $1) g
            """,
            conversations,
            sellers,
            per_conversation,
            start,
        )
        await conn.execute("DROP INDEX messages_search")

        def rows() -> Any:
            for conversation in range(1, conversations + 1):
                seller = 1 if conversation <= sellers else 2
                buyer = 1000 + conversation
                for seq in range(1, per_conversation + 1):
                    sender, recipient = (buyer, seller) if seq % 2 else (seller, buyer)
                    yield (
                        conversation, seq, sender, recipient, "text", text(rng, words),
                        f"s7-{conversation}-{seq}", start + timedelta(seconds=seq), True,
                        start,
                    )  # fmt: skip

        await conn.copy_records_to_table(
            "messages",
            records=rows(),
            columns=[
                "conversation_id", "seq", "sender_id", "recipient_id", "message_type",
                "content", "client_msg_id", "created_at", "is_read", "read_at",
            ],
        )  # fmt: skip
        await conn.execute("CREATE INDEX messages_search ON messages USING gin (search)")
        await conn.execute("ANALYZE")

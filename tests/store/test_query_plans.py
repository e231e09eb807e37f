"""EXPLAIN the store's hot queries on tables big enough that the planner would rather not guess."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from parley import store

USERS, CONVERSATIONS, MESSAGES_PER_CONVERSATION = 5_000, 50_000, 4
ME = 42  # a busy user: buyer in some conversations, seller in others
LONG_CONVERSATION, LONG_MESSAGES = 1, 5_000
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


@pytest.fixture
async def populated(pool: asyncpg.Pool) -> asyncpg.Pool:
    async with pool.acquire() as conn:
        # Bulk load without triggers (replica role); the cached columns are filled directly.
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "INSERT INTO users (id, display_name)"
            " SELECT g, 'user ' || g FROM generate_series(1, $1) g",
            USERS,
        )
        await conn.execute("INSERT INTO badges (user_id) SELECT id FROM users")
        await conn.execute(
            "INSERT INTO products (id, seller_id, title)"
            " SELECT g, g, 'product ' || g FROM generate_series(1, $1) g",
            USERS,
        )
        # Everyone buys from everyone, sparsely; ME buys 300 products and sells product ME
        # to 300 buyers.
        await conn.execute(
            """
            INSERT INTO conversations (product_id, buyer_id, seller_id, last_seq,
                                       last_message_text, last_message_at,
                                       buyer_unread_count, seller_unread_count,
                                       deleted_by_buyer, archived_by_seller)
            SELECT p, b, p, $3::bigint, 'hi', now() - g * interval '1 minute',
                   (g % 3 = 0)::int, (g % 5 = 0)::int, g % 11 = 0, g % 13 = 0
              FROM generate_series(1::bigint, $1) g,
                   LATERAL (SELECT 1 + (g * 7919) % $2 AS p, 1 + (g * 104729) % $2 AS b) ids
             WHERE p <> b
             UNION ALL
            SELECT p, $4, p, $3, 'hi', now() - p * interval '1 second', 1, 0, false, false
              FROM generate_series(1::bigint, 301) p WHERE p <> $4
             UNION ALL
            SELECT $4, b, $4, $3, 'hi', now() - b * interval '1 second', 0, 1, false, false
              FROM generate_series(1::bigint, 301) b WHERE b <> $4
            ON CONFLICT DO NOTHING
            """,
            CONVERSATIONS,
            USERS,
            MESSAGES_PER_CONVERSATION,
            ME,
        )
        await conn.execute(
            """
            INSERT INTO messages (conversation_id, seq, sender_id, recipient_id, message_type,
                                  content, client_msg_id)
            SELECT c.id, s, c.buyer_id, c.seller_id, 'text', 'hi', c.id || '-' || s
              FROM conversations c, generate_series(1, $1) s
            """,
            MESSAGES_PER_CONVERSATION,
        )
        # One long conversation, where paging history really matters.
        await conn.execute(
            """
            INSERT INTO messages (conversation_id, seq, sender_id, recipient_id, message_type,
                                  content, client_msg_id)
            SELECT $1, s, $2, $3, 'text', 'hi', 'long-' || s FROM generate_series($4::bigint, $5) s
            """,
            LONG_CONVERSATION,
            ME,
            1,
            MESSAGES_PER_CONVERSATION + 1,
            LONG_MESSAGES,
        )
        await conn.execute(
            "UPDATE conversations SET last_seq = $2 WHERE id = $1", LONG_CONVERSATION, LONG_MESSAGES
        )
        await conn.execute("SET session_replication_role = DEFAULT")
        await conn.execute("VACUUM ANALYZE users, products, conversations, messages")
    mine = await pool.fetchval(
        "SELECT count(*) FROM conversations WHERE $1 IN (buyer_id, seller_id)", ME
    )
    assert mine >= 600, "the busy user has conversations in both roles"
    return pool


async def plan_nodes(pool: asyncpg.Pool, query: str, *args: Any) -> list[dict[str, Any]]:
    """Every node of the query's plan, flattened."""
    raw = await pool.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args)
    nodes, stack = [], [json.loads(raw)[0]["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    return nodes


def scans(nodes: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (node["Node Type"], node.get("Index Name") or node.get("Relation Name", ""))
        for node in nodes
        if "Scan" in node["Node Type"]
    }


def assert_no_seq_scan(nodes: list[dict[str, Any]]) -> None:
    sequential = [n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"]
    assert sequential == [], f"sequential scans on {sequential}"


async def test_inbox_walks_both_side_indexes(populated: asyncpg.Pool) -> None:
    nodes = await plan_nodes(populated, store.INBOX_QUERY, ME, False, FAR_FUTURE, 2**63 - 1, 21)
    assert_no_seq_scan(nodes)
    used = {name for _, name in scans(nodes)}
    assert {"conversations_buyer_inbox", "conversations_seller_inbox"} <= used
    # No sort of the user's whole inbox: each branch reads at most one page from its index.
    limits = [n for n in nodes if n["Node Type"] == "Limit"]
    assert len(limits) >= 3


async def test_history_is_a_range_scan_of_conversation_seq(populated: asyncpg.Pool) -> None:
    nodes = await plan_nodes(populated, store.HISTORY_QUERY, LONG_CONVERSATION, 0, 2**62, 50)
    assert_no_seq_scan(nodes)
    [scan] = [n for n in nodes if n.get("Index Name") == "messages_conversation_seq"]
    assert (scan["Node Type"], scan["Scan Direction"]) == ("Index Scan", "Backward")
    assert not any(n["Node Type"] == "Sort" for n in nodes), "the index gives the order"


async def test_the_unread_total_is_a_badge_probe_less_the_silenced(
    populated: asyncpg.Pool,
) -> None:
    # One primary-key probe of badges, and the two partial indexes that hold only muted or
    # blocked conversations (sql/008): no walk of the user's conversations.
    nodes = await plan_nodes(populated, store.UNREAD_TOTAL_QUERY, ME)
    assert_no_seq_scan(nodes)
    assert {name for _, name in scans(nodes)} == {
        "badges_pkey",
        "conversations_buyer_silenced",
        "conversations_seller_silenced",
    }


async def test_get_or_create_probes_the_unique_triple(populated: asyncpg.Pool) -> None:
    nodes = await plan_nodes(populated, store.FIND_CONVERSATION_QUERY, 7, ME)
    assert_no_seq_scan(nodes)
    assert any(name == "conversations_one_per_triple" for _, name in scans(nodes))


async def test_mark_read_finds_its_rows_by_index(populated: asyncpg.Pool) -> None:
    nodes = await plan_nodes(
        populated, store.MARK_READ_QUERY, LONG_CONVERSATION, 1, 0, LONG_MESSAGES
    )
    assert_no_seq_scan(nodes)
    used = {name for _, name in scans(nodes)}
    assert used & {"messages_conversation_seq", "messages_recipient_unread"}, used

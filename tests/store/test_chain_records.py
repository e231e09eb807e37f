"""The seq trigger builds a message's chain record in pieces, for speed (sql/020): the fields
known before the conversation is locked first, the time formatted once. Whatever the fields
hold, its digest must be the one verify and the export rebuild with chain_record, or every
chain would fail verify."""

from __future__ import annotations

import asyncpg
import asyncpg.pool
import pytest

from parley import store
from parley.models import SentMessage
from parley.store import SendRequest, chain
from tests.world import World, client_msg_id, conversation_row

REBUILT = """
    SELECT m.id, m.chain_digest,
           sha256(chain_record(VARIADIC chain_message_record(
               m.id, m.seq, m.sender_id, m.recipient_id, m.message_type, m.content, m.metadata,
               m.created_at))) AS rebuilt
      FROM messages m WHERE m.conversation_id = $1 ORDER BY m.seq
"""


async def test_every_kind_of_field_gives_the_digest_verify_rebuilds(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "plain")
    await world.send(conversation.id, world.mary, "ünïcödé, emoji 🙂 and 12:34 colons")
    await world.send(
        conversation.id,
        world.john,
        "",
        message_type="image",
        metadata={"url": "https://example.com/p.jpg", "nested": {"a": [1, 2]}},
    )
    async with world.pool.acquire() as conn:
        verdict = await chain.verify(conn, conversation.id)
    assert verdict.ok, verdict.broken
    assert verdict.links == 3
    # A system message (no parties), then times whose text is not 27 bytes long: the year
    # 10000 and beyond (a clock gone wrong must not break the chain; Python's datetime, and so
    # verify, stops at 9999, hence the digests compared in SQL).
    await world.pool.execute(
        "INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type, content,"
        " client_msg_id) VALUES ($1, NULL, NULL, 'system', 'the offer was accepted', $2)",
        conversation.id,
        client_msg_id(),
    )
    for at in ("10000-01-02 03:04:05.678901+00", "123456-07-08 00:00:00+00"):
        await world.pool.execute(
            "INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type,"
            " content, metadata, client_msg_id, created_at)"
            " VALUES ($1, $2, $3, 'text', $4, '{\"k\": \"v\"}', $5, $6::text::timestamptz)",
            conversation.id,
            world.john.id,
            world.mary.id,
            f"sent at {at}",
            client_msg_id(),
            at,
        )

    rows = await world.pool.fetch(REBUILT, conversation.id)
    assert len(rows) == 6
    for row in rows:
        assert row["chain_digest"] == row["rebuilt"], row["id"]


async def test_a_batch_links_its_messages_as_one_send_at_a_time_would(world: World) -> None:
    """send_many works out ids, seqs and links for its whole batch before it inserts
    (sql/021): several messages to one conversation, in arrival order, after one sent alone."""
    conversation = await world.open()
    other_product, _ = await store.upsert_product(world.pool, 7030, world.eve.id, "Eve's lamp")
    with_eve, _ = await store.open_conversation(world.pool, world.john.id, other_product.id)
    await world.send(conversation.id, world.john, "alone first")
    results, _ = await store.send_many(
        world.pool,
        [
            SendRequest(conversation.id, world.mary.id, client_msg_id(), "ünïcödé 🙂"),
            SendRequest(with_eve.id, world.john.id, client_msg_id(), "to Eve"),
            SendRequest(
                conversation.id,
                world.john.id,
                client_msg_id(),
                "",
                message_type="image",
                metadata={"url": "https://example.com/p.jpg"},
            ),
            SendRequest(conversation.id, world.mary.id, client_msg_id(), "third of the batch"),
        ],
    )
    sent = [result.message for result in results if isinstance(result, SentMessage)]
    assert [(m.conversation_id, m.seq) for m in sent] == [
        (conversation.id, 2),
        (with_eve.id, 1),
        (conversation.id, 3),
        (conversation.id, 4),
    ]
    await world.send(conversation.id, world.mary, "alone after")
    async with world.pool.acquire() as conn:
        for conversation_id, links in ((conversation.id, 5), (with_eve.id, 1)):
            verdict = await chain.verify(conn, conversation_id)
            assert verdict.ok, verdict.broken
            assert verdict.links == links
    for row in await world.pool.fetch(REBUILT, conversation.id):
        assert row["chain_digest"] == row["rebuilt"], row["id"]


async def test_a_row_brought_with_a_seq_must_be_the_next_with_its_link(world: World) -> None:
    """Only send_many's own insert, under parley.seqs_brought, skips the seq trigger with the
    seqs and links it brings (sql/021). Anyone else's seq is replaced by the trigger's; and a
    row brought under the setting must be its conversation's next message and next link, or
    the statement trigger refuses it."""
    conversation = await world.open()
    await world.send(conversation.id, world.john, "one")
    insert = (
        "INSERT INTO messages (conversation_id, seq, sender_id, recipient_id, message_type,"
        " content, client_msg_id, chain_n, chain_digest, chain_hash)"
        " VALUES ($1, $2, $3, $4, 'text', 'out of turn', $5, $6, sha256('x'), sha256('y'))"
        " RETURNING seq, chain_n"
    )
    parties = (world.john.id, world.mary.id)
    stored = await world.pool.fetchrow(insert, conversation.id, 7, *parties, client_msg_id(), 9)
    assert stored is not None
    assert (stored["seq"], stored["chain_n"]) == (2, 2), "the trigger's, not the row's"

    async def bring(conn: asyncpg.pool.PoolConnectionProxy, seq: int, chain_n: int) -> None:
        async with conn.transaction():
            await conn.execute("SET LOCAL parley.seqs_brought = 'on'")
            await conn.execute(insert, conversation.id, seq, *parties, client_msg_id(), chain_n)

    async with world.pool.acquire() as conn:
        assert (await chain.verify(conn, conversation.id)).ok
        for seq, chain_n in ((4, 3), (2, 3), (3, 5)):  # a gap, a seq taken, a link out of turn
            with pytest.raises(asyncpg.PostgresError) as refused:
                await bring(conn, seq, chain_n)
            refusal = refused.value.constraint_name
            assert refusal in ("messages_seq_is_next", "messages_conversation_seq")
    row = await conversation_row(world.pool, conversation.id)
    assert (row["last_seq"], row["chain_n"], row["seller_unread_count"]) == (2, 2, 2)

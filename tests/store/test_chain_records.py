"""The seq trigger builds a message's chain record in pieces, for speed (sql/020): the fields
known before the conversation is locked first, the time formatted once. Whatever the fields
hold, its digest must be the one verify and the export rebuild with chain_record, or every
chain would fail verify."""

from __future__ import annotations

from parley.store import chain
from tests.world import World, client_msg_id

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

"""The store's operations, one behaviour per test, against a real Postgres."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from parley import store
from parley.config import Limits
from parley.errors import (
    ClientMsgIdConflict,
    ContentTooLong,
    EmptyContent,
    Forbidden,
    InvalidArgument,
    InvalidMetadata,
    InvalidText,
    MetadataTooLarge,
    NotFound,
    OwnProduct,
    ParleyError,
    ProductUnavailable,
    UnknownMessageType,
)
from tests.world import (
    World,
    client_msg_id,
    conversation_row,
    message_row,
    product_row,
    table_snapshot,
)

# --- the seed's flow ----------------------------------------------------------------------------


async def test_john_asks_mary_about_her_phone_and_she_reads_it(world: World) -> None:
    conversation = await world.open()
    assert (conversation.buyer_id, conversation.seller_id) == (world.john.id, world.mary.id)

    sent = await world.send(conversation.id, world.john, "Is this still available?")

    row = await conversation_row(world.pool, conversation.id)
    assert row["seller_unread_count"] == 1
    assert row["buyer_unread_count"] == 0
    assert row["last_message_text"] == "Is this still available?"
    assert row["last_message_at"] == sent.message.created_at
    assert row["last_seq"] == sent.message.seq == 1
    assert await store.unread_total(world.pool, world.mary.id) == 1

    receipt = await store.mark_read(world.pool, conversation.id, world.mary.id, up_to_seq=1)

    assert receipt.messages_marked == 1
    assert receipt.unread_count == 0
    row = await conversation_row(world.pool, conversation.id)
    assert row["seller_unread_count"] == 0
    assert row["seller_last_read_seq"] == 1
    message = await message_row(world.pool, sent.message.id)
    assert message["is_read"] is True
    assert message["read_at"] == receipt.read_at
    assert await store.unread_total(world.pool, world.mary.id) == 0
    assert await store.recount_counters(world.pool) == []


# --- conversations ------------------------------------------------------------------------------


async def test_opening_twice_returns_the_same_conversation(world: World) -> None:
    first, created_first = await store.open_conversation(world.pool, world.john.id, world.iphone.id)
    second, created_second = await store.open_conversation(
        world.pool, world.john.id, world.iphone.id
    )
    assert (created_first, created_second) == (True, False)
    assert first.id == second.id
    assert await world.pool.fetchval("SELECT count(*) FROM conversations") == 1


async def test_a_conversation_shows_its_product_and_the_other_party(world: World) -> None:
    conversation = await world.open()
    assert conversation.role == "buyer"
    assert conversation.peer.display_name == "Mary"
    assert conversation.product.title == "iPhone 13, 128 GB"
    seen_by_mary = await store.get_conversation(world.pool, conversation.id, world.mary.id)
    assert seen_by_mary.role == "seller"
    assert seen_by_mary.peer.display_name == "John"


async def test_sellers_cannot_message_their_own_product(world: World) -> None:
    with pytest.raises(OwnProduct):
        await store.open_conversation(world.pool, world.mary.id, world.iphone.id)
    assert await world.pool.fetchval("SELECT count(*) FROM conversations") == 0


@pytest.mark.parametrize("status", ["sold", "deleted"])
async def test_no_new_conversation_about_a_product_that_is_gone(world: World, status: str) -> None:
    await store.upsert_product(world.pool, world.iphone.id, world.mary.id, status=status)
    with pytest.raises(ProductUnavailable):
        await world.open()
    assert await world.pool.fetchval("SELECT count(*) FROM conversations") == 0


async def test_an_existing_conversation_stays_reachable_after_the_sale(world: World) -> None:
    conversation = await world.open()
    await store.upsert_product(world.pool, world.iphone.id, world.mary.id, status="sold")
    again, created = await store.open_conversation(world.pool, world.john.id, world.iphone.id)
    assert (again.id, created) == (conversation.id, False)


async def test_unknown_product_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        await store.open_conversation(world.pool, world.john.id, 999_999)


async def test_selling_the_product_archives_its_conversations_for_both(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john)
    _, changed = await store.upsert_product(
        world.pool, world.iphone.id, world.mary.id, status="sold"
    )
    assert changed == [conversation.id]
    for user in (world.john, world.mary):
        view = await store.get_conversation(world.pool, conversation.id, user.id)
        assert (view.status, view.archived) == ("archived", True)
        assert (await store.inbox(world.pool, user.id)).conversations == []
        archived = await store.inbox(world.pool, user.id, archived=True)
        assert [c.id for c in archived.conversations] == [conversation.id]


async def test_a_product_cannot_change_seller(world: World) -> None:
    with pytest.raises(Forbidden):
        await store.upsert_product(world.pool, world.iphone.id, world.john.id, "stolen")
    product = await product_row(world.pool, world.iphone.id)
    assert (product["seller_id"], product["title"]) == (world.mary.id, "iPhone 13, 128 GB")


async def test_a_product_of_an_unknown_seller_is_refused(world: World) -> None:
    with pytest.raises(NotFound):
        await store.upsert_product(world.pool, 8000, 424242, "ghost")


# --- sending ------------------------------------------------------------------------------------


async def test_seqs_count_up_from_one_per_conversation(world: World) -> None:
    conversation = await world.open()
    seqs = [(await world.send(conversation.id, world.john)).message.seq for _ in range(3)]
    assert seqs == [1, 2, 3]


async def test_a_retried_client_msg_id_returns_the_same_message_and_writes_nothing(
    world: World,
) -> None:
    conversation = await world.open()
    first = await world.send(conversation.id, world.john, "offer?", client_msg_id="retry-1")
    before = await table_snapshot(world.pool)

    again = await world.send(conversation.id, world.john, "offer?", client_msg_id="retry-1")

    assert again.replayed is True
    assert again.message == first.message
    assert await table_snapshot(world.pool) == before
    assert (await conversation_row(world.pool, conversation.id))["last_seq"] == 1


async def test_reusing_a_client_msg_id_for_other_content_is_refused(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "first", client_msg_id="same")
    before = await table_snapshot(world.pool)
    with pytest.raises(ClientMsgIdConflict):
        await world.send(conversation.id, world.john, "second", client_msg_id="same")
    assert await table_snapshot(world.pool) == before


async def test_the_same_client_msg_id_from_two_senders_is_two_messages(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "hi", client_msg_id="x")
    reply = await world.send(conversation.id, world.mary, "hi", client_msg_id="x")
    assert (reply.replayed, reply.message.seq) == (False, 2)


async def test_each_side_counts_only_what_the_other_sent(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "one")
    await world.send(conversation.id, world.john, "two")
    await world.send(conversation.id, world.mary, "reply")
    row = await conversation_row(world.pool, conversation.id)
    assert (row["buyer_unread_count"], row["seller_unread_count"]) == (1, 2)
    assert row["last_message_text"] == "reply"
    assert row["last_message_sender_id"] == world.mary.id


async def test_a_system_message_counts_for_neither_side(world: World) -> None:
    conversation = await world.open()
    sent = await store.send_message(
        world.pool,
        conversation_id=conversation.id,
        sender_id=None,
        client_msg_id="sys-1",
        message_type="system",
        content="The seller marked this item as sold.",
    )
    assert (sent.message.sender_id, sent.message.recipient_id) == (None, None)
    row = await conversation_row(world.pool, conversation.id)
    assert (row["buyer_unread_count"], row["seller_unread_count"]) == (0, 0)
    assert row["last_message_type"] == "system"
    again = await store.send_message(
        world.pool,
        conversation_id=conversation.id,
        sender_id=None,
        client_msg_id="sys-1",
        message_type="system",
        content="The seller marked this item as sold.",
    )
    assert again.replayed is True


async def test_users_cannot_send_system_messages(world: World) -> None:
    conversation = await world.open()
    with pytest.raises(Forbidden):
        await world.send(conversation.id, world.john, "I am the admin", message_type="system")


async def test_image_and_offer_messages_carry_their_metadata(world: World) -> None:
    conversation = await world.open()
    image = await world.send(
        conversation.id,
        world.mary,
        "",
        message_type="image",
        metadata={"url": "https://cdn.example.com/p/1.jpg", "width": 800},
    )
    offer = await world.send(
        conversation.id,
        world.john,
        "Would you take 400?",
        message_type="offer",
        metadata={"amount": 40000, "currency": "EUR"},
    )
    assert image.message.metadata == {"url": "https://cdn.example.com/p/1.jpg", "width": 800}
    assert offer.message.metadata == {"amount": 40000, "currency": "EUR"}
    assert offer.message.message_type == "offer"


async def test_text_is_stored_verbatim(world: World) -> None:
    conversation = await world.open()
    odd = [
        "'; DROP TABLE messages; --",
        "<script>alert('x')</script>",
        "emoji 🫠👩‍👩‍👧 and RTL \u202eevil\u202c",
        "  leading and trailing spaces  ",
    ]
    for content in odd:
        sent = await world.send(conversation.id, world.john, content)
        assert sent.message.content == content
    stored = [
        r["content"] for r in await world.pool.fetch("SELECT content FROM messages ORDER BY seq")
    ]
    assert stored == odd


LIMITS = Limits(max_content_chars=50, max_metadata_bytes=100)

BAD_MESSAGES: list[tuple[str, dict[str, Any], type[ParleyError]]] = [
    ("unknown type", {"message_type": "video"}, UnknownMessageType),
    ("empty content", {"content": ""}, EmptyContent),
    ("whitespace content", {"content": " \t\n\u3000"}, EmptyContent),
    ("content over the limit", {"content": "x" * 51}, ContentTooLong),
    ("NUL in content", {"content": "a\x00b"}, InvalidText),
    ("lone surrogate", {"content": "a\ud800b"}, InvalidText),
    ("metadata not an object", {"metadata": ["a"]}, InvalidMetadata),
    ("metadata over the limit", {"metadata": {"k": "v" * 200}}, MetadataTooLarge),
    ("NUL in metadata", {"metadata": {"k": "\x00"}}, InvalidMetadata),
    ("NaN in metadata", {"metadata": {"k": float("nan")}}, InvalidMetadata),
    ("image without url", {"message_type": "image", "metadata": {}}, InvalidMetadata),
    (
        "image over http",
        {"message_type": "image", "metadata": {"url": "http://x.example/a.jpg"}},
        InvalidMetadata,
    ),
    (
        "image with javascript url",
        {"message_type": "image", "metadata": {"url": "javascript:alert(1)"}},
        InvalidMetadata,
    ),
    (
        "offer without currency",
        {"message_type": "offer", "metadata": {"amount": 10}},
        InvalidMetadata,
    ),
    (
        "offer of zero",
        {"message_type": "offer", "metadata": {"amount": 0, "currency": "EUR"}},
        InvalidMetadata,
    ),
    (
        "offer of a fraction",
        {"message_type": "offer", "metadata": {"amount": 9.5, "currency": "EUR"}},
        InvalidMetadata,
    ),
    (
        "offer in lowercase currency",
        {"message_type": "offer", "metadata": {"amount": 10, "currency": "eur"}},
        InvalidMetadata,
    ),
    ("empty client_msg_id", {"client_msg_id": ""}, InvalidArgument),
    ("long client_msg_id", {"client_msg_id": "x" * 65}, InvalidArgument),
]


@pytest.mark.parametrize(
    ("fields", "error"),
    [pytest.param(fields, error, id=name) for name, fields, error in BAD_MESSAGES],
)
async def test_a_bad_message_is_refused_and_writes_nothing(
    world: World, fields: dict[str, Any], error: type[ParleyError]
) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "before")
    before = await table_snapshot(world.pool)
    message: dict[str, Any] = {
        "conversation_id": conversation.id,
        "sender_id": world.john.id,
        "client_msg_id": client_msg_id(),
        "content": "hello",
        "message_type": "text",
        "metadata": {},
    }
    with pytest.raises(error):
        await store.send_message(world.pool, **(message | fields), limits=LIMITS)
    assert await table_snapshot(world.pool) == before


async def test_outsiders_and_unknown_conversations_look_the_same(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "private")
    before = await table_snapshot(world.pool)
    for conversation_id in (conversation.id, 999_999):
        with pytest.raises(NotFound) as raised:
            await world.send(conversation_id, world.eve, "let me in")
        assert str(raised.value) == f"conversation {conversation_id} not found"
        with pytest.raises(NotFound):
            await store.history(world.pool, conversation_id, world.eve.id)
        with pytest.raises(NotFound):
            await store.mark_read(world.pool, conversation_id, world.eve.id, 1)
        with pytest.raises(NotFound):
            await store.get_conversation(world.pool, conversation_id, world.eve.id)
        with pytest.raises(NotFound):
            await store.delete_for(world.pool, world.eve.id, conversation_id)
        with pytest.raises(NotFound):
            await store.archive(world.pool, world.eve.id, conversation_id)
    assert await table_snapshot(world.pool) == before


async def test_messages_cannot_be_deleted(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john)
    with pytest.raises(asyncpg.RestrictViolationError):
        await world.pool.execute("DELETE FROM messages")


# --- reading ------------------------------------------------------------------------------------


async def test_counters_follow_any_update_of_is_read_not_just_the_stores(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "hidden soon")
    await world.send(conversation.id, world.john, "hidden soon too")
    await store.delete_for(world.pool, world.mary.id, conversation.id)
    await world.send(conversation.id, world.john, "visible")

    await world.pool.execute("UPDATE messages SET is_read = true, read_at = now()")
    row = await conversation_row(world.pool, conversation.id)
    assert row["seller_unread_count"] == 0
    await world.pool.execute("UPDATE messages SET is_read = false, read_at = NULL")
    row = await conversation_row(world.pool, conversation.id)
    assert row["seller_unread_count"] == 1, "the two cleared messages stay out of the count"
    assert await store.recount_counters(world.pool) == []


async def test_reading_moves_only_forward(world: World) -> None:
    conversation = await world.open()
    for _ in range(3):
        await world.send(conversation.id, world.john)
    await store.mark_read(world.pool, conversation.id, world.mary.id, 2)
    before = await table_snapshot(world.pool)

    backwards = await store.mark_read(world.pool, conversation.id, world.mary.id, 1)

    assert (backwards.advanced, backwards.up_to_seq, backwards.unread_count) == (False, 2, 1)
    assert await table_snapshot(world.pool) == before


async def test_reading_past_the_end_stops_at_the_last_message(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john)
    receipt = await store.mark_read(world.pool, conversation.id, world.mary.id, 1000)
    assert receipt.up_to_seq == 1
    # a later message is still unread
    await world.send(conversation.id, world.john)
    assert await store.unread_total(world.pool, world.mary.id) == 1


async def test_reading_a_conversation_clears_only_my_badge(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "hi")
    await world.send(conversation.id, world.mary, "hello")
    await store.mark_read(world.pool, conversation.id, world.mary.id, 2)
    row = await conversation_row(world.pool, conversation.id)
    assert (row["seller_unread_count"], row["buyer_unread_count"]) == (0, 1)
    mine = await world.pool.fetchval("SELECT is_read FROM messages WHERE seq = 2")
    assert mine is False


async def test_negative_seq_is_an_invalid_argument(world: World) -> None:
    conversation = await world.open()
    with pytest.raises(InvalidArgument):
        await store.mark_read(world.pool, conversation.id, world.mary.id, -1)


# --- history, delete, archive, inbox -------------------------------------------------------------


async def test_history_pages_backwards_oldest_first(world: World) -> None:
    conversation = await world.open()
    for n in range(1, 8):
        await world.send(conversation.id, world.john, f"m{n}")
    newest = await store.history(world.pool, conversation.id, world.mary.id, limit=3)
    assert [m.content for m in newest] == ["m5", "m6", "m7"]
    older = await store.history(
        world.pool, conversation.id, world.mary.id, before_seq=newest[0].seq, limit=3
    )
    assert [m.content for m in older] == ["m2", "m3", "m4"]


async def test_deleting_hides_history_and_badge_for_me_only(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "old news")
    await world.send(conversation.id, world.john, "more old news")

    await store.delete_for(world.pool, world.mary.id, conversation.id)

    assert await store.history(world.pool, conversation.id, world.mary.id) == []
    assert len(await store.history(world.pool, conversation.id, world.john.id)) == 2
    assert await store.unread_total(world.pool, world.mary.id) == 0
    assert (await store.inbox(world.pool, world.mary.id)).conversations == []
    assert len((await store.inbox(world.pool, world.john.id)).conversations) == 1
    # kept for disputes, and not marked read: John sees no receipt
    rows = await world.pool.fetch("SELECT is_read FROM messages")
    assert [r["is_read"] for r in rows] == [False, False]
    assert await store.recount_counters(world.pool) == []


async def test_a_new_message_brings_a_deleted_conversation_back(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "old news")
    await store.delete_for(world.pool, world.mary.id, conversation.id)

    await world.send(conversation.id, world.john, "are you there?")

    inbox = await store.inbox(world.pool, world.mary.id)
    assert [c.id for c in inbox.conversations] == [conversation.id]
    assert inbox.conversations[0].unread_count == 1
    history = await store.history(world.pool, conversation.id, world.mary.id)
    assert [m.content for m in history] == ["are you there?"]


async def test_archiving_is_per_side_and_a_new_message_unarchives(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "hi")
    view = await store.archive(world.pool, world.mary.id, conversation.id)
    assert view.archived is True
    assert (await store.inbox(world.pool, world.mary.id)).conversations == []
    assert len((await store.inbox(world.pool, world.john.id)).conversations) == 1
    assert len((await store.inbox(world.pool, world.mary.id, archived=True)).conversations) == 1

    await store.unarchive(world.pool, world.mary.id, conversation.id)
    assert len((await store.inbox(world.pool, world.mary.id)).conversations) == 1

    await store.archive(world.pool, world.mary.id, conversation.id)
    await world.send(conversation.id, world.john, "still there?")
    assert len((await store.inbox(world.pool, world.mary.id)).conversations) == 1


async def test_inbox_lists_both_roles_newest_first_in_pages(world: World) -> None:
    pool = world.pool
    # Mary sells three things and buys two: five conversations, both roles.
    sellers = [await store.upsert_user(pool, 800 + n, f"Seller {n}") for n in range(2)]
    conversation_ids = []
    for n in range(3):
        product, _ = await store.upsert_product(pool, 9000 + n, world.mary.id, f"thing {n}")
        conversation, _ = await store.open_conversation(pool, world.john.id, product.id)
        conversation_ids.append(conversation.id)
    for n, seller in enumerate(sellers):
        product, _ = await store.upsert_product(pool, 9100 + n, seller.id, f"their thing {n}")
        conversation, _ = await store.open_conversation(pool, world.mary.id, product.id)
        conversation_ids.append(conversation.id)
    empty, _ = await store.open_conversation(pool, world.eve.id, 9000)  # no message: not listed
    for conversation_id in reversed(conversation_ids):
        sender = world.john if conversation_id in conversation_ids[:3] else world.mary
        await world.send(conversation_id, sender)

    pages, cursor = [], None
    while True:
        page = await store.inbox(pool, world.mary.id, cursor=cursor, limit=2)
        pages.append([c.id for c in page.conversations])
        cursor = page.next_cursor
        if cursor is None:
            break

    assert pages == [conversation_ids[0:2], conversation_ids[2:4], conversation_ids[4:5]]
    roles = [c.role for c in (await store.inbox(pool, world.mary.id, limit=10)).conversations]
    assert roles == ["seller", "seller", "seller", "buyer", "buyer"]
    assert all(empty.id not in page for page in pages)


async def test_a_forged_cursor_is_an_invalid_argument(world: World) -> None:
    with pytest.raises(InvalidArgument):
        await store.inbox(world.pool, world.mary.id, cursor="not-a-cursor")


@pytest.mark.parametrize("limit", [0, -1, 201])
async def test_page_sizes_are_bounded(world: World, limit: int) -> None:
    with pytest.raises(InvalidArgument):
        await store.inbox(world.pool, world.mary.id, limit=limit)


async def test_unread_total_adds_both_roles(world: World) -> None:
    conversation = await world.open()
    await world.send(conversation.id, world.john, "to mary")
    theirs, _ = await store.upsert_product(world.pool, 9200, world.john.id, "John's bike")
    other, _ = await store.open_conversation(world.pool, world.mary.id, theirs.id)
    await world.send(other.id, world.john, "to mary as buyer")
    assert await store.unread_total(world.pool, world.mary.id) == 2


async def test_messages_after_returns_exactly_what_came_later(world: World) -> None:
    conversation = await world.open()
    for n in range(1, 6):
        await world.send(conversation.id, world.john, f"m{n}")
    later = await store.messages_after(world.pool, conversation.id, world.mary.id, after_seq=3)
    assert [m.seq for m in later] == [4, 5]

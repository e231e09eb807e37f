"""store/conversations.py: get-or-create, the caller's view, the inbox, delete and archive.

One behaviour per test, against a real Postgres."""

from __future__ import annotations

import pytest

from parley import store
from parley.errors import (
    InvalidArgument,
    NotFound,
    OwnProduct,
    ProductUnavailable,
)
from tests.world import (
    World,
)


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

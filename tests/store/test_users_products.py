"""store/users_products.py: the marketplace's users and products, and what a change of status does.

One behaviour per test, against a real Postgres."""

from __future__ import annotations

import pytest

from parley import store
from parley.errors import (
    Forbidden,
    NotFound,
)
from tests.world import (
    World,
    product_row,
)


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

"""Search in one's own conversations, over real sockets: what a user cleared, unsent or
blocked is never found, nor anyone else's; accents and case fold and the last word is a
prefix; highlights are offsets; a found message opens at its place; the inbox filters by
title and name."""

from __future__ import annotations

from typing import Any

from parley import store
from tests.clients import Client, Gateway
from tests.world import World


async def found(client: Client, query: str, **fields: Any) -> list[str]:
    page = await client.ok("message.search", query=query, **fields)
    return [result["message"]["content"] for result in page["results"]]


async def test_accents_case_and_the_last_word_as_a_prefix(gateway: Gateway, world: World) -> None:
    conversation = await world.open()
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        await john.send_message(conversation.id, "Meet at the Café Zentral?")
        await mary.send_message(conversation.id, "My iPhone has a new battery")
        await mary.send_message(conversation.id, "Nothing else to say")
        for client in (john, mary):
            assert await found(client, "cafe") == ["Meet at the Café Zentral?"]
            assert await found(client, "CAFÉ zentral") == ["Meet at the Café Zentral?"]
            assert await found(client, "iph") == ["My iPhone has a new battery"]
        assert await found(john, "iphone zzz") == []
        assert await found(john, "ph") == []  # a prefix of a word, not a substring
        page = await john.ok("message.search", query="new iph")
        [result] = page["results"]
        assert result["conversation_id"] == conversation.id
        content = result["message"]["content"]
        assert [content[a:b] for a, b in result["highlights"]] == ["iPhone", "new"]
        assert page["next"] is None


async def test_a_long_text_is_found_by_its_words_and_a_word_too_long_is_left_out(
    gateway: Gateway, world: World
) -> None:
    """A text of 1,900 bytes or more takes the vector's other path (sql/019): a word that its
    party's prefix would push past a lexeme's 2,047 bytes is not indexed, the rest is."""
    conversation = await world.open()
    too_long = "z" * 2030
    text = f"Serial number follows {too_long} and the receipt " + "ok " * 300
    async with gateway.connect(701) as john:
        await john.send_message(conversation.id, text)
        assert await found(john, "serial receipt") == [text]
        assert await found(john, "z" * 40) == []


async def test_what_the_user_cannot_see_is_never_found(gateway: Gateway, world: World) -> None:
    conversation = await world.open()
    lamp, _ = await store.upsert_product(world.pool, 7011, world.eve.id, "Desk lamp")
    elsewhere, _ = await store.open_conversation(world.pool, world.john.id, lamp.id)
    async with (
        gateway.connect(701) as john,
        gateway.connect(702) as mary,
        gateway.connect(703) as eve,
    ):
        await mary.send_message(conversation.id, "the bicycle is red")
        await john.ok("conversation.delete", conversation_id=conversation.id)
        await mary.send_message(conversation.id, "the bicycle is blue")
        oops = await john.send_message(conversation.id, "bicycle money by wire")
        await john.ok("message.unsend", message_id=oops["id"])
        await eve.send_message(elsewhere.id, "my bicycle is green")

        assert await found(john, "bicycle") == ["my bicycle is green", "the bicycle is blue"]
        assert await found(mary, "bicycle") == ["the bicycle is blue", "the bicycle is red"]
        assert await found(eve, "bicycle") == ["my bicycle is green"]  # nobody else's
        in_one = await found(john, "bicycle", conversation_id=conversation.id)
        assert in_one == ["the bicycle is blue"]
        assert await found(eve, "bicycle", conversation_id=conversation.id) == []

        await john.ok("user.block", user_id=703)  # hides the lamp conversation from John
        assert await found(john, "bicycle") == ["the bicycle is blue"]
        assert await found(eve, "bicycle") == ["my bicycle is green"]  # not hidden from Eve


async def test_pages_and_a_found_message_opens_at_its_place(
    roomy_gateway: Gateway, world: World
) -> None:
    conversation = await world.open()
    gateway = roomy_gateway  # 61 messages in a row: past the default rate limit
    async with gateway.connect(701) as john, gateway.connect(702) as mary:
        sent = [await john.send_message(conversation.id, f"filler {n}") for n in range(30)]
        target = await mary.send_message(conversation.id, "pickup on Saturday works")
        after = [await john.send_message(conversation.id, f"later {n}") for n in range(30)]
        first = await john.ok("message.search", query="filler", limit=20)
        assert len(first["results"]) == 20
        rest = await john.ok("message.search", query="filler", before=first["next"])
        ids = [r["message"]["id"] for r in first["results"] + rest["results"]]
        assert ids == [m["id"] for m in reversed(sent)]
        assert rest["next"] is None

        [hit] = (await john.ok("message.search", query="saturday"))["results"]
        opened = await john.ok(
            "message.history",
            conversation_id=conversation.id,
            around_seq=hit["message"]["seq"],
            limit=10,
        )
        seqs = [m["seq"] for m in opened["messages"]]
        assert seqs == list(range(target["seq"] - 5, target["seq"] + 5))
        assert opened["messages"][5]["id"] == target["id"]
        assert after  # sent after it, so the page has messages on both sides


async def test_bad_queries_are_refused_in_words(gateway: Gateway, world: World) -> None:
    async with gateway.connect(701) as john:
        for query in ("!!!", "a b c d e f g h i j k"):
            refused = await john.error("message.search", query=query)
            assert refused["code"] == "invalid_argument"
        refused = await john.error("message.search", query="x" * 201)
        assert refused["code"] == "invalid_frame"


async def test_the_inbox_filters_by_title_and_by_name(gateway: Gateway, world: World) -> None:
    conversation = await world.open()
    bike, _ = await store.upsert_product(world.pool, 7012, world.eve.id, "Vélo de course")
    other, _ = await store.open_conversation(world.pool, world.john.id, bike.id)
    async with gateway.connect(701) as john:
        await john.send_message(conversation.id, "hello Mary")
        await john.send_message(other.id, "hello Eve")

        async def listed(query: str) -> list[int]:
            page = await john.ok("conversation.list", query=query)
            return [c["id"] for c in page["conversations"]]

        assert await listed("velo") == [other.id]
        assert await listed("IPHONE") == [conversation.id]
        assert await listed("mar") == [conversation.id]  # Mary
        assert await listed("e") == [other.id, conversation.id]
        assert await listed("nothing like it") == []

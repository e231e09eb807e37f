"""The migration runner against fresh databases of its own."""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from parley import store
from parley.store import chain
from parley.store.migrate import MigrationError, discover, migrate, sql_dir
from parley.store.pool import create_pool, drop_database, ensure_database


@pytest.fixture
async def empty_database(postgres_admin_dsn: str) -> AsyncIterator[str]:
    name = f"parley_migrate_{secrets.token_hex(4)}"
    dsn = await ensure_database(postgres_admin_dsn, name)
    try:
        yield dsn
    finally:
        await drop_database(postgres_admin_dsn, name)


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    directory = tmp_path / "sql"
    shutil.copytree(sql_dir(), directory)
    return directory


async def applied_versions(dsn: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
    finally:
        await conn.close()


async def test_migrating_twice_applies_each_file_once(empty_database: str) -> None:
    files = [m.filename for m in discover()]
    assert await migrate(empty_database) == files
    assert await migrate(empty_database) == []
    assert await applied_versions(empty_database) == [m.version for m in discover()]


async def test_concurrent_start_ups_wait_for_each_other(empty_database: str) -> None:
    results = await asyncio.gather(*(migrate(empty_database) for _ in range(4)))
    assert sorted(len(applied) for applied in results) == [0, 0, 0, len(discover())]


async def test_an_edited_applied_file_is_refused(
    empty_database: str, migrations_copy: Path
) -> None:
    await migrate(empty_database, migrations_copy)
    schema = migrations_copy / "001_schema.sql"
    schema.write_text(schema.read_text() + "\n-- a quiet edit\n")
    with pytest.raises(MigrationError, match=r"001_schema\.sql was edited"):
        await migrate(empty_database, migrations_copy)


async def test_a_new_file_is_applied_in_its_own_transaction(
    empty_database: str, migrations_copy: Path
) -> None:
    await migrate(empty_database, migrations_copy)
    (migrations_copy / "900_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n"
    )
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate(empty_database, migrations_copy)
    conn = await asyncpg.connect(empty_database)
    try:
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
    finally:
        await conn.close()
    assert 900 not in await applied_versions(empty_database)

    (migrations_copy / "900_broken.sql").write_text("CREATE TABLE half_done (id int);\n")
    assert await migrate(empty_database, migrations_copy) == ["900_broken.sql"]


@pytest.mark.parametrize("name", ["1_short.sql", "002-dash.sql", "003_Upper.sql"])
def test_misnamed_files_are_refused(migrations_copy: Path, name: str) -> None:
    (migrations_copy / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNN_lower_snake"):
        discover(migrations_copy)


def test_two_files_with_one_version_are_refused(migrations_copy: Path) -> None:
    (migrations_copy / "001_again.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="share version 1"):
        discover(migrations_copy)


async def test_live_state_migration_carries_existing_data_over_exactly(
    empty_database: str, tmp_path: Path
) -> None:
    # A database as the releases before 004 left it: unread counters, and a message that
    # the seller's delete cleared and a later read left unread below her watermark.
    before = tmp_path / "before"
    before.mkdir()
    for path in sorted(sql_dir().glob("00[123]_*.sql")):
        shutil.copy(path, before / path.name)
    await migrate(empty_database, before)
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute(
            """
            INSERT INTO users (id) VALUES (701), (702), (703);
            INSERT INTO products (id, seller_id, status) VALUES (7010, 702, 'active'),
                                                                (7030, 703, 'sold');
            INSERT INTO conversations (product_id, buyer_id, seller_id)
                 VALUES (7010, 701, 702), (7030, 701, 703);
            INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type,
                                  content, client_msg_id)
            SELECT 1, 701, 702, 'text', 'm' || g, 'c' || g FROM generate_series(1, 3) g;
            INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type,
                                  content, client_msg_id)
                 VALUES (2, 703, 701, 'text', 'sold, sorry', 'x1');
            UPDATE conversations SET deleted_by_seller = true, seller_cleared_seq = 2,
                                     seller_unread_count = 1 WHERE id = 1;
            UPDATE messages SET is_read = true, read_at = now() WHERE conversation_id = 1
               AND seq = 3;
            UPDATE conversations SET seller_last_read_seq = 3 WHERE id = 1;
            """
        )
        shutil.copy(sql_dir() / "004_live_state.sql", before / "004_live_state.sql")
        assert await migrate(empty_database, before) == ["004_live_state.sql"]
        badges = {
            r["user_id"]: (r["total"], r["version"])
            for r in await conn.fetch("SELECT * FROM badges")
        }
        assert badges == {701: (1, 1), 702: (0, 1), 703: (0, 1)}
        cleared = await conn.fetchval(
            "SELECT is_read FROM messages WHERE conversation_id = 1 AND seq = 2"
        )
        assert cleared is True, "below the watermark, read like the rest"
    finally:
        await conn.close()
    await migrate(empty_database)  # the migrations after 004, which the recount reads
    pool = await create_pool(empty_database, min_size=1, max_size=2)
    try:
        assert await store.recount_counters(pool) == []
    finally:
        await pool.close()


async def test_the_chain_migrations_chain_existing_messages_and_verify_walks(
    empty_database: str, tmp_path: Path
) -> None:
    # Messages and an edit stored before the chain (015), then 015's backfill and 018's head
    # and move of message links onto their rows: the chain walks, and sends go on from it.
    before = tmp_path / "before"
    before.mkdir()
    for path in discover(sql_dir()):
        if path.version < 15:
            shutil.copy(sql_dir() / path.filename, before / path.filename)
    await migrate(empty_database, before)
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute(
            """
            INSERT INTO users (id) VALUES (701), (702);
            INSERT INTO products (id, seller_id, status) VALUES (7010, 702, 'active');
            INSERT INTO conversations (product_id, buyer_id, seller_id) VALUES (7010, 701, 702);
            INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type,
                                  content, client_msg_id)
            SELECT 1, 701, 702, 'text', 'm' || g, 'c' || g FROM generate_series(1, 3) g;
            INSERT INTO message_versions (message_id, change, content, metadata, changed_by)
            SELECT id, 'edit', content, metadata, 701 FROM messages WHERE seq = 2;
            UPDATE messages SET content = 'm2, edited', edited_at = now() WHERE seq = 2;
            """
        )
        await migrate(empty_database)
        links = await conn.fetch(
            "SELECT chain_n FROM messages WHERE conversation_id = 1 ORDER BY seq"
        )
        assert [r["chain_n"] for r in links] == [1, 2, 3]
        assert await conn.fetchval("SELECT array_agg(kind) FROM chain_links") == ["edit"]
        assert await conn.fetchval("SELECT chain_n FROM conversations WHERE id = 1") == 4
        assert (await chain.verify(conn, 1)).ok
        await conn.execute(
            "INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type,"
            " content, client_msg_id) VALUES (1, 702, 701, 'text', 'after', 'c4')"
        )
        verdict = await chain.verify(conn, 1)
        assert (verdict.ok, verdict.links) == (True, 5)
    finally:
        await conn.close()

"""Apply the numbered plain-SQL files in sql/ in order, once each, one process at a time."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

# pg_advisory_lock key: any constant shared by every Parley process ("parley" in ASCII).
MIGRATION_LOCK_KEY = 0x706172_6C6579

_FILENAME = re.compile(r"^(?P<version>\d{3,})_(?P<name>[a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The migrations on disk and in the database disagree; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    filename: str
    sql: str
    checksum: str


def sql_dir() -> Path:
    """The migrations: inside the package in a wheel, at the repository root in a checkout
    (server/parley/ -> sql/)."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "sql", package.parent.parent / "sql"):
        if candidate.is_dir():
            return candidate
    raise MigrationError(f"no sql/ directory next to {package}")


def discover(directory: Path | None = None) -> list[Migration]:
    """Read every migration file, sorted by version; refuse misnamed files and duplicates."""
    directory = directory or sql_dir()
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILENAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNN_lower_snake.sql")
        version = int(match["version"])
        if version in migrations:
            raise MigrationError(
                f"{path.name} and {migrations[version].filename} share version {version}"
            )
        raw = path.read_bytes()
        migrations[version] = Migration(
            version=version,
            filename=path.name,
            sql=raw.decode(),
            checksum=hashlib.sha256(raw).hexdigest(),
        )
    return [migrations[version] for version in sorted(migrations)]


async def migrate(dsn: str, directory: Path | None = None) -> list[str]:
    """Bring the database at ``dsn`` up to date; return the filenames applied now.

    Takes an advisory lock so concurrent start-ups wait for each other. Each file runs in
    its own transaction together with its bookkeeping row. Raises MigrationError when an
    already-applied file was edited (its checksum changed).
    """
    migrations = discover(directory)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            return await _apply_pending(conn, migrations)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await conn.close()


async def _apply_pending(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    await conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer PRIMARY KEY,
            filename   text NOT NULL,
            checksum   text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    applied = {
        row["version"]: row
        for row in await conn.fetch("SELECT version, filename, checksum FROM schema_migrations")
    }
    for migration in migrations:
        row = applied.get(migration.version)
        if row is not None and row["checksum"] != migration.checksum:
            raise MigrationError(
                f"{migration.filename} was edited after it was applied "
                f"(as {row['filename']}); restore it and put the change in a new, "
                "higher-numbered file"
            )
    unknown = sorted(set(applied) - {m.version for m in migrations})
    if unknown:
        # A newer release migrated this database; older code keeps running during a rollout.
        log.warning("database has migrations this code does not know: %s", unknown)

    done: list[str] = []
    for migration in migrations:
        if migration.version in applied:
            continue
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, filename, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.filename,
                migration.checksum,
            )
        log.info("applied migration %s", migration.filename)
        done.append(migration.filename)
    return done

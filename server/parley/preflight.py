"""Checks made before anything is migrated, seeded or bound: each failure is a ConfigError
whose one line names the setting and what to do, never a traceback."""

from __future__ import annotations

import errno
import socket
from urllib.parse import urlsplit

import asyncpg

from parley.config import ConfigError, Settings
from parley.fanout.broker import broker_from_url
from parley.gateway.auth import TokenVerifier
from parley.logs import masked_url

_DATABASE_SCHEMES = ("postgresql", "postgres")
_CONNECT_TIMEOUT_SECONDS = 5.0
_UNREACHABLE = (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError)


def check_settings(settings: Settings) -> None:
    """What can be judged without a network: URL schemes and the token keys."""
    if settings.database_url:
        check_database_url(settings.database_url)
    if settings.redis_url:
        try:
            broker_from_url(settings.redis_url, settings.redis_prefix)
        except ValueError as error:
            raise ConfigError(f"REDIS_URL: {error}") from None
    TokenVerifier.from_settings(settings)


def check_database_url(url: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme not in _DATABASE_SCHEMES:
        raise ConfigError(
            f"DATABASE_URL must be a postgresql:// URL, got {scheme or 'no'} scheme in "
            f"{masked_url(url)!r}: postgresql://user:password@host:5432/database"
        )


async def check_database(url: str) -> None:
    """Connect once: the server answers, lets us in, and has the database."""
    check_database_url(url)
    shown = masked_url(url)
    try:
        connection = await asyncpg.connect(url, timeout=_CONNECT_TIMEOUT_SECONDS)
    except asyncpg.InvalidCatalogNameError:
        database = urlsplit(url).path.lstrip("/") or "(the user's name)"
        raise ConfigError(
            f"DATABASE_URL: database {database!r} does not exist on the server of {shown}: "
            f"create it (createdb {database}) or name another"
        ) from None
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as e:
        raise ConfigError(
            f"DATABASE_URL: Postgres refused the login of {shown}: {e}; check the user and password"
        ) from None
    except _UNREACHABLE as error:
        reason = str(error) or type(error).__name__
        raise ConfigError(
            f"DATABASE_URL: cannot connect to {shown} ({reason}): start Postgres there, "
            "or correct the host and port"
        ) from None
    await connection.close()


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound as uvicorn binds it, before anything is migrated; a port in
    use is a ConfigError naming it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"PORT {port} on {host} is already in use: stop what listens there, "
                "or set PORT (or --port) to another"
            ) from None
        raise ConfigError(
            f"cannot listen on {host}:{port} ({error.strerror}): check PARLEY_HOST and PORT"
        ) from None
    sock.set_inheritable(True)
    return sock

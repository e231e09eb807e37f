"""Settings that cannot work stop `parley` at once: exit 2, one line naming the setting and
what to do, no traceback, and nothing written anywhere."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from parley.config import Settings
from parley.gateway.auth import TokenVerifier
from parley.store.pool import drop_database, ensure_database, with_database
from tests.conftest import JWT_SECRET
from tests.services import free_port

PARLEY = [sys.executable, "-m", "parley.cli"]


def _public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


RSA_PUBLIC = _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
EC_PUBLIC = _public_pem(ec.generate_private_key(ec.SECP256R1()))


async def run_parley(*argv: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *PARLEY,
        *argv,
        env={k: v for k, v in os.environ.items() if k != "PARLEY_DEMO"} | env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def assert_one_line(code: int, stdout: str, stderr: str, *words: str) -> None:
    assert "Traceback" not in stdout + stderr, stdout + stderr
    assert code == 2, stdout + stderr
    lines = [line for line in (stdout + stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
async def empty_database(postgres_admin_dsn: str) -> AsyncIterator[str]:
    """A database nobody has migrated: whatever appears in it, a command wrote."""
    name = f"parley_empty_{secrets.token_hex(4)}"
    dsn = await ensure_database(postgres_admin_dsn, name)
    try:
        yield dsn
    finally:
        await drop_database(postgres_admin_dsn, name)


async def _tables(dsn: str) -> list[str]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
    finally:
        await connection.close()
    return [row["tablename"] for row in rows]


def _hs256(secret: str = JWT_SECRET) -> dict[str, str]:
    return {"PARLEY_JWT_SECRET": secret}


# name: (the environment, given an empty database's URL; the words its one line must hold)
BAD_SETTINGS: dict[str, tuple[Callable[[str], dict[str, str]], tuple[str, ...]]] = {
    "database on a closed port": (
        lambda dsn: {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x"} | _hs256(),
        ("DATABASE_URL", "cannot connect", "start Postgres"),
    ),
    "database that does not exist": (
        lambda dsn: {"DATABASE_URL": with_database(dsn, "parley_no_such_database")} | _hs256(),
        ("DATABASE_URL", "'parley_no_such_database' does not exist", "createdb"),
    ),
    "a mysql:// URL": (
        lambda dsn: {"DATABASE_URL": "mysql://root:hunter2@127.0.0.1:3306/test"} | _hs256(),
        ("DATABASE_URL must be a postgresql:// URL", "mysql", "***"),
    ),
    "a broker URL of no known scheme": (
        lambda dsn: {"DATABASE_URL": dsn, "REDIS_URL": "amqp://127.0.0.1:5672"} | _hs256(),
        ("REDIS_URL", "redis://"),
    ),
    "RS256 without a key": (
        lambda dsn: {"DATABASE_URL": dsn, "PARLEY_JWT_ALGORITHM": "RS256"},
        ("PARLEY_JWT_PUBLIC_KEY", "RS256", "BEGIN PUBLIC KEY"),
    ),
    "RS256 with a key that is no PEM": (
        lambda dsn: {
            "DATABASE_URL": dsn,
            "PARLEY_JWT_ALGORITHM": "RS256",
            "PARLEY_JWT_PUBLIC_KEY": "notapem",
        },
        ("PARLEY_JWT_PUBLIC_KEY is not an RSA public key",),
    ),
    "ES256 with an RSA key": (
        lambda dsn: {
            "DATABASE_URL": dsn,
            "PARLEY_JWT_ALGORITHM": "ES256",
            "PARLEY_JWT_PUBLIC_KEY": RSA_PUBLIC,
        },
        ("PARLEY_JWT_PUBLIC_KEY is not an EC (P-256) public key",),
    ),
    "a port that is no port": (
        lambda dsn: {"DATABASE_URL": dsn, "PORT_OVERRIDE": "70000"} | _hs256(),
        ("PORT must be a port number", "70000"),
    ),
    "a pool of no connection": (
        lambda dsn: {"DATABASE_URL": dsn, "PARLEY_DB_POOL_MAX": "0"} | _hs256(),
        ("PARLEY_DB_POOL_MAX must be at least 1",),
    ),
    "a webhook URL without a secret to sign with": (
        lambda dsn: {"DATABASE_URL": dsn, "PARLEY_WEBHOOK_URL": "https://m.example/h"} | _hs256(),
        ("PARLEY_WEBHOOK_URL is set: PARLEY_WEBHOOK_SECRET must be too",),
    ),
    "a webhook secret not in the whsec_ form": (
        lambda dsn: {"DATABASE_URL": dsn, "PARLEY_WEBHOOK_SECRET": "hunter2-hunter2"} | _hs256(),
        ("PARLEY_WEBHOOK_SECRET (secret 1) must start with 'whsec_'",),
    ),
    "a notification lease shorter than one attempt": (
        lambda dsn: {"DATABASE_URL": dsn, "PARLEY_NOTIFY_LEASE_SECONDS": "2"} | _hs256(),
        ("PARLEY_NOTIFY_LEASE_SECONDS must be at least 11",),
    ),
    "an HS256 secret of 3 bytes": (
        lambda dsn: {"DATABASE_URL": dsn} | _hs256("abc"),
        ("PARLEY_JWT_SECRET is 3 bytes", "at least 32", "token_urlsafe"),
    ),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
async def test_serve_refuses_settings_that_cannot_work_in_one_line(
    case: str, empty_database: str
) -> None:
    make_env, words = BAD_SETTINGS[case]
    env = make_env(empty_database)
    env["PORT"] = env.pop("PORT_OVERRIDE", str(free_port()))
    assert_one_line(*await run_parley("serve", env=env), *words)
    assert await _tables(empty_database) == []


async def test_a_port_in_use_is_found_before_anything_is_migrated(empty_database: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"DATABASE_URL": empty_database, "PORT": str(port)} | _hs256()
        assert_one_line(*await run_parley("serve", env=env), f"PORT {port}", "already in use")
    assert await _tables(empty_database) == []


@pytest.mark.parametrize(
    "case", ["database on a closed port", "database that does not exist", "a mysql:// URL"]
)
async def test_migrate_refuses_a_database_it_cannot_use_in_one_line(
    case: str, empty_database: str
) -> None:
    make_env, words = BAD_SETTINGS[case]
    assert_one_line(*await run_parley("migrate", env=make_env(empty_database)), *words)


async def test_token_refuses_a_short_secret_in_one_line(tmp_path: Path) -> None:
    env = _hs256("abc") | {"PARLEY_DATA_DIR": str(tmp_path)}
    assert_one_line(*await run_parley("token", "701", env=env), "PARLEY_JWT_SECRET is 3 bytes")


@pytest.mark.parametrize(("algorithm", "key"), [("RS256", RSA_PUBLIC), ("ES256", EC_PUBLIC)])
def test_a_public_key_of_the_algorithms_kind_is_taken(algorithm: str, key: str) -> None:
    settings = Settings(jwt_algorithm=algorithm, jwt_public_key=key)
    assert isinstance(TokenVerifier.from_settings(settings), TokenVerifier)

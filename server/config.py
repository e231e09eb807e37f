"""Settings read once from the environment (12-factor): platform names as-is, the rest PARLEY_*."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """An environment variable holds a value Parley cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one message may carry; enforced by the store before any write."""

    max_content_chars: int = 4000
    max_metadata_bytes: int = 8192


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".parley")
    db_pool_min: int = 2
    db_pool_max: int = 10
    log_level: str = "info"
    limits: Limits = field(default_factory=Limits)

    @property
    def pgdata(self) -> Path:
        """Where the embedded Postgres keeps its files when DATABASE_URL is unset."""
        return self.data_dir / "pgdata"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        default, default_limits = cls(), Limits()
        limits = Limits(
            max_content_chars=reader.int(
                "PARLEY_MAX_CONTENT_CHARS", default_limits.max_content_chars
            ),
            max_metadata_bytes=reader.int(
                "PARLEY_MAX_METADATA_BYTES", default_limits.max_metadata_bytes
            ),
        )
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            host=env.get("PARLEY_HOST", default.host),
            port=reader.int("PORT", default.port),
            data_dir=Path(env.get("PARLEY_DATA_DIR", str(default.data_dir))),
            db_pool_min=reader.int("PARLEY_DB_POOL_MIN", default.db_pool_min),
            db_pool_max=reader.int("PARLEY_DB_POOL_MAX", default.db_pool_max),
            log_level=env.get("PARLEY_LOG_LEVEL", default.log_level).lower(),
            limits=limits,
        )


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def int(self, name: str, default: int) -> int:
        raw = self._env.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if value < 0:
            raise ConfigError(f"{name} must not be negative, got {value}")
        return value

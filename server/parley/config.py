"""Settings read once from the environment (12-factor): platform names as-is, the rest PARLEY_*."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley.safety import DEFAULT_PAYMENT_PHRASES, SafetyRules, region_known


class ConfigError(ValueError):
    """An environment variable holds a value Parley cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what a client may send and hold; each is a PARLEY_* setting."""

    max_frame_bytes: int = 65536
    max_content_chars: int = 4000
    max_metadata_bytes: int = 8192
    messages_per_second: float = 10.0
    message_burst: int = 20
    frames_per_second: float = 50.0
    frame_burst: int = 100
    connections_per_user: int = 10
    send_queue: int = 256
    typing_interval_seconds: float = 2.0
    typing_expiry_seconds: float = 6.0
    hello_timeout_seconds: float = 5.0
    header_timeout_seconds: float = 5.0
    max_body_bytes: int = 65536
    edit_window_seconds: float = 900.0


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "parley:"
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".parley")
    db_pool_min: int = 2
    db_pool_max: int = 10
    log_level: str = "info"
    log_format: str = "json"
    jwt_algorithm: str = "HS256"
    jwt_secret: str | None = None  # HS256; unset: a development secret in data_dir
    jwt_public_key: str | None = None  # RS256 / ES256, PEM
    jwt_jwks_url: str | None = None  # RS256 / ES256: the marketplace's rotating keys
    jwt_jwks_refetch_seconds: float = 60.0  # at most one fetch per this, for unknown kids
    jwt_audience: str | None = None  # when set, tokens must carry it in "aud"
    jwt_issuer: str | None = None  # when set, tokens must carry it in "iss"
    allowed_origins: tuple[str, ...] = ()
    service_token: str | None = None
    workers: int = 1
    drain_seconds: float = 10.0
    send_batch_max: int = 256
    send_batch_in_flight: int = 1
    ping_interval_seconds: float = 20.0
    ping_timeout_seconds: float = 20.0
    # How often each process ends the mutes whose time is up (how late a mute may end).
    mute_sweep_seconds: float = 5.0
    # How long a killed gateway's users stay online (presence claims in Redis expire).
    presence_ttl_seconds: float = 30.0
    # Off-platform contact warnings (parley/safety.py); None: PARLEY_SAFETY=off.
    safety: SafetyRules | None = field(default_factory=SafetyRules)
    safety_report_after: int = 3
    # Offline notifications (docs/notifications.md): the window, the webhook and its retries.
    notify_delay_seconds: float = 60.0
    notify_poll_seconds: float = 1.0
    notify_lease_seconds: float = 30.0
    notify_retention_seconds: float = 7 * 24 * 3600.0
    webhook_url: str | None = None
    webhook_keys: tuple[bytes, ...] = ()
    webhook_max_attempts: int = 8
    webhook_retry_seconds: float = 5.0
    # Demo mode: a seeded marketplace and /demo/token, which hands a token to anyone who asks.
    demo: bool = False
    limits: Limits = field(default_factory=Limits)

    @property
    def pgdata(self) -> Path:
        """Where the embedded Postgres keeps its files when DATABASE_URL is unset."""
        return self.data_dir / "pgdata"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        read = _Reader(env)
        default, limits = cls(), Limits()
        pool_min = read.integer("PARLEY_DB_POOL_MIN", default.db_pool_min)
        pool_max = read.integer("PARLEY_DB_POOL_MAX", default.db_pool_max)
        if pool_max < 1 or pool_min > pool_max:
            raise ConfigError(
                f"PARLEY_DB_POOL_MAX must be at least 1 and at least PARLEY_DB_POOL_MIN, "
                f"got {pool_max} (PARLEY_DB_POOL_MIN {pool_min})"
            )
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            redis_prefix=env.get("PARLEY_REDIS_PREFIX", default.redis_prefix),
            host=env.get("PARLEY_HOST", default.host),
            port=read.port("PORT", default.port),
            data_dir=Path(env.get("PARLEY_DATA_DIR", str(default.data_dir))),
            db_pool_min=pool_min,
            db_pool_max=pool_max,
            log_level=read.choice(
                "PARLEY_LOG_LEVEL", default.log_level, ("debug", "info", "warning", "error")
            ),
            log_format=read.choice("PARLEY_LOG_FORMAT", default.log_format, ("json", "text")),
            jwt_algorithm=read.choice(
                "PARLEY_JWT_ALGORITHM", default.jwt_algorithm, JWT_ALGORITHMS
            ),
            jwt_secret=env.get("PARLEY_JWT_SECRET") or None,
            jwt_public_key=env.get("PARLEY_JWT_PUBLIC_KEY") or None,
            jwt_jwks_url=env.get("PARLEY_JWT_JWKS_URL") or None,
            jwt_jwks_refetch_seconds=read.number(
                "PARLEY_JWT_JWKS_REFETCH_SECONDS", default.jwt_jwks_refetch_seconds
            ),
            jwt_audience=env.get("PARLEY_JWT_AUDIENCE") or None,
            jwt_issuer=env.get("PARLEY_JWT_ISSUER") or None,
            allowed_origins=read.strings("PARLEY_ALLOWED_ORIGINS"),
            service_token=env.get("PARLEY_SERVICE_TOKEN") or None,
            workers=max(1, read.integer("WEB_CONCURRENCY", default.workers)),
            drain_seconds=read.number("PARLEY_DRAIN_SECONDS", default.drain_seconds),
            send_batch_max=max(1, read.integer("PARLEY_SEND_BATCH_MAX", default.send_batch_max)),
            send_batch_in_flight=max(
                1, read.integer("PARLEY_SEND_BATCH_IN_FLIGHT", default.send_batch_in_flight)
            ),
            mute_sweep_seconds=read.number("PARLEY_MUTE_SWEEP_SECONDS", default.mute_sweep_seconds),
            presence_ttl_seconds=max(
                1.0, read.number("PARLEY_PRESENCE_TTL_SECONDS", default.presence_ttl_seconds)
            ),
            ping_interval_seconds=read.number(
                "PARLEY_PING_INTERVAL_SECONDS", default.ping_interval_seconds
            ),
            ping_timeout_seconds=read.number(
                "PARLEY_PING_TIMEOUT_SECONDS", default.ping_timeout_seconds
            ),
            demo=read.flag("PARLEY_DEMO"),
            limits=read.limits(limits),
            **_notification_settings(read, env, default),
            **_safety_settings(read, default),
        )


def _safety_settings(read: _Reader, default: Settings) -> dict[str, Any]:
    if read.choice("PARLEY_SAFETY", "warn", ("off", "warn")) == "off":
        return {"safety": None}
    region = read.text("PARLEY_SAFETY_REGION", "DE").upper()
    if not region_known(region):
        raise ConfigError(f"PARLEY_SAFETY_REGION must be a two-letter country code, got {region!r}")
    phrases = read.strings("PARLEY_SAFETY_PAYMENT_PHRASES") or DEFAULT_PAYMENT_PHRASES
    hosts = tuple(h.lower() for h in read.strings("PARLEY_SAFE_LINK_HOSTS"))
    return {
        "safety": SafetyRules(region=region, safe_hosts=hosts, payment_phrases=phrases),
        "safety_report_after": read.integer(
            "PARLEY_SAFETY_REPORT_AFTER", default.safety_report_after
        ),
    }


# A lease must outlast one webhook attempt (10 s, parley/webhook.py) and its bookkeeping.
MIN_NOTIFY_LEASE_SECONDS = 11.0


def _notification_settings(
    read: _Reader, env: Mapping[str, str], default: Settings
) -> dict[str, Any]:
    url = env.get("PARLEY_WEBHOOK_URL") or None
    keys = parse_webhook_secrets(env.get("PARLEY_WEBHOOK_SECRET", ""))
    if url is not None:
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"PARLEY_WEBHOOK_URL must be an http(s) URL, got {url[:60]!r}")
        if not keys:
            raise ConfigError("PARLEY_WEBHOOK_URL is set: PARLEY_WEBHOOK_SECRET must be too")
    lease = read.number("PARLEY_NOTIFY_LEASE_SECONDS", default.notify_lease_seconds)
    if lease < MIN_NOTIFY_LEASE_SECONDS:
        raise ConfigError(
            f"PARLEY_NOTIFY_LEASE_SECONDS must be at least {MIN_NOTIFY_LEASE_SECONDS:g} (one "
            f"webhook attempt and its bookkeeping), got {lease:g}"
        )
    return {
        "notify_delay_seconds": read.number(
            "PARLEY_NOTIFY_DELAY_SECONDS", default.notify_delay_seconds
        ),
        "notify_poll_seconds": read.number(
            "PARLEY_NOTIFY_POLL_SECONDS", default.notify_poll_seconds
        ),
        "notify_lease_seconds": lease,
        "notify_retention_seconds": read.number(
            "PARLEY_NOTIFY_RETENTION_SECONDS", default.notify_retention_seconds
        ),
        "webhook_url": url,
        "webhook_keys": keys,
        "webhook_max_attempts": max(
            1, read.integer("PARLEY_WEBHOOK_MAX_ATTEMPTS", default.webhook_max_attempts)
        ),
        "webhook_retry_seconds": read.number(
            "PARLEY_WEBHOOK_RETRY_SECONDS", default.webhook_retry_seconds
        ),
    }


WEBHOOK_SECRET_PREFIX = "whsec_"


def parse_webhook_secrets(raw: str) -> tuple[bytes, ...]:
    """The keys of PARLEY_WEBHOOK_SECRET's space-separated `whsec_<base64>` secrets (several
    while one is rotated: Parley signs with each). Raises ConfigError for any other form."""
    keys = []
    for position, secret in enumerate(raw.split(), start=1):
        # Never the secret itself in a message: these lines reach logs.
        where = f"PARLEY_WEBHOOK_SECRET (secret {position})"
        if not secret.startswith(WEBHOOK_SECRET_PREFIX):
            raise ConfigError(f"{where} must start with {WEBHOOK_SECRET_PREFIX!r}")
        try:
            key = base64.b64decode(secret[len(WEBHOOK_SECRET_PREFIX) :], validate=True)
        except binascii.Error:
            raise ConfigError(f"{where} is not base64 after {WEBHOOK_SECRET_PREFIX!r}") from None
        if len(key) < 16:
            raise ConfigError(f"{where}: the key must be at least 16 bytes, got {len(key)}")
        keys.append(key)
    return tuple(keys)


JWT_ALGORITHMS = ("HS256", "RS256", "ES256")


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def integer(self, name: str, default: int) -> int:
        raw = self._env.get(name, "")
        if raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if value < 0:
            raise ConfigError(f"{name} must not be negative, got {value}")
        return value

    def port(self, name: str, default: int) -> int:
        value = self.integer(name, default)
        if value > 65535:
            raise ConfigError(f"{name} must be a port number, 0 to 65535, got {value}")
        return value

    def number(self, name: str, default: float) -> float:
        raw = self._env.get(name, "")
        if raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if not value >= 0:
            raise ConfigError(f"{name} must be a number of at least 0, got {raw!r}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self._env.get(name, "") or default
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def limits(self, default: Limits) -> Limits:
        """Every Limits field from PARLEY_<FIELD NAME>, typed like its default."""
        overrides: dict[str, Any] = {}
        for spec in dataclasses.fields(default):
            value = getattr(default, spec.name)
            name = "PARLEY_" + spec.name.upper()
            overrides[spec.name] = (
                self.number(name, value) if isinstance(value, float) else self.integer(name, value)
            )
        return dataclasses.replace(default, **overrides)

    def flag(self, name: str) -> bool:
        value = self._env.get(name, "").strip().lower()
        if value in ("", "0", "false", "no", "off"):
            return False
        if value in ("1", "true", "yes", "on"):
            return True
        raise ConfigError(f"{name} must be 1 or 0 (true or false), got {value!r}")

    def text(self, name: str, default: str) -> str:
        return self._env.get(name, "").strip() or default

    def strings(self, name: str) -> tuple[str, ...]:
        return tuple(item.strip() for item in self._env.get(name, "").split(",") if item.strip())

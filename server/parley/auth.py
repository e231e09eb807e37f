"""Who is on the other end of a socket: verify the marketplace's JWT; sign development ones."""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from parley.config import ConfigError, Settings
from parley.errors import Unauthorized
from parley.validation import MAX_ID, id_from_text

log = logging.getLogger(__name__)

_DEV_SECRET_FILE = "jwt-secret"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a valid token names, and until when (seconds since the epoch, its ``exp``)."""

    user_id: int
    expires_at: float


class TokenVerifier:
    """Checks signature, ``exp`` and ``sub`` with the one algorithm the config names.

    Tokens with any other algorithm, ``none`` included, are refused: the list of accepted
    algorithms is fixed here and never read from the token.
    """

    def __init__(self, algorithm: str, key: str | bytes) -> None:
        self._algorithm = algorithm
        self._key = key

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        if settings.jwt_algorithm == "HS256":
            return cls("HS256", hs256_secret(settings))
        if not settings.jwt_public_key:
            raise ConfigError(
                f"PARLEY_JWT_ALGORITHM={settings.jwt_algorithm} needs PARLEY_JWT_PUBLIC_KEY (PEM)"
            )
        return cls(settings.jwt_algorithm, settings.jwt_public_key)

    def verify(self, token: object) -> Identity:
        """Return who the token names and until when; raise Unauthorized with the reason
        otherwise."""
        if not isinstance(token, str) or not token:
            raise Unauthorized("hello needs a token")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                options={"require": ["exp", "sub"], "verify_sub": False},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.MissingRequiredClaimError as error:
            raise Unauthorized(f"token has no {error.claim!r} claim") from None
        except jwt.InvalidAlgorithmError:
            raise Unauthorized(f"token is not signed with {self._algorithm}") from None
        except jwt.InvalidTokenError as error:
            raise Unauthorized(f"token rejected: {str(error)[:100]}") from None
        except Exception:
            # Whatever else a forged token makes the JWT library raise, it proves nothing.
            raise Unauthorized("token rejected") from None
        return Identity(_user_id(claims["sub"]), float(claims["exp"]))


def _user_id(subject: object) -> int:
    # RFC 7519 makes sub a string; marketplaces also send numbers. Either way, a user id.
    if isinstance(subject, str):
        user_id = id_from_text(subject)
    elif isinstance(subject, int) and not isinstance(subject, bool) and 0 < subject <= MAX_ID:
        user_id = subject
    else:
        user_id = None
    if user_id is None:
        raise Unauthorized("token sub is not a user id")
    return user_id


def hs256_secret(settings: Settings) -> str:
    """PARLEY_JWT_SECRET, or a development secret created once in the data directory."""
    if settings.jwt_secret:
        return settings.jwt_secret
    path = Path(settings.data_dir) / _DEV_SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(32))
        log.warning("PARLEY_JWT_SECRET is unset: created a development secret in %s", path)
    return path.read_text().strip()


def issue_token(settings: Settings, user_id: int, ttl_seconds: int = 3600) -> str:
    """Sign an HS256 token for ``user_id`` (development and tests; production tokens come
    from the marketplace)."""
    if settings.jwt_algorithm != "HS256":
        raise ConfigError("parley can only sign HS256 tokens; the marketplace signs the others")
    now = int(time.time())
    claims = {"sub": str(user_id), "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, hs256_secret(settings), algorithm="HS256")

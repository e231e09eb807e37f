"""Who is on the other end of a socket: verify the marketplace's JWT; sign development ones."""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from parley.config import ConfigError, Settings
from parley.errors import Unauthorized
from parley.gateway.jwks import JwksKeys
from parley.validation import MAX_ID, id_from_text

log = logging.getLogger(__name__)

_DEV_SECRET_FILE = "jwt-secret"
DEV_SERVICE_TOKEN_FILE = "service-token"
# RFC 7518 3.2: an HS256 key at least as long as the hash, 256 bits.
MIN_HS256_SECRET_BYTES = 32
PublicKey = RSAPublicKey | EllipticCurvePublicKey
_KEY_KINDS: dict[str, tuple[type[RSAPublicKey] | type[EllipticCurvePublicKey], str]] = {
    "RS256": (RSAPublicKey, "an RSA"),
    "ES256": (EllipticCurvePublicKey, "an EC (P-256)"),
}


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a valid token names, and until when (seconds since the epoch, its ``exp``)."""

    user_id: int
    expires_at: float


class TokenVerifier:
    """Checks signature, ``exp`` and ``sub`` with the one algorithm the config names, and
    ``aud`` and ``iss`` when the config names them (RFC 8725 3.9, 3.10).

    Tokens with any other algorithm, ``none`` included, are refused: the list of accepted
    algorithms is fixed here and never read from the token. With a JWKS, the token's ``kid``
    only chooses among the marketplace's keys.
    """

    def __init__(
        self,
        algorithm: str,
        key: str | bytes | PublicKey | None,
        *,
        audience: str | None = None,
        issuer: str | None = None,
        jwks: JwksKeys | None = None,
    ) -> None:
        self._algorithm = algorithm
        self._key = key
        self._audience = audience
        self._issuer = issuer
        self._jwks = jwks
        self._required = ["exp", "sub"] + ["aud"] * bool(audience) + ["iss"] * bool(issuer)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        """The verifier the settings describe; ConfigError naming the setting when they
        cannot work (no key, a key that is not a PEM public key of the algorithm's kind)."""
        audience, issuer = settings.jwt_audience, settings.jwt_issuer
        if settings.jwt_jwks_url:
            if settings.jwt_algorithm == "HS256":
                raise ConfigError(
                    "PARLEY_JWT_JWKS_URL holds public keys: set PARLEY_JWT_ALGORITHM to RS256 "
                    "or ES256, as the marketplace signs"
                )
            if urlsplit(settings.jwt_jwks_url).scheme not in ("https", "http"):
                raise ConfigError(
                    f"PARLEY_JWT_JWKS_URL must be an https:// URL, got {settings.jwt_jwks_url!r}"
                )
            jwks = JwksKeys(
                settings.jwt_jwks_url, refetch_seconds=settings.jwt_jwks_refetch_seconds
            )
            return cls(settings.jwt_algorithm, None, jwks=jwks, audience=audience, issuer=issuer)
        if settings.jwt_algorithm == "HS256":
            return cls("HS256", hs256_secret(settings), audience=audience, issuer=issuer)
        key = public_key(settings)
        return cls(settings.jwt_algorithm, key, audience=audience, issuer=issuer)

    async def verify(self, token: object) -> Identity:
        """Return who the token names and until when; raise Unauthorized with the reason
        otherwise."""
        if not isinstance(token, str) or not token:
            raise Unauthorized("hello needs a token")
        key = self._key
        try:
            if self._jwks is not None:
                key = (await self._jwks.key(jwt.get_unverified_header(token).get("kid"))).key
            assert key is not None  # a JWKS, or the one key
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": self._required, "verify_sub": False},
                leeway=5,
            )
        except Unauthorized:
            raise
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.MissingRequiredClaimError as error:
            raise Unauthorized(f"token has no {error.claim!r} claim") from None
        except jwt.InvalidAlgorithmError:
            raise Unauthorized(f"token is not signed with {self._algorithm}") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("token is meant for another service (aud)") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("token comes from another issuer (iss)") from None
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


def public_key(settings: Settings) -> PublicKey:
    """PARLEY_JWT_PUBLIC_KEY, loaded and checked against PARLEY_JWT_ALGORITHM."""
    algorithm = settings.jwt_algorithm
    kind, described = _KEY_KINDS[algorithm]
    if not settings.jwt_public_key:
        raise ConfigError(
            f"PARLEY_JWT_ALGORITHM={algorithm} needs PARLEY_JWT_PUBLIC_KEY: set it to the "
            f"marketplace's {described} public key, PEM (-----BEGIN PUBLIC KEY-----)"
        )
    try:
        key = load_pem_public_key(settings.jwt_public_key.encode())
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, kind):
        raise ConfigError(
            f"PARLEY_JWT_PUBLIC_KEY is not {described} public key in PEM for {algorithm}: "
            "give the marketplace's public key (-----BEGIN PUBLIC KEY-----), "
            "not a private key, a certificate or a file name"
        )
    return key


def hs256_secret(settings: Settings) -> str:
    """PARLEY_JWT_SECRET, or a development secret created once in the data directory.

    Outside demo mode a secret shorter than 32 bytes is refused (ConfigError): it can be
    guessed offline from any token it signed.
    """
    if settings.jwt_secret:
        size = len(settings.jwt_secret.encode())
        if size < MIN_HS256_SECRET_BYTES and not settings.demo:
            raise ConfigError(
                f"PARLEY_JWT_SECRET is {size} bytes; HS256 needs at least "
                f"{MIN_HS256_SECRET_BYTES}: make one with "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return settings.jwt_secret
    return _development_secret(Path(settings.data_dir) / _DEV_SECRET_FILE, "PARLEY_JWT_SECRET")


def development_service_token(settings: Settings) -> str:
    """Demo mode's token for the internal API when PARLEY_SERVICE_TOKEN is unset: made once
    in the data directory (``.parley/service-token``), so the README's examples can read it."""
    path = Path(settings.data_dir) / DEV_SERVICE_TOKEN_FILE
    return _development_secret(path, "PARLEY_SERVICE_TOKEN")


def _development_secret(path: Path, setting: str) -> str:
    """The secret in ``path``, created once; written aside and linked into place, so several
    workers starting together all read the same, whole secret."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        aside = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(32))
        try:
            os.link(aside, path)
            log.warning("%s is unset: created a development secret in %s", setting, path)
        except FileExistsError:
            pass  # another worker linked its own first: theirs is the one
        finally:
            aside.unlink()
    return path.read_text().strip()


def issue_token(settings: Settings, user_id: int, ttl_seconds: int = 3600) -> str:
    """Sign an HS256 token for ``user_id`` (development and tests; production tokens come
    from the marketplace)."""
    if settings.jwt_algorithm != "HS256":
        raise ConfigError("parley can only sign HS256 tokens; the marketplace signs the others")
    now = int(time.time())
    claims = {"sub": str(user_id), "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, hs256_secret(settings), algorithm="HS256")

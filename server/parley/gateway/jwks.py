"""The marketplace's rotating public keys, from its JWKS URL (PARLEY_JWT_JWKS_URL).

Keys are held by ``kid``. A token naming a ``kid`` not held makes Parley fetch the set again,
at most once per ``refetch_seconds``, so a stream of forged ``kid``s cannot turn into a
stream of requests. Held keys are refreshed in the background once they are older than
``max_age_seconds``, and a JWKS endpoint that is down never stops a token signed with a
key already held. The fetch is PyJWT's PyJWKClient, run in a thread: it blocks.
"""

from __future__ import annotations

import asyncio
import logging
import time

import jwt

from parley.errors import Unauthorized

log = logging.getLogger(__name__)


class JwksKeys:
    def __init__(
        self,
        url: str,
        *,
        refetch_seconds: float = 60.0,
        max_age_seconds: float = 300.0,
        timeout_seconds: float = 5.0,
    ) -> None:
        self.url = url
        self._client = jwt.PyJWKClient(
            url, cache_jwk_set=False, cache_keys=False, timeout=timeout_seconds
        )
        self._refetch_seconds = refetch_seconds
        self._max_age_seconds = max_age_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._tried_at = -float("inf")  # time.monotonic() of the last fetch begun
        self._fetched_at = -float("inf")  # ... and of the last one that succeeded
        self._fetch: asyncio.Task[None] | None = None
        self.fetches = 0  # attempts, for tests and diagnostics

    async def key(self, kid: object) -> jwt.PyJWK:
        """The key the token's ``kid`` names; Unauthorized when the JWKS has no such key."""
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("token has no 'kid' header, which the JWKS needs to find its key")
        now = time.monotonic()
        held = self._keys.get(kid)
        if held is not None:
            if now - self._fetched_at > self._max_age_seconds:
                self._start_fetch(now)  # a refresh in the background; this token goes on
            return held
        if now - self._tried_at >= self._refetch_seconds:
            self._start_fetch(now)
        if self._fetch is not None and not self._fetch.done():
            await asyncio.shield(self._fetch)
        held = self._keys.get(kid)
        if held is None:
            raise Unauthorized(f"token is signed by key {kid[:40]!r}, which the JWKS does not hold")
        return held

    def _start_fetch(self, now: float) -> None:
        if self._fetch is None or self._fetch.done():
            self._tried_at = now
            self._fetch = asyncio.create_task(self._load(), name="jwks-fetch")

    async def _load(self) -> None:
        self.fetches += 1
        try:
            jwk_set = await asyncio.to_thread(self._client.get_jwk_set, True)
        except Exception as error:  # of any kind: the keys held stay usable
            log.warning(
                "JWKS %s could not be fetched (%s); keeping the %d keys held",
                self.url,
                error,
                len(self._keys),
            )
            return
        self._keys = {key.key_id: key for key in jwk_set.keys if key.key_id}
        self._fetched_at = time.monotonic()

"""Signed webhooks as Standard Webhooks 1.0 has them: the signature, and one bounded attempt.

The receiver checks `webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, one
entry per secret, space-separated) with any Standard Webhooks library, and rejects an old
`webhook-timestamp` to stop replays. docs/notifications.md shows a receiver.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from typing import Final

import httpx

from parley import __version__
from parley.usecases.notifications import Outcome

ATTEMPT_SECONDS: Final = 10.0  # the whole attempt: connect, send, status and what is read
REPLY_BYTES_READ: Final = 64 * 1024  # of any reply; the rest is not read
_USER_AGENT: Final = f"Parley-Webhooks/{__version__}"


def sign(keys: tuple[bytes, ...], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: `v1,<signature>` for each key, space-separated."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for key in keys
    )


async def post(
    client: httpx.AsyncClient,
    url: str,
    keys: tuple[bytes, ...],
    webhook_id: str,
    body: bytes,
) -> Outcome:
    """POST ``body`` once, signed now; never follows a redirect (a 3xx is not delivered)."""
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": _USER_AGENT,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(keys, webhook_id, timestamp, body),
    }
    try:
        async with asyncio.timeout(ATTEMPT_SECONDS):
            request = client.build_request("POST", url, content=body, headers=headers)
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= REPLY_BYTES_READ:
                        break
            finally:
                await response.aclose()
    except TimeoutError:
        return Outcome(False, None, f"no answer within {ATTEMPT_SECONDS:g} s")
    except httpx.HTTPError as error:
        return Outcome(False, None, f"{type(error).__name__}: {error}"[:500])
    if 200 <= response.status_code < 300:
        return Outcome(True, response.status_code, None)
    return Outcome(False, response.status_code, f"HTTP {response.status_code}")

"""A marketplace's webhook endpoint for the tests: a real HTTP server that verifies every
delivery with the Standard Webhooks reference library, answers as scripted, and records."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.servers import serve

# Two secrets, as while one is rotated: Parley signs with both, and each verifies alone.
SECRETS = (
    "whsec_" + base64.b64encode(b"parley-tests-webhook-key-one-000").decode(),
    "whsec_" + base64.b64encode(b"parley-tests-webhook-key-two-000").decode(),
)


@dataclass
class Delivery:
    webhook_id: str
    timestamp: int
    payload: dict[str, Any]
    answered: int
    arrived_at: float  # time.monotonic()


@dataclass
class Receiver:
    """Answers each POST with the next of ``script`` (then 200), after checking it; a 0 in
    the script holds that request until ``release`` is set, then answers 200."""

    script: list[int] = field(default_factory=list)
    attempts: list[Delivery] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    held: int = 0  # requests held now or before (a 0 in the script)
    url: str = ""
    release: asyncio.Event = field(default_factory=asyncio.Event)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def delivered(self) -> list[Delivery]:
        """The attempts answered with a 2xx: what the marketplace acted on."""
        return [a for a in self.attempts if 200 <= a.answered < 300]

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        try:
            payloads = [Webhook(secret).verify(body, headers) for secret in SECRETS]
        except Exception as error:  # any failure to verify is the finding
            self.rejected.append(f"{type(error).__name__}: {error}")
            return Response(status_code=400)
        status = self.script.pop(0) if self.script else 200
        if status == 0:
            self.held += 1
            async with self._arrived:
                self._arrived.notify_all()
            await self.release.wait()
            status = 200
        delivery = Delivery(
            headers["webhook-id"],
            int(headers["webhook-timestamp"]),
            payloads[0],
            status,
            time.monotonic(),
        )
        async with self._arrived:
            self.attempts.append(delivery)
            self._arrived.notify_all()
        return Response(json.dumps({"ok": status < 300}), status_code=status)

    async def until_delivered(self, count: int, within: float = 15.0) -> list[Delivery]:
        """Wait until ``count`` deliveries were answered with a 2xx."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.delivered) >= count)
        return self.delivered

    async def until_held(self, count: int, within: float = 15.0) -> None:
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: self.held >= count)

    async def until_attempts(self, count: int, within: float = 15.0) -> list[Delivery]:
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.attempts) >= count)
        return self.attempts


@contextlib.asynccontextmanager
async def webhook_receiver(port: int = 0) -> AsyncIterator[Receiver]:
    """A running receiver (on ``port``, or a free one); its url is set."""
    receiver = Receiver()
    app = Starlette(routes=[Route("/hooks/parley", receiver.receive, methods=["POST"])])
    async with serve(app, port=port) as running:
        receiver.url = f"{running.http_url}/hooks/parley"
        yield receiver

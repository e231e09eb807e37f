"""Health endpoints through a real uvicorn."""

from __future__ import annotations

import httpx

from server.app import create_app
from server.config import Settings
from tests.servers import serve


async def test_health_and_readiness_answer(database_url: str) -> None:
    app = create_app(Settings(database_url=database_url))
    async with serve(app) as server, httpx.AsyncClient(base_url=server.http_url) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "database": "ok"})

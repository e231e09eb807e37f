"""Plain HTTP routes: liveness and readiness for load balancers and platforms."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

READY_TIMEOUT_SECONDS = 2.0


async def healthz(request: Request) -> Response:
    """The process is up and serving HTTP; says nothing about its dependencies."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready for traffic: the database answers a query within a short timeout."""
    pool = request.app.state.services.pool
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await pool.fetchval("SELECT 1")
    except Exception as error:  # any failure at all means "not ready"
        return JSONResponse(
            {"status": "unavailable", "database": type(error).__name__}, status_code=503
        )
    return JSONResponse({"status": "ready", "database": "ok"})


def routes() -> list[BaseRoute]:
    return [Route("/healthz", healthz), Route("/readyz", readyz)]

"""Health for load balancers and metrics for Prometheus: /healthz, /readyz, /metrics."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from parley import metrics

READY_TIMEOUT_SECONDS = 2.0


async def healthz(request: Request) -> Response:
    """The process is up and serving HTTP; says nothing about its dependencies."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready for traffic: the database answers a query within a short timeout, and the broker
    is connected and subscribed (else sends would commit and reach no other device live)."""
    services = request.app.state.services
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await services.pool.fetchval("SELECT 1")
        database = "ok"
    except Exception as error:  # any failure at all means "not ready"
        database = f"unavailable: {type(error).__name__}"
    broker = services.hub.broker.status()
    ready = database == "ok" and broker == "ok"
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "database": database, "broker": broker},
        status_code=200 if ready else 503,
    )


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus exposition, over every worker of this server."""
    request.app.state.services.update_pool_metrics()
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


def routes() -> list[BaseRoute]:
    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
    ]

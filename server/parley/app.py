"""The Starlette application: start-up (database, migrations) and its routes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from parley import logs, metrics
from parley.config import Settings
from parley.fanout.broker import broker_from_url
from parley.fanout.events import Events
from parley.fanout.hub import Hub
from parley.gateway.auth import development_service_token
from parley.gateway.endpoint import websocket_endpoint
from parley.gateway.httpproto import HEADER_TIMEOUT_KEY, ParleyHttpProtocol
from parley.gateway.shared import Gateway
from parley.gateway.wsproto import ParleyWebSocketProtocol
from parley.presence import backend_for
from parley.presence.service import Presence
from parley.store.migrate import migrate
from parley.store.pool import EmbeddedPostgres, create_pool, ensure_database
from parley.usecases.chat import Chat
from parley.usecases.notifications import Notifier
from parley.web import demo, health, internal, page, webhook

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What the handlers share for the life of the process."""

    settings: Settings
    pool: asyncpg.Pool
    hub: Hub
    events: Events
    chat: Chat

    def update_pool_metrics(self) -> None:
        size, idle = self.pool.get_size(), self.pool.get_idle_size()
        metrics.DB_POOL.labels("in_use").set(size - idle)
        metrics.DB_POOL.labels("idle").set(idle)

    async def report_pool(self) -> None:
        while True:
            self.update_pool_metrics()
            await asyncio.sleep(5)


async def resolve_database_url(settings: Settings, stack: contextlib.AsyncExitStack) -> str:
    """DATABASE_URL when set; otherwise start the embedded Postgres (stopped by ``stack``)."""
    if settings.database_url:
        return settings.database_url
    embedded = EmbeddedPostgres(settings.pgdata)
    admin_dsn = embedded.start()
    stack.callback(embedded.stop)
    return await ensure_database(admin_dsn, "parley")


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it, so it is done with the pool before the pool closes."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    if settings.demo and not settings.service_token:
        # Demo mode's internal API is on, with a development token the README's examples read.
        settings = dataclasses.replace(settings, service_token=development_service_token(settings))
    logs.skip_unused_record_fields()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with contextlib.AsyncExitStack() as stack:
            dsn = await resolve_database_url(settings, stack)
            applied = await migrate(dsn)
            if applied:
                log.info("migrated: %s", ", ".join(applied))
            pool = await create_pool(
                dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max
            )
            stack.push_async_callback(pool.close)
            if settings.demo:
                log.warning(
                    "DEMO MODE: /demo/token gives anyone a token for the demo users; the "
                    "internal API takes Authorization: Bearer %s",
                    settings.service_token,
                )
                try:
                    if await demo.seed(pool):
                        log.info("demo marketplace seeded")
                except (asyncpg.PostgresError, OSError) as error:
                    # A demo that cannot seed still serves what is there.
                    log.error("demo seed failed, starting without it: %r", error)
            broker_url = settings.redis_url or "memory://"
            broker = broker_from_url(broker_url, settings.redis_prefix)
            hub = Hub(broker)
            await hub.start()
            stack.push_async_callback(hub.stop)
            events = Events(broker)
            presence = Presence(
                backend_for(broker_url, settings.redis_prefix, settings.presence_ttl_seconds),
                pool,
                hub,
                events,
                refresh_seconds=settings.presence_ttl_seconds / 3,
            )
            hub.on_sockets = presence.sockets_changed
            hub.on_presence = presence.on_change
            hub.on_presence_gap = presence.on_gap
            stack.push_async_callback(presence.stop)  # before the broker goes
            refresher = asyncio.create_task(presence.run(), name="presence")
            stack.push_async_callback(_stop, refresher)
            chat = Chat(
                pool,
                events,
                settings.limits,
                send_batch_max=settings.send_batch_max,
                send_batch_in_flight=settings.send_batch_in_flight,
                safety=settings.safety,
                safety_report_after=settings.safety_report_after,
            )
            hub.on_note = chat.typing_tracker.on_note
            # At shutdown, before the broker goes: hand over the events of what committed.
            stack.push_async_callback(chat.idle)
            services = app.state.services = Services(settings, pool, hub, events, chat)
            reporter = asyncio.create_task(services.report_pool(), name="pool-metrics")
            stack.callback(reporter.cancel)
            sweeper = asyncio.create_task(
                chat.controls.sweep(settings.mute_sweep_seconds), name="mute-sweep"
            )
            stack.callback(sweeper.cancel)
            deliver = None
            if settings.webhook_url is not None:
                client = httpx.AsyncClient(timeout=webhook.ATTEMPT_SECONDS)
                stack.push_async_callback(client.aclose)
                deliver = functools.partial(
                    webhook.post, client, settings.webhook_url, settings.webhook_keys
                )
            notifier = Notifier(pool, settings, presence.is_online, deliver)
            dispatcher = asyncio.create_task(notifier.run(), name="notifications")
            stack.push_async_callback(_stop, dispatcher)
            gateway = app.state.gateway = Gateway(settings, chat, hub, presence)
            Gateway.running.add(gateway)
            stack.callback(Gateway.running.discard, gateway)
            stack.callback(gateway.token_deadlines.stop)
            # The lifespan state reaches uvicorn's protocols too (httpproto.py).
            yield {HEADER_TIMEOUT_KEY: settings.limits.header_timeout_seconds}

    routes = health.routes() + internal.routes() + page.routes()
    routes += demo.routes() if settings.demo else []
    return ParleyApp(routes=routes, lifespan=lifespan)


class ParleyApp(Starlette):
    """Starlette, with /ws dispatched straight to the gateway: a socket lives for hours and
    needs neither the router nor the exception middleware, which would cost each of the
    10,000s of idle sockets a few KiB of closures and scope copies."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            scope["app"] = self
            await websocket_endpoint(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings Parley depends on, shared by `parley serve` and the tests."""
    return {
        # uvicorn's websockets-sansio protocol with less state per socket (parley/wsproto.py).
        "ws": ParleyWebSocketProtocol,
        # httptools with a deadline for each request's head (parley/httpproto.py).
        "http": ParleyHttpProtocol,
        "ws_max_size": settings.limits.max_frame_bytes,  # uvicorn's default is 16 MiB
        "ws_ping_interval": settings.ping_interval_seconds,
        "ws_ping_timeout": settings.ping_timeout_seconds,
        # Compression costs ~100 KiB of zlib state per socket; chat frames are small.
        "ws_per_message_deflate": False,
        "lifespan": "on",
    }

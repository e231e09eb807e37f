"""The Starlette application: start-up (database, migrations) and its routes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from starlette.applications import Starlette

from server import http
from server.config import Settings
from server.db import EmbeddedPostgres, create_pool, ensure_database
from server.migrate import migrate

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What the handlers share for the life of the process."""

    settings: Settings
    pool: asyncpg.Pool


async def resolve_database_url(settings: Settings, stack: contextlib.AsyncExitStack) -> str:
    """DATABASE_URL when set; otherwise start the embedded Postgres (stopped by ``stack``)."""
    if settings.database_url:
        return settings.database_url
    embedded = EmbeddedPostgres(settings.pgdata)
    admin_dsn = embedded.start()
    stack.callback(embedded.stop)
    return await ensure_database(admin_dsn, "parley")


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            dsn = await resolve_database_url(settings, stack)
            applied = await migrate(dsn)
            if applied:
                log.info("migrated: %s", ", ".join(applied))
            pool = await create_pool(
                dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max
            )
            stack.push_async_callback(pool.close)
            app.state.services = Services(settings=settings, pool=pool)
            yield

    return Starlette(routes=http.routes(), lifespan=lifespan)

"""The `parley` command: serve, migrate, token, demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging.config
import os
import sys

from parley import preflight, store
from parley.app import resolve_database_url
from parley.config import ConfigError, Settings
from parley.gateway.auth import issue_token
from parley.logs import logging_config
from parley.serve import serve
from parley.store.migrate import MigrationError, migrate
from parley.store.pool import create_pool
from parley.web import demo


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    return serve(settings, args.host, args.port, args.workers)


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> list[str]:
        if settings.database_url:
            await preflight.check_database(settings.database_url)
        async with contextlib.AsyncExitStack() as stack:
            return await migrate(await resolve_database_url(settings, stack))

    applied = asyncio.run(run())
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    print(issue_token(settings, args.user_id, args.ttl))
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    """Seed the demo marketplace; print tokens and the terminal client's command for each user."""

    async def seed() -> int | None:
        if settings.database_url:
            await preflight.check_database(settings.database_url)
        async with contextlib.AsyncExitStack() as stack:
            dsn = await resolve_database_url(settings, stack)
            await migrate(dsn)
            pool = await create_pool(dsn, min_size=1, max_size=2)
            stack.push_async_callback(pool.close)
            await demo.seed(pool)
            # Found, not opened: a visitor may have blocked the other side since.
            conversation = await store.find_conversation(pool, *demo.FIRST_CHAT)
            return None if conversation is None else conversation.id

    conversation_id = asyncio.run(seed())
    url = f"ws://{settings.host}:{settings.port}/ws"
    python = os.path.relpath(sys.executable)
    print("The demo marketplace is seeded. Tokens are valid for 24 hours.\n")
    for user in demo.USERS:
        token = issue_token(settings, user.id, 24 * 3600)
        print(f"{user.display_name} ({user.id}), {user.about}:")
        print(f"    {python} -m parley_client {url} --token {token}\n")
    print("Start the server (python3 dev.py run), start two of the clients above, and type:")
    print('    {"type":"conversation.list"}')
    if conversation_id is not None:
        send = {"type": "message.send", "conversation_id": conversation_id}
        send["content"] = "Still there?"
        print("    " + json.dumps(send, separators=(",", ":")))
    return 0


def _openapi(args: argparse.Namespace, settings: Settings) -> int:
    """Print the internal API's OpenAPI document, as docs/openapi.json keeps it."""
    from parley.web.internal import OPERATIONS
    from parley.web.openapi import dumps

    print(dumps(OPERATIONS), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the chat server (migrates first)")
    serve.add_argument("--host", help="interface to bind (default PARLEY_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default PORT or 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        help="worker processes (default WEB_CONCURRENCY or 1; >1 needs REDIS_URL)",
    )
    serve.set_defaults(handler=_serve)

    migrate_cmd = commands.add_parser("migrate", help="apply pending sql/ migrations and exit")
    migrate_cmd.set_defaults(handler=_migrate)

    token = commands.add_parser("token", help="print a signed development token for a user")
    token.add_argument("user_id", type=int)
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    token.set_defaults(handler=_token)

    demo = commands.add_parser("demo", help="seed demo users and products, print tokens")
    demo.set_defaults(handler=_demo)

    openapi = commands.add_parser("openapi", help="print the internal API's OpenAPI document")
    openapi.set_defaults(handler=_openapi)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
        return int(args.handler(args, settings))
    except (ConfigError, MigrationError) as error:
        print(f"parley: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C: the server has shut down gracefully (uvicorn re-raises the signal after
        # it); a traceback here would only alarm whoever pressed it.
        return 130


if __name__ == "__main__":
    sys.exit(main())

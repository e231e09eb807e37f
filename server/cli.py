"""The `parley` command: serve, migrate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

import uvicorn

from server.app import resolve_database_url, uvicorn_options
from server.config import ConfigError, Settings
from server.migrate import MigrationError, migrate


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    uvicorn.run(
        "server.app:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        **uvicorn_options(settings),
    )
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> list[str]:
        async with contextlib.AsyncExitStack() as stack:
            return await migrate(await resolve_database_url(settings, stack))

    applied = asyncio.run(run())
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the chat server (migrates first)")
    serve.add_argument("--host", help="interface to bind (default PARLEY_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default PORT or 8000)")
    serve.set_defaults(handler=_serve)

    migrate_cmd = commands.add_parser("migrate", help="apply pending sql/ migrations and exit")
    migrate_cmd.set_defaults(handler=_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(message)s")
        return int(args.handler(args, settings))
    except (ConfigError, MigrationError) as error:
        print(f"parley: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

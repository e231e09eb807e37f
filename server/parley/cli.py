"""The `parley` command: serve, migrate, token, demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging.config
import os
import sys

from parley import store
from parley.app import resolve_database_url
from parley.auth import issue_token
from parley.config import ConfigError, Settings
from parley.db import create_pool
from parley.logs import logging_config
from parley.migrate import MigrationError, migrate
from parley.serve import serve


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    return serve(settings, args.host, args.port, args.workers)


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> list[str]:
        async with contextlib.AsyncExitStack() as stack:
            return await migrate(await resolve_database_url(settings, stack))

    applied = asyncio.run(run())
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    print(issue_token(settings, args.user_id, args.ttl))
    return 0


DEMO_USERS = {701: "John", 702: "Mary", 703: "Eve"}
DEMO_PRODUCTS = [
    (7010, 702, "iPhone 13, 128 GB, blue", 45000),
    (7020, 701, "Road bike, 56 cm", 32000),
    (7030, 703, "Espresso machine", 12000),
]
DEMO_TTL = 24 * 3600


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    """Seed John, Mary and Eve with a few listings; print tokens and frames to paste."""

    async def seed() -> int:
        async with contextlib.AsyncExitStack() as stack:
            dsn = await resolve_database_url(settings, stack)
            await migrate(dsn)
            pool = await create_pool(dsn, min_size=1, max_size=2)
            stack.push_async_callback(pool.close)
            for user_id, name in DEMO_USERS.items():
                await store.upsert_user(pool, user_id, name)
            for product_id, seller_id, title, price in DEMO_PRODUCTS:
                await store.upsert_product(
                    pool, product_id, seller_id, title, price_cents=price, currency="EUR"
                )
            conversation, _ = await store.open_conversation(pool, 701, 7010)
            return conversation.id

    conversation_id = asyncio.run(seed())
    tokens = {user_id: issue_token(settings, user_id, DEMO_TTL) for user_id in DEMO_USERS}
    url = f"ws://{settings.host}:{settings.port}/ws"
    print("Seeded John (701), Mary (702) and Eve (703); Mary sells an iPhone (product 7010).")
    print(f"John's conversation about it is {conversation_id}. Tokens are valid for 24 hours.\n")
    for user_id, name in DEMO_USERS.items():
        print(f"{name} ({user_id}): {tokens[user_id]}")

    def line(frame: dict[str, object]) -> str:
        return "    " + json.dumps(frame, separators=(",", ":"))

    client = f"{os.path.relpath(sys.executable)} -m websockets {url}"
    send: dict[str, object] = {"type": "message.send", "conversation_id": conversation_id}
    steps: list[tuple[str, str | None, list[dict[str, object]]]] = [
        ("Mary's terminal", client, [{"type": "hello", "id": "1", "token": tokens[702]}]),
        (
            "John's terminal",
            client,
            [
                {"type": "hello", "id": "1", "token": tokens[701]},
                send
                | {"id": "2", "client_msg_id": "demo-1", "content": "Is this still available?"},
            ],
        ),
        (
            "Mary again (she got message.new and unread)",
            None,
            [
                {
                    "type": "conversation.read",
                    "id": "2",
                    "conversation_id": conversation_id,
                    "up_to_seq": 1,
                },
                send | {"id": "3", "client_msg_id": "demo-2", "content": "Yes! Come by tomorrow?"},
            ],
        ),
    ]
    print("\nStart the server (python3 dev.py run), then paste one line at a time:")
    for number, (who, command, frames) in enumerate(steps, 1):
        print(f"\n{number}. {who}" + (f": {command}" if command else ""))
        print("\n".join(line(frame) for frame in frames))
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


if __name__ == "__main__":
    sys.exit(main())

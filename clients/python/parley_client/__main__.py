"""A line-mode terminal client: ``python -m parley_client URL --token T``.

It says hello at once (and again after any reconnect), prints every frame as it comes, one
per line, and sends each line typed as a frame, adding the ``id`` (and a ``client_msg_id``
for ``message.send``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from parley_client.client import ParleyClient, new_client_msg_id
from parley_client.events import Frame, ParleyError, StatusEvent


def _show(prefix: str, frame: object) -> None:
    print(f"{prefix} {json.dumps(frame, ensure_ascii=False)}", flush=True)


async def _send_line(client: ParleyClient, line: str) -> None:
    try:
        frame = json.loads(line)
    except ValueError as error:
        print(f'!  not JSON ({error}); type a frame such as {{"type":"conversation.list"}}')
        return
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        print('!  a frame is a JSON object with a "type"')
        return
    frame.pop("id", None)
    if frame["type"] == "message.send":
        frame.setdefault("client_msg_id", new_client_msg_id())
    try:
        _show("ok", await client.request(frame))
    except ParleyError as error:
        _show("error", {"code": error.code, "message": error.message})


async def run(url: str, token: str) -> int:
    def on_frame(frame: Frame) -> None:
        if frame.get("type") not in ("ok", "error"):  # replies are printed by _send_line
            _show("<-", frame)

    client = ParleyClient(url, token, on_frame=on_frame)
    statuses = client.events()

    async def show_status() -> None:
        async for event in statuses:
            if isinstance(event, StatusEvent):
                print(f"-- {event.state} {event.code or ''} {event.reason}".rstrip(), flush=True)

    watcher = asyncio.create_task(show_status())
    try:
        await client.connect()
    except ParleyError as error:
        print(f"parley_client: {error}", file=sys.stderr)
        return 1
    assert client.user is not None
    print(f"-- hello, {client.user['display_name'] or client.user['id']}: type a frame per line")
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip():
                await _send_line(client, line)
    finally:
        await client.close()
        watcher.cancel()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parley_client", description=__doc__)
    parser.add_argument("url", help="the gateway, e.g. ws://127.0.0.1:8000/ws")
    parser.add_argument("--token", required=True, help="a token for the user (parley token ID)")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args.url, args.token))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

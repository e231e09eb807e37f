"""What the Python SDK costs a receiving app: a burst of messages received by a bare
websockets client that only parses frames, and by ParleyClient (order, de-duplication,
badges, typed events), interleaved on one server so the machine's noise hits both alike.

Also the SDK's view alone (parley_client.view, no I/O): the cost of one message through it.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

from websockets.asyncio.client import connect

from parley_client import MessageEvent, ParleyClient
from parley_client.view import View

Tokens = Callable[[int], str]


async def _burst(url: str, token: str, conversation_id: int, count: int, tag: str) -> None:
    """The sender: pipeline ``count`` messages, then take every ok."""
    async with connect(url, max_size=None) as sender:
        await sender.send(json.dumps({"type": "hello", "id": "h", "token": token}))
        await sender.recv()
        for n in range(count):
            await sender.send(
                json.dumps({"type": "message.send", "id": str(n), "conversation_id":
                            conversation_id, "client_msg_id": f"{tag}-{n}", "content": f"m {n}"})
            )  # fmt: skip
        acked = 0
        while acked < count:
            if json.loads(await sender.recv()).get("type") == "ok":
                acked += 1


async def _raw(
    url: str, token: str, count: int, sending: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    async with connect(url, max_size=None) as receiver:
        await receiver.send(json.dumps({"type": "hello", "id": "h", "token": token}))
        await receiver.recv()
        burst = asyncio.create_task(sending())
        received = 0
        while received < count:
            if json.loads(await receiver.recv()).get("type") == "message.new":
                received += 1
        await burst


async def _sdk(
    url: str, token: str, count: int, sending: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    async with ParleyClient(url, token) as client:
        events = client.events()
        burst = asyncio.create_task(sending())
        received = 0
        async for event in events:
            if isinstance(event, MessageEvent):
                received += 1
                if received == count:
                    break
        await burst


async def receive(
    url: str, tokens: Tokens, buyer: int, seller: int, conversation_id: int, count: int, rounds: int
) -> dict[str, Any]:
    """``rounds`` of each receiver, alternating; msg/s and this process's CPU per message."""
    figures: dict[str, list[tuple[float, float]]] = {"raw": [], "sdk": []}
    for round_number in range(rounds):
        for name, receiver in (("raw", _raw), ("sdk", _sdk)):
            tag = f"{name}-{round_number}"

            async def sending(tag: str = tag) -> None:
                await _burst(url, tokens(buyer), conversation_id, count, tag)

            wall, cpu = time.perf_counter(), time.process_time()
            await receiver(url, tokens(seller), count, sending)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            figures[name].append((count / wall, cpu / count * 1e6))
            print(f"sdk: {name} round {round_number}: {count / wall:,.0f} msg/s, "
                  f"{cpu / count * 1e6:.1f} µs CPU/msg (sender and receiver)")  # fmt: skip
    result: dict[str, Any] = {"messages": count, "rounds": rounds}
    for name, runs in figures.items():
        result[name] = {
            "msg_per_s_median": statistics.median(rate for rate, _ in runs),
            "cpu_us_per_msg_median": statistics.median(cpu for _, cpu in runs),
            "runs": runs,
        }
    result["sdk_over_raw_throughput"] = (
        result["sdk"]["msg_per_s_median"] / result["raw"]["msg_per_s_median"]
    )
    result["sdk_cpu_us_per_msg_extra"] = (
        result["sdk"]["cpu_us_per_msg_median"] - result["raw"]["cpu_us_per_msg_median"]
    )
    result["view_us_per_msg"] = await view_cost()
    return result


async def view_cost(count: int = 100_000) -> float:
    """µs per message through the SDK's view alone (in order, one conversation)."""
    delivered = 0

    def emit(event: object) -> None:
        nonlocal delivered
        delivered += 1

    view = View(emit, lambda conversation_id: None)
    messages = [{"conversation_id": 1, "seq": n, "sender_id": 2} for n in range(1, count + 1)]
    start = time.perf_counter()
    for message in messages:
        view.accept(message)
    cost = (time.perf_counter() - start) / count * 1e6
    assert delivered == count
    return cost

"""`python -m bench export`: a dispute export of one long conversation, streamed from a `parley
serve` process, and what it costs that process in memory.

The conversation gets ``--messages`` messages (one statement; the triggers write the chain as
they would one by one), a hundredth of them edited. The server's resident memory is sampled
every 20 ms while the export streams; the figure that matters is its peak above what the
process held before the request. A second, ten times shorter conversation shows whether that
peak grows with the length (it should not: cursors, written out as they come). Verify runs
over the long one too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
import psutil

from bench.pieces import BENCH_SECRET, DATABASE
from bench.world import fresh_database, seed
from parley.store.pool import create_pool
from tests.services import GatewayProcess

TOKEN = "bench-export-token"
_FILL = """
    INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type, content,
                          client_msg_id)
    SELECT $1, CASE WHEN g % 2 = 0 THEN c.buyer_id ELSE c.seller_id END,
           CASE WHEN g % 2 = 0 THEN c.seller_id ELSE c.buyer_id END, 'text',
           'message ' || g || ': is the phone still available, and would you take 400?',
           'export-' || $1::bigint || '-' || g
      FROM generate_series($2::int, $3::int) g, conversations c WHERE c.id = $1
"""
# Rows per statement: one statement's updates of the one conversation row chain its versions,
# and each update walks the chain, so a single statement of 100,000 takes hours.
_CHUNK = 500
_EDIT_SOME = """
    WITH picked AS (SELECT id, sender_id FROM messages
                     WHERE conversation_id = $1 AND seq % 100 = 0),
         kept AS (INSERT INTO message_versions (message_id, change, content, metadata,
                                                changed_by)
                  SELECT m.id, 'edit', m.content, m.metadata, p.sender_id
                    FROM messages m JOIN picked p ON p.id = m.id)
    UPDATE messages m SET content = m.content || ' (edited)', edited_at = now()
      FROM picked p WHERE p.id = m.id
"""


async def export(admin_dsn: str, messages: int) -> dict[str, Any]:
    dsn = await fresh_database(admin_dsn, DATABASE)
    pairs = await seed(dsn, pairs=2, conversations=2, earlier=0)  # counted exactly below
    long_one, short_one = pairs[0].conversations[0], pairs[1].conversations[0]
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        started = time.perf_counter()
        for conversation, count in ((long_one, messages), (short_one, messages // 10)):
            for first in range(1, count + 1, _CHUNK):
                await pool.execute(_FILL, conversation, first, min(first + _CHUNK - 1, count))
            await pool.execute(_EDIT_SOME, conversation)
        filled = time.perf_counter() - started
    finally:
        await pool.close()
    env = {"DATABASE_URL": dsn, "PARLEY_JWT_SECRET": BENCH_SECRET, "PARLEY_SERVICE_TOKEN": TOKEN}
    process = GatewayProcess("parley", env)
    await process.start()
    try:
        assert process.process is not None
        server = psutil.Process(process.process.pid)
        async with httpx.AsyncClient(
            base_url=process.http_url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=600
        ) as client:
            await _stream(client, server, short_one)  # warm: pools, caches, code paths
            short = await _stream(client, server, short_one)
            long = await _stream(client, server, long_one)
            started = time.perf_counter()
            verdict = (await client.get(f"/internal/conversations/{long_one}/verify")).json()
            verify_seconds = time.perf_counter() - started
    finally:
        await process.stop()
    result = {
        "messages": messages,
        "fill_seconds": round(filled, 1),
        "short": short,
        "long": long,
        "verify_seconds": round(verify_seconds, 2),
        "verify_ok": verdict["ok"],
        "verify_links": verdict["links"],
    }
    print(
        f"export: {messages} messages, {long['megabytes']} MB in {long['seconds']} s; "
        f"server RSS +{long['peak_rss_growth_mb']} MB at peak "
        f"(+{short['peak_rss_growth_mb']} MB for {short['messages']}); "
        f"verify {verdict['ok']} over {verdict['links']} links in {verify_seconds:.2f} s",
        flush=True,
    )
    return result


async def _stream(
    client: httpx.AsyncClient, server: psutil.Process, conversation_id: int
) -> dict[str, Any]:
    before = server.memory_info().rss
    peak = before
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, server.memory_info().rss)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.02)

    sampler = asyncio.create_task(sample())
    size, count, tail = 0, 0, b""
    started = time.perf_counter()
    async with client.stream("GET", f"/internal/conversations/{conversation_id}/export") as got:
        got.raise_for_status()
        async for chunk in got.aiter_bytes():
            size += len(chunk)
            seen = tail + chunk  # a key cut by the chunk's edge is counted once, whole
            count += seen.count(b'"client_msg_id"')
            tail = seen[-14:]
    seconds = time.perf_counter() - started
    stop.set()
    await sampler
    return {
        "messages": count,
        "megabytes": round(size / 1e6, 1),
        "seconds": round(seconds, 2),
        "rss_before_mb": round(before / 2**20, 1),
        "peak_rss_growth_mb": round((peak - before) / 2**20, 1),
    }

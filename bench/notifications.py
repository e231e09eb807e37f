"""`python -m bench notifications`: how many offline notifications one Parley process delivers
per second to a local receiver, and its CPU per notification.

``--messages`` sellers each get one message (one open window each) before Parley starts;
Parley then runs with PARLEY_NOTIFY_DELAY_SECONDS=0, so every window is due at once, and
the clock runs from the first delivery's arrival to the last one's. The receiver
checks every signature (tests/webhook_receiver.py, in this process)."""

from __future__ import annotations

from typing import Any

import psutil

from bench.pieces import BENCH_SECRET, DATABASE
from bench.world import fresh_database, seed
from parley.store.pool import create_pool
from tests.services import GatewayProcess
from tests.webhook_receiver import SECRETS, webhook_receiver


async def notifications(admin_dsn: str, recipients: int) -> dict[str, Any]:
    dsn = await fresh_database(admin_dsn, DATABASE)
    await seed(dsn, pairs=recipients, conversations=recipients)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        await pool.execute(
            """
            INSERT INTO messages (conversation_id, sender_id, recipient_id, message_type,
                                  content, client_msg_id)
            SELECT id, buyer_id, seller_id, 'text', 'Is this still available?', 'n' || id
              FROM conversations ORDER BY id
            """
        )
        windows = await pool.fetchval("SELECT count(*) FROM badges WHERE unread_since IS NOT NULL")
        async with webhook_receiver() as receiver:
            env = {
                "DATABASE_URL": dsn,
                "PARLEY_JWT_SECRET": BENCH_SECRET,
                "PARLEY_WEBHOOK_URL": receiver.url,
                "PARLEY_WEBHOOK_SECRET": " ".join(SECRETS),
                "PARLEY_NOTIFY_DELAY_SECONDS": "0",
                "PARLEY_NOTIFY_POLL_SECONDS": "0.05",
            }
            process = GatewayProcess("parley", env)
            await process.start()
            try:
                assert process.process is not None
                server = psutil.Process(process.process.pid)
                before = server.cpu_times()
                deliveries = await receiver.until_delivered(windows, within=600)
                after = server.cpu_times()
            finally:
                await process.stop()
        cpu = after.user + after.system - before.user - before.system
        seconds = deliveries[-1].arrived_at - deliveries[0].arrived_at
        delivered = await pool.fetchval(
            "SELECT count(*) FROM notifications WHERE status = 'delivered'"
        )
    finally:
        await pool.close()
    result = {
        "notifications": windows,
        "delivered": delivered,
        "attempts": len(receiver.attempts),
        "rejected_signatures": len(receiver.rejected),
        "seconds": round(seconds, 2),
        "per_second": round(windows / seconds, 1),
        "server_cpu_us_per_notification": round(cpu / windows * 1e6, 1),
    }
    print(
        f"notifications: {windows} delivered in {seconds:.2f} s: "
        f"{result['per_second']}/s, Parley CPU {result['server_cpu_us_per_notification']} "
        f"us each; {len(receiver.rejected)} signatures rejected",
        flush=True,
    )
    return result

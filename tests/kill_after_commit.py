"""`python -m tests.kill_after_commit serve …`: `parley`, but the process dies of SIGKILL
between a send batch's commit and the publish of its events, on the Nth batch
(PARLEY_TEST_KILL_AT_BATCH), after a pause in which an ok already on its way would reach its
client. The fault hook of tests/test_ack_after_publish.py; never used outside the tests."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from parley import cli
from parley.usecases.chat import Chat

PAUSE_SECONDS = 0.3


def install(at_batch: int) -> None:
    committed = Chat._sends_committed
    batches = 0

    async def dying(self: Chat, batch: Any, results: Any) -> None:
        nonlocal batches
        batches += 1
        if batches == at_batch:
            await asyncio.sleep(PAUSE_SECONDS)
            os.kill(os.getpid(), signal.SIGKILL)
        await committed(self, batch, results)

    setattr(Chat, "_sends_committed", dying)  # noqa: B010 (a test's patch, said plainly)


if __name__ == "__main__":
    install(int(os.environ["PARLEY_TEST_KILL_AT_BATCH"]))
    sys.exit(cli.main())

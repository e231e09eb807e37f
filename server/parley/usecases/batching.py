"""Group commit: items that arrive while a batch is being written go together in the next
one, one statement and one commit for all of them. It batches and nothing else: what to
write, and what to tell whom once it is committed, are the caller's (chat.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Coalesces concurrent submissions: at most ``max_in_flight`` batches are being written
    at a time, and whatever queues meanwhile (up to ``max_batch``) forms the next. Under light
    load every item goes alone; under heavy load each commit carries many.

    ``write`` stores a batch and returns one result per item, in order. ``committed`` runs
    afterwards with the batch and its results, and only then does each submitter get its
    result: a result means committed *and* told (the events handed to the broker). A process
    that dies in between leaves its submitters unanswered, so their clients retry, never
    answered and untold. The next batch's write does not wait for it.
    """

    def __init__(
        self,
        write: Callable[[list[Item]], Awaitable[list[Result]]],
        committed: Callable[[list[Item], list[Result]], Awaitable[None]],
        max_batch: int = 256,
        max_in_flight: int = 1,
    ) -> None:
        self._write = write
        self._committed = committed
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        """Write ``item`` with whatever else is waiting; its result, or the batch's exception."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._start_batches()
        return await future

    async def idle(self) -> None:
        """Wait until every batch submitted so far is written and its ``committed`` has run."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start_batches(self) -> None:
        while self._queue and self._in_flight < self._max_in_flight:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            self._in_flight += 1
            self._spawn(self._run(batch))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await self._write(items)
        except BaseException as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        finally:
            self._in_flight -= 1
            self._start_batches()
        try:
            await self._after(items, results)
        finally:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _after(self, items: list[Item], results: list[Result]) -> None:
        try:
            await self._committed(items, results)
        except Exception:
            # Committed all the same, and answered as such; whoever misses what follows
            # catches up with sync.
            log.exception("after a committed batch of %d", len(items))

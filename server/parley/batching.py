"""Group commit for message.send: sends that arrive while a batch is being written go
together in the next one, one statement and one commit for all of them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import asyncpg

from parley import metrics, protocol, store
from parley.config import Limits
from parley.errors import ParleyError
from parley.hub import Hub
from parley.models import SentMessage
from parley.store import SendRequest

log = logging.getLogger(__name__)

_Waiting = tuple[SendRequest, str, "asyncio.Future[SentMessage | ParleyError]"]


class SendBatcher:
    """Coalesces concurrent sends: at most ``max_in_flight`` batches are being written at a
    time, and whatever queues meanwhile (up to ``max_batch``) forms the next. Under light
    load every send goes alone; under heavy load each commit carries many messages."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        hub: Hub,
        limits: Limits,
        max_batch: int = 256,
        max_in_flight: int = 1,
    ) -> None:
        self._pool = pool
        self._hub = hub
        self._limits = limits
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: list[_Waiting] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, request: SendRequest, connection_id: str) -> SentMessage:
        """Store the message (with others); raise its ParleyError, or a database error."""
        future: asyncio.Future[SentMessage | ParleyError] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.append((request, connection_id, future))
        self._start_batches()
        result = await future
        if isinstance(result, ParleyError):
            raise result
        return result

    def _start_batches(self) -> None:
        while self._queue and self._in_flight < self._max_in_flight:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            self._in_flight += 1
            self._spawn(self._write(batch))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, batch: list[_Waiting]) -> None:
        try:
            metrics.SEND_BATCH.observe(len(batch))
            results = await store.send_many(
                self._pool, [request for request, _, _ in batch], self._limits
            )
        except BaseException as error:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        finally:
            self._in_flight -= 1
            self._start_batches()
        for (_, _, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        self._spawn(self._publish(batch, results))

    async def _publish(
        self, batch: list[_Waiting], results: list[SentMessage | ParleyError]
    ) -> None:
        """message.new to both sides (not the sending socket), then each recipient's badge."""
        recipients: dict[tuple[int, int], None] = {}
        try:
            for (request, connection_id, _), result in zip(batch, results, strict=True):
                if not isinstance(result, SentMessage):
                    continue
                message = result.message
                assert message.recipient_id is not None
                event = protocol.encode(protocol.MessageNew(message=message))
                await self._hub.publish(
                    [request.sender_id, message.recipient_id], event, skip=connection_id
                )
                if not result.replayed:
                    recipients[(message.recipient_id, message.conversation_id)] = None
            for user_id, conversation_id, count, total in await store.badges(
                self._pool, list(recipients)
            ):
                unread = protocol.Unread(total=total, conversation_id=conversation_id, count=count)
                await self._hub.publish([user_id], protocol.encode(unread))
        except Exception:
            # Committed and answered already; clients that miss these events catch up by sync.
            log.exception("could not publish the events of %d sends", len(batch))

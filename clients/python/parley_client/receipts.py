"""Delivered receipts the client sends by itself: each message from the other side that
reaches the app (live or by sync) is confirmed with ``message.received``, one frame
for all its conversations, a moment later, so that what arrives together is confirmed together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from parley_client.events import Frame

RECEIPT_WAIT_SECONDS = 0.5  # what arrives within this is confirmed by one receipt
RECEIPTS_PER_FRAME = 100  # the server's bound on message.received's conversations


class Receipts:
    def __init__(
        self,
        request: Callable[[Frame], Awaitable[Any]],
        spawn: Callable[[Awaitable[Any]], None],
        *,
        enabled: bool,
    ) -> None:
        self._request = request
        self._spawn = spawn  # a refusal there (the socket went) is nobody's to report
        self.enabled = enabled
        self._to_confirm: dict[int, int] = {}  # conversation -> highest seq to confirm
        self._timer: asyncio.TimerHandle | None = None

    def note(self, message: Frame, user: Frame | None) -> None:
        """``message`` reached the app of ``user``: confirm it unless it is their own."""
        sender = message.get("sender_id")
        if not self.enabled or sender is None or (user is not None and sender == user["id"]):
            return
        conversation_id, seq = message["conversation_id"], message["seq"]
        if seq > self._to_confirm.get(conversation_id, 0):
            self._to_confirm[conversation_id] = seq
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(RECEIPT_WAIT_SECONDS, self._send)

    def _send(self) -> None:
        self._timer = None
        batch, self._to_confirm = list(self._to_confirm.items()), {}
        # One frame for up to RECEIPTS_PER_FRAME conversations: the server writes each in
        # one statement.
        for start in range(0, len(batch), RECEIPTS_PER_FRAME):
            conversations = dict(batch[start : start + RECEIPTS_PER_FRAME])
            frame = {"type": "message.received", "conversations": conversations}
            self._spawn(self._request(frame))

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

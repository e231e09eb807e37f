"""A device's view kept exact (docs/protocol.md, "Keeping a device's view exact"): messages
once each in seq order, badges by version, read receipts forward only, typing that expires.

No I/O here: the client feeds frames in and sends out the events this returns; ``on_gap`` is
how a conversation with a gap asks the client to fetch it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from parley_client.events import (
    DeliveredEvent,
    Event,
    Frame,
    MessageEvent,
    ReadEvent,
    TypingEvent,
    UnreadEvent,
)

GAP_WAIT_SECONDS = 1.0  # how long an out-of-order seq may wait before a sync fetches the gap


@dataclass
class _Sequence:
    delivered: int  # the highest seq handed to the app; everything below it was too
    ahead: dict[int, Frame] = field(default_factory=dict)
    gap_timer: asyncio.TimerHandle | None = None


def _advances(watermarks: dict[tuple[int, int], int], key: tuple[int, int], seq: int) -> bool:
    """Receipts move forward only: whether ``seq`` moves the one kept under ``key`` (then
    kept)."""
    if watermarks.get(key, -1) >= seq:
        return False
    watermarks[key] = seq
    return True


class View:
    def __init__(self, emit: Callable[[Event], None], on_gap: Callable[[int], None]) -> None:
        self._emit = emit
        self._on_gap = on_gap
        self._sequences: dict[int, _Sequence] = {}
        self._badges: dict[int, tuple[int, int]] = {}  # conversation -> (count, version)
        self.total = 0
        self.version = -1
        self._reads: dict[tuple[int, int], int] = {}
        self._deliveries: dict[tuple[int, int], int] = {}  # (conversation, recipient) -> seq
        self._typing: dict[tuple[int, int], asyncio.TimerHandle] = {}

    # --- messages ----------------------------------------------------------------------

    def conversations(self) -> dict[int, int]:
        """Every conversation held, with the last seq delivered: what ``sync`` asks from."""
        return {cid: sequence.delivered for cid, sequence in self._sequences.items()}

    def knows(self, conversation_id: int) -> bool:
        return conversation_id in self._sequences

    def forget(self, conversation_id: int) -> None:
        sequence = self._sequences.pop(conversation_id, None)
        if sequence is not None and sequence.gap_timer is not None:
            sequence.gap_timer.cancel()

    def learn(self, conversation: Frame) -> None:
        """Track a conversation from what the server holds now; older messages are history."""
        self._sequences.setdefault(conversation["id"], _Sequence(conversation["last_seq"]))
        self.apply_count(
            conversation["id"], conversation["unread_count"], conversation["unread_version"]
        )

    def accept(self, message: Frame) -> bool:
        """Hand the message on once, in order; True when its conversation was unknown."""
        conversation_id, seq = message["conversation_id"], message["seq"]
        sequence = self._sequences.get(conversation_id)
        unknown = sequence is None
        if sequence is None:
            sequence = self._sequences[conversation_id] = _Sequence(seq - 1)
        if seq <= sequence.delivered:
            return unknown  # a duplicate
        sequence.ahead[seq] = message
        while (following := sequence.ahead.pop(sequence.delivered + 1, None)) is not None:
            sequence.delivered = following["seq"]
            self._emit(MessageEvent(following))
        if not sequence.ahead:
            if sequence.gap_timer is not None:
                sequence.gap_timer.cancel()
                sequence.gap_timer = None
        elif sequence.gap_timer is None:
            sequence.gap_timer = asyncio.get_running_loop().call_later(
                GAP_WAIT_SECONDS, self._gap_open, conversation_id
            )
        return unknown

    def _gap_open(self, conversation_id: int) -> None:
        sequence = self._sequences.get(conversation_id)
        if sequence is not None:
            sequence.gap_timer = None
            if sequence.ahead:
                self._on_gap(conversation_id)

    # --- badges ------------------------------------------------------------------------

    def apply_total(self, total: Any, version: Any) -> None:
        if isinstance(version, int) and version > self.version:
            self.total, self.version = total, version
            self._emit(UnreadEvent(total, version))

    def apply_count(self, conversation_id: int, count: Any, version: Any) -> None:
        known = self._badges.get(conversation_id)
        if not isinstance(version, int) or (known is not None and version <= known[1]):
            return
        self._badges[conversation_id] = (count, version)
        self._emit(UnreadEvent(self.total, self.version, conversation_id, count))

    def unread_count(self, conversation_id: int) -> int:
        return self._badges.get(conversation_id, (0, 0))[0]

    # --- receipts and typing ------------------------------------------------------------

    def apply_read(self, receipt: Frame) -> None:
        key = (receipt["conversation_id"], receipt["reader_id"])
        if not _advances(self._reads, key, receipt["up_to_seq"]):
            return
        self._emit(ReadEvent(*key, receipt["up_to_seq"], receipt["read_at"]))

    def apply_delivered(self, receipt: Frame) -> None:
        key = (receipt["conversation_id"], receipt["recipient_id"])
        if not _advances(self._deliveries, key, receipt["up_to_seq"]):
            return
        self._emit(DeliveredEvent(*key, receipt["up_to_seq"], receipt["delivered_at"]))

    def apply_typing(self, frame: Frame) -> None:
        key = (frame["conversation_id"], frame["user_id"])
        if frame.get("state") != "start":
            self.stop_typing(*key)
            return
        timer = self._typing.pop(key, None)
        if timer is not None:
            timer.cancel()
        expires_in = frame.get("expires_in_ms", 6000) / 1000
        self._typing[key] = asyncio.get_running_loop().call_later(
            expires_in, self.stop_typing, *key
        )
        if timer is None:
            self._emit(TypingEvent(*key, typing=True))

    def stop_typing(self, conversation_id: int, user_id: int) -> None:
        timer = self._typing.pop((conversation_id, user_id), None)
        if timer is not None:
            timer.cancel()
            self._emit(TypingEvent(conversation_id, user_id, typing=False))

    def clear_typing(self) -> None:
        for key in list(self._typing):
            self.stop_typing(*key)

"""Use cases for changing a message already sent: edit and unsend, by its sender only,
within PARLEY_EDIT_WINDOW_SECONDS. Each commits, then both participants' devices get
``message.updated`` (and the recipient an ``unread`` when an unsent message was unread)."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from parley import store
from parley.config import Limits
from parley.fanout.events import Events
from parley.models import Message
from parley.safety import SafetyRules, kinds_in
from parley.usecases.base import after_commit, use_case
from parley.usecases.typing_tracker import TypingTracker


class MessageChanges:
    def __init__(
        self,
        pool: asyncpg.Pool,
        events: Events,
        limits: Limits,
        safety: SafetyRules | None = None,
        flagged: Callable[[Message], None] | None = None,
        typing: TypingTracker | None = None,
    ) -> None:
        self.pool = pool
        self.events = events
        self.limits = limits
        self.safety = safety  # an edit is scanned as a send is
        self._flagged = flagged  # a message that now carries a warning it did not
        self._typing = typing  # an edit sent from the composer ends its typing, as a send does

    @use_case
    async def edit(
        self, user_id: int, message_id: int, content: str, connection_id: str = ""
    ) -> Message:
        """Replace the text of one's own text message; the old text is kept for disputes."""
        found = kinds_in(self.safety, "text", content)
        message = await store.edit_message(
            self.pool, user_id, message_id, content, self.limits, safety=found
        )
        if self._typing is not None:
            self._typing.stop(user_id, message.conversation_id)
        await after_commit(self._updated(message, connection_id, badge_moved=False))
        if found and self._flagged is not None:
            self._flagged(message)
        return message

    @use_case
    async def unsend(self, user_id: int, message_id: int, connection_id: str = "") -> Message:
        """Take one's own message back: its content is gone for both sides (and kept for
        disputes); unread, it no longer counts."""
        message, was_unread = await store.unsend_message(
            self.pool, user_id, message_id, self.limits
        )
        await after_commit(self._updated(message, connection_id, badge_moved=was_unread))
        return message

    async def _updated(self, message: Message, skip: str, *, badge_moved: bool) -> None:
        await self.events.message_updated(message, skip)
        if badge_moved and message.recipient_id is not None:
            pair = (message.recipient_id, message.conversation_id)
            await self.events.unread(await store.badges(self.pool, [pair]))

"""Use cases for what a user controls about who reaches them: ``user.block`` and
``user.unblock`` (a person), ``conversation.mute`` and ``conversation.unmute`` (one
conversation), the sweep that ends mutes whose time is up, and ``user.settings``.

Each commits (store/controls.py), then tells the user's own devices only: each conversation
it touched, as they now see it (``conversation.updated``), and their badge (``unread``),
whose total leaves silenced conversations out. A blocked user is told nothing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import asyncpg

from parley import store
from parley.fanout.events import Events
from parley.models import Conversation, User, UserSettings
from parley.usecases.base import after_commit, use_case

log = logging.getLogger(__name__)


class Controls:
    def __init__(self, pool: asyncpg.Pool, events: Events) -> None:
        self.pool = pool
        self.events = events

    @use_case
    async def block(self, user_id: int, blocked_id: int) -> list[int]:
        """Block a user; the conversations with them, now hidden from the caller (every
        device of theirs gets each one's view, the blocking socket too)."""
        ids = await store.block(self.pool, user_id, blocked_id)
        await after_commit(self._tell(user_id, ids))
        return ids

    @use_case
    async def unblock(self, user_id: int, blocked_id: int) -> list[int]:
        """Take a block back; the conversations with them, shown again."""
        ids = await store.unblock(self.pool, user_id, blocked_id)
        await after_commit(self._tell(user_id, ids))
        return ids

    @use_case
    async def mute(
        self,
        user_id: int,
        conversation_id: int,
        until: datetime | None,
        connection_id: str = "",
    ) -> Conversation:
        """Mute a conversation (until a time, or until unmuted): it leaves the total."""
        conversation = await store.mute(self.pool, user_id, conversation_id, until)
        await after_commit(self._tell(user_id, [conversation_id], connection_id))
        return conversation

    @use_case
    async def unmute(
        self, user_id: int, conversation_id: int, connection_id: str = ""
    ) -> Conversation:
        conversation = await store.unmute(self.pool, user_id, conversation_id)
        await after_commit(self._tell(user_id, [conversation_id], connection_id))
        return conversation

    @use_case
    async def blocked(self, user_id: int) -> list[User]:
        """The people the user blocked, most recent first (the newest 500)."""
        return await store.blocked_users(self.pool, user_id)

    @use_case
    async def settings(
        self, user_id: int, show_presence: bool | None, connection_id: str = ""
    ) -> tuple[UserSettings, bool]:
        """Change the user's settings (a None keeps its value): them after, and whether they
        changed. The user's other devices get them when they did."""
        settings, changed = await store.update_settings(self.pool, user_id, show_presence)
        if changed:
            await after_commit(self.events.settings_changed(user_id, settings, connection_id))
        return settings, changed

    async def end_mutes(self) -> None:
        """End the mutes whose time is up, and tell each user's devices."""
        for user_id, conversation_id in await store.end_mutes(self.pool):
            await after_commit(self._tell(user_id, [conversation_id]))

    async def sweep(self, every: float) -> None:
        """end_mutes every ``every`` seconds, for as long as the process runs."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.end_mutes()
            except Exception:
                log.exception("could not end the mutes whose time is up; trying again")

    async def _tell(self, user_id: int, conversation_ids: list[int], skip: str = "") -> None:
        for conversation_id in conversation_ids:
            view = await store.get_conversation(self.pool, conversation_id, user_id)
            await self.events.conversation_updated(view, skip)
        pairs = [(user_id, conversation_id) for conversation_id in conversation_ids]
        await self.events.unread(await store.badges(self.pool, pairs))

"""Presence the client watches, kept across reconnects: presence subscriptions belong to a
socket, so each new one subscribes again to every watched user. And the user's own settings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from parley_client.events import Event, Frame, PresenceEvent, SettingsEvent

PRESENCE_PER_FRAME = 100  # user ids per presence frame, the server's bound


class Presence:
    def __init__(
        self, request: Callable[[Frame], Awaitable[Any]], emit: Callable[[Event], None]
    ) -> None:
        self._request = request
        self._emit = emit
        self.watched: dict[int, PresenceEvent] = {}  # user -> what was last told
        self.show_presence = True

    async def subscribe(self, user_ids: Iterable[int]) -> list[PresenceEvent]:
        ids = list(dict.fromkeys(user_ids))
        for user_id in ids:
            self.watched.setdefault(user_id, PresenceEvent(user_id, False, None))
        return await self.watch(ids)

    async def unsubscribe(self, user_ids: Iterable[int]) -> None:
        ids = list(user_ids)
        for user_id in ids:
            self.watched.pop(user_id, None)
        for start in range(0, len(ids), PRESENCE_PER_FRAME):
            chunk = ids[start : start + PRESENCE_PER_FRAME]
            await self._request({"type": "presence.unsubscribe", "user_ids": chunk})

    async def watch(self, user_ids: list[int]) -> list[PresenceEvent]:
        """Subscribe this socket to these users; what each is now."""
        answers = []
        for start in range(0, len(user_ids), PRESENCE_PER_FRAME):
            chunk = user_ids[start : start + PRESENCE_PER_FRAME]
            data = await self._request({"type": "presence.subscribe", "user_ids": chunk})
            for entry in data["presence"]:
                answers.append(self.apply(entry))
        return answers

    def apply(self, entry: Frame) -> PresenceEvent:
        """A presence answer or event: told to the app when it changes what it knew."""
        told = PresenceEvent(entry["user_id"], entry["online"], entry["last_seen_at"])
        known = self.watched.get(told.user_id)
        if known is not None:
            self.watched[told.user_id] = told
            if known != told:
                self._emit(told)
        return told

    def apply_settings(self, settings: Frame) -> None:
        show = bool(settings.get("show_presence", True))
        if show != self.show_presence:
            self.show_presence = show
            self._emit(SettingsEvent(show_presence=show))

    async def update_settings(self, *, show_presence: bool | None = None) -> Frame:
        frame: Frame = {"type": "user.settings"}
        if show_presence is not None:
            frame["show_presence"] = show_presence
        settings: Frame = (await self._request(frame))["settings"]
        self.apply_settings(settings)
        return settings

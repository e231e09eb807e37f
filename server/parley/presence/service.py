"""Presence in this process: its claims on the users it holds sockets of, and the presence
subscriptions of its sockets.

Claims follow the hub: the first local socket of a user claims them, the last one releases
them (one reconciling task per user, so the calls never cross). A transition is announced on
the user's presence channel, after last_seen_at is written when it is an offline one. Each
gateway with a socket watching that user takes it from there: it reads who of its watchers
may see the user (store/presence.py, one query per change) and pushes each socket what it
may see, only when that differs from what the socket was last told. A hidden answer is the
same whatever hides it: ``online: false, last_seen_at: null``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterable
from datetime import datetime
from typing import Any, Final

import asyncpg

from parley import protocol, server_events, store
from parley.errors import InvalidArgument, Unavailable
from parley.fanout.events import Events, PresenceChange, decode_presence_change
from parley.fanout.hub import Hub, Socket, presence_channel
from parley.presence.backend import PresenceBackend, State, Transition

log = logging.getLogger(__name__)

MAX_WATCHED: Final = 1000  # users one socket may watch at a time

Shown = tuple[bool, datetime | None]  # (online, last_seen_at), as one viewer may see it
HIDDEN: Final[Shown] = (False, None)
_PENDING: Final = None  # watched, but its first answer is not settled yet


class Presence:
    def __init__(
        self,
        backend: PresenceBackend,
        pool: asyncpg.Pool,
        hub: Hub,
        events: Events,
        refresh_seconds: float,
    ) -> None:
        self.backend = backend
        self._pool = pool
        self._hub = hub
        self._events = events
        self._refresh_seconds = refresh_seconds
        self._claimed: set[int] = set()
        self._reconciling: set[int] = set()
        self._watched: dict[Socket, dict[int, Shown | None]] = {}  # socket -> user -> told
        self._watchers: dict[int, set[Socket]] = {}  # user -> sockets watching them
        self._channels: set[int] = set()  # users whose presence channel is subscribed
        self._channel_lock = asyncio.Lock()
        self._known: dict[int, State] = {}  # newest state heard of each watched user
        self._dirty: set[int] = set()
        self._pushing: set[int] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- claims ------------------------------------------------------------------------------

    def sockets_changed(self, user_id: int) -> None:
        """The hub added or removed a socket of the user: claim or release them."""
        if user_id not in self._reconciling:
            self._reconciling.add(user_id)
            self._spawn(self._reconcile(user_id))

    async def _reconcile(self, user_id: int) -> None:
        try:
            while (want := self._hub.sockets_of(user_id) > 0) != (user_id in self._claimed):
                if want:
                    transition = await self.backend.claim(user_id)
                    self._claimed.add(user_id)
                else:
                    transition = await self.backend.release(user_id)
                    self._claimed.discard(user_id)
                if transition is not None:
                    await self._announce(transition)
        except Exception as error:  # the next refresh tries again
            log.warning("presence of user %d not updated: %r", user_id, error)
        finally:
            self._reconciling.discard(user_id)

    async def _announce(self, transition: Transition) -> None:
        if not transition.online:
            await store.seen_now(self._pool, transition.user_id)
        change = PresenceChange(online=transition.online, version=transition.version)
        await self._events.presence_changed([(transition.user_id, change)])

    async def run(self) -> None:
        """Renew this gateway's claims, take over those of gateways that died, and put right
        any claim a failed call left wrong; every ``refresh_seconds``."""
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                for transition in await self.backend.refresh(sorted(self._claimed)):
                    await self._announce(transition)
                for transition in await self.backend.sweep():
                    await self._announce(transition)
            except Exception as error:
                log.warning("presence refresh failed: %r", error)
            for user_id in self._claimed.symmetric_difference(self._hub.user_ids()):
                self.sockets_changed(user_id)

    async def stop(self) -> None:
        """Release this gateway's claims (what is left expires) and stop the backend."""
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                for user_id in sorted(self._claimed):
                    transition = await self.backend.release(user_id)
                    if transition is not None:
                        await self._announce(transition)
        await self.backend.stop()

    async def is_online(self, user_id: int) -> bool:
        """Whether any gateway holds a socket of the user (raises if the backend is down)."""
        return (await self.backend.states([user_id]))[user_id].online

    # --- subscriptions -----------------------------------------------------------------------

    async def subscribe(self, socket: Socket, user_ids: Iterable[int]) -> list[dict[str, Any]]:
        """Watch these users' presence from ``socket``; each one's state as it may see it."""
        wanted = list(dict.fromkeys(user_ids))
        watched = self._watched.setdefault(socket, {})
        new = [user for user in wanted if user not in watched]
        if len(watched) + len(new) > MAX_WATCHED:
            raise InvalidArgument(f"a socket watches at most {MAX_WATCHED} users' presence")
        for user in new:
            watched[user] = _PENDING
            self._watchers.setdefault(user, set()).add(socket)
        try:
            await self._follow(new)
            for user, state in (await self.backend.states(wanted)).items():
                self._learn(user, state)
            seen = await store.presence_visible(self._pool, [(socket.user_id, u) for u in wanted])
        except Exception as error:
            await self.unsubscribe(socket, new)
            raise Unavailable("presence is unavailable right now") from error
        answer = []
        for user in wanted:
            shown = self._shown(user, seen, socket.user_id)
            if user in watched:
                watched[user] = shown
            answer.append(_presence(user, shown))
        return answer

    async def unsubscribe(self, socket: Socket, user_ids: Iterable[int]) -> None:
        watched = self._watched.get(socket, {})
        gone = [user for user in user_ids if watched.pop(user, False) is not False]
        for user in gone:
            watchers = self._watchers.get(user, set())
            watchers.discard(socket)
            if not watchers:
                self._watchers.pop(user, None)
                self._known.pop(user, None)
        if not watched:
            self._watched.pop(socket, None)
        await self._follow(gone)

    async def forget(self, socket: Socket) -> None:
        """The socket closed."""
        await self.unsubscribe(socket, list(self._watched.get(socket, ())))

    async def _follow(self, users: list[int]) -> None:
        """Subscribe the presence channel of each watched user, unsubscribe the others."""
        async with self._channel_lock:
            for user in users:
                if (user in self._watchers) != (user in self._channels):
                    channel = presence_channel(user)
                    if user in self._watchers:
                        await self._hub.watch(channel)
                        self._channels.add(user)
                    else:
                        self._channels.discard(user)
                        await self._hub.unwatch(channel)

    async def recheck(self, user_ids: list[int]) -> None:
        """Who may see these users changed (a block, a setting, a new conversation): every
        gateway watching them answers its sockets again."""
        try:
            states = await self.backend.states(user_ids)
            await self._events.presence_changed(
                [(user, PresenceChange(s.online, s.version)) for user, s in states.items()]
            )
        except Exception as error:  # what was done stands; watchers learn at the next change
            log.warning("presence of %s not rechecked: %r", list(user_ids), error)

    # --- what the broker brings --------------------------------------------------------------

    def on_change(self, user_id: int, payload: bytes) -> None:
        """A change on a user's presence channel (from the hub's listener)."""
        change = decode_presence_change(payload)
        self._learn(user_id, State(change.online, change.version))
        self._push(user_id)

    def on_gap(self) -> None:
        """Changes may have been lost: read every watched user's state again."""
        self._spawn(self._reread(list(self._watchers)))

    async def _reread(self, users: list[int]) -> None:
        try:
            for user, state in (await self.backend.states(users)).items():
                self._learn(user, state)
        except Exception as error:
            log.warning("presence not read again after a gap: %r", error)
        for user in users:
            self._push(user)

    def _learn(self, user_id: int, state: State) -> None:
        known = self._known.get(user_id)
        if user_id in self._watchers and (known is None or state.version >= known.version):
            self._known[user_id] = state

    def _push(self, user_id: int) -> None:
        self._dirty.add(user_id)
        if user_id not in self._pushing:
            self._pushing.add(user_id)
            self._spawn(self._push_changes(user_id))

    async def _push_changes(self, user_id: int) -> None:
        try:
            while user_id in self._dirty:
                self._dirty.discard(user_id)
                await self._tell_watchers(user_id)
        except Exception as error:
            log.warning("presence of user %d not pushed: %r", user_id, error)
        finally:
            self._pushing.discard(user_id)

    async def _tell_watchers(self, user_id: int) -> None:
        sockets = [s for s in self._watchers.get(user_id, ()) if self._told(s, user_id)]
        if not sockets:
            return
        viewers = {socket.user_id for socket in sockets}
        seen = await store.presence_visible(self._pool, [(viewer, user_id) for viewer in viewers])
        frames: dict[Shown, str] = {}  # each answer encoded once, whatever the watchers
        for socket in sockets:
            watched = self._watched.get(socket, {})
            if watched.get(user_id) is _PENDING:
                continue  # unsubscribed meanwhile, or its answer is still on its way
            shown = self._shown(user_id, seen, socket.user_id)
            if shown != watched[user_id]:
                watched[user_id] = shown
                if shown not in frames:
                    event = server_events.PresenceEvent(user_id, *shown)
                    frames[shown] = protocol.encode(event).decode()
                socket.push(frames[shown])

    def _told(self, socket: Socket, user_id: int) -> bool:
        return self._watched.get(socket, {}).get(user_id) is not _PENDING

    def _shown(
        self, user_id: int, seen: dict[tuple[int, int], datetime | None], viewer: int
    ) -> Shown:
        known = self._known.get(user_id)
        if (viewer, user_id) not in seen or known is None:
            return HIDDEN
        return (True, None) if known.online else (False, seen[(viewer, user_id)])

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _presence(user_id: int, shown: Shown) -> dict[str, Any]:
    online, last_seen_at = shown
    return {"user_id": user_id, "online": online, "last_seen_at": last_seen_at}

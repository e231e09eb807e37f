"""What every use case shares: a database that cannot be reached becomes ``Unavailable``, and
telling the devices after a commit never turns the committed change into an error."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from parley import store
from parley.errors import Unavailable
from parley.store.pool import DATABASE_DOWN

if TYPE_CHECKING:
    from parley.fanout.events import Events
    from parley.store._sql import Database

log = logging.getLogger(__name__)

P = ParamSpec("P")
S = TypeVar("S")
T = TypeVar("T")


def use_case(
    method: Callable[Concatenate[S, P], Awaitable[T]],
) -> Callable[Concatenate[S, P], Awaitable[T]]:
    """A database that cannot be reached becomes Unavailable: retryable, nothing acked."""

    @functools.wraps(method)
    async def call(owner: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(owner, *args, **kwargs)
        except DATABASE_DOWN as error:
            log.warning("database unavailable: %r", error)
            raise Unavailable("the database is unavailable; retry") from error

    return call


async def after_commit(notification: Awaitable[None]) -> None:
    """Run ``notification`` (events of a committed change). The change is committed and will
    be answered as such: failing to tell the devices must not turn it into an error; they
    catch up with sync."""
    try:
        await notification
    except Exception:
        log.exception("could not publish the events of a committed change")


async def tell_views(db: Database, events: Events, conversation_ids: list[int]) -> None:
    """conversation.updated, each participant's own view, of conversations whose shared
    state changed (the listing's status): each side sees the change on every device."""
    for conversation_id in conversation_ids:
        for user_id in await store.participants(db, conversation_id):
            view = await store.get_conversation(db, conversation_id, user_id)
            await events.conversation_updated(view)

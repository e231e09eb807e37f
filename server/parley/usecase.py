"""What every use case shares: a database that cannot be reached becomes ``Unavailable``, and
telling the devices after a commit never turns the committed change into an error."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec, TypeVar

from parley.db import DATABASE_DOWN
from parley.errors import Unavailable

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

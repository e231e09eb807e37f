"""From frame to use case: one small adapter per client frame type, in a typed table.

Each adapter takes the parsed frame, calls the use case in chat.py as the socket's user, and
returns the reply's ``data`` (or NO_REPLY). It holds no state and knows nothing of sockets
beyond the ``Caller`` below; refusals are ParleyErrors, which the session answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol, TypeVar

from parley import protocol
from parley.gateway.ratelimit import TokenBucket
from parley.models import OfferOutcome
from parley.presence.service import Presence
from parley.usecases.chat import Chat


class Caller(Protocol):
    """What an adapter may know of the socket a frame came from."""

    @property
    def user_id(self) -> int: ...

    @property
    def connection_id(self) -> str: ...

    @property
    def chat(self) -> Chat: ...

    @property
    def message_rate(self) -> TokenBucket: ...

    @property
    def presence(self) -> Presence: ...

    def push(self, frame: str) -> None: ...

    def close_soon(self, code: int, reason: str) -> None: ...

    async def renew(self, token: str) -> object: ...


NO_REPLY: Final = object()
Frame = TypeVar("Frame", bound=protocol.ClientFrame)
Adapter = Callable[[Caller, Frame], Awaitable[object]]

# Each client frame type's adapter; _handles checks that an adapter takes its frame type.
ADAPTERS: Final[dict[type[Any], Adapter[Any]]] = {}


def _handles(frame_type: type[Frame]) -> Callable[[Adapter[Frame]], Adapter[Frame]]:
    def register(adapter: Adapter[Frame]) -> Adapter[Frame]:
        ADAPTERS[frame_type] = adapter
        return adapter

    return register


async def dispatch(caller: Caller, frame: protocol.ClientFrame) -> object:
    """Run the frame's use case; the reply's data, NO_REPLY, or a ParleyError raised."""
    return await ADAPTERS[type(frame)](caller, frame)


@_handles(protocol.Hello)
async def _hello_again(caller: Caller, frame: protocol.Hello) -> object:
    # A fresh token for the same user, before the current one runs out (token.expiring).
    return await caller.renew(frame.token)


@_handles(protocol.ConversationOpen)
async def _open(caller: Caller, frame: protocol.ConversationOpen) -> object:
    conversation, created = await caller.chat.open(caller.user_id, frame.product_id)
    if created:  # the two may now see each other's presence
        await caller.presence.recheck([conversation.buyer_id, conversation.seller_id])
    return {"conversation": conversation, "created": created}


@_handles(protocol.ConversationList)
async def _list(caller: Caller, frame: protocol.ConversationList) -> object:
    return await caller.chat.inbox(
        caller.user_id, frame.cursor, frame.limit, frame.archived, frame.query
    )


@_handles(protocol.ConversationGet)
async def _get(caller: Caller, frame: protocol.ConversationGet) -> object:
    return {"conversation": await caller.chat.get(caller.user_id, frame.conversation_id)}


@_handles(protocol.MessageSend)
async def _send(caller: Caller, frame: protocol.MessageSend) -> object:
    caller.message_rate.spend("messages")
    return await caller.chat.send(
        caller.user_id,
        frame.conversation_id,
        client_msg_id=frame.client_msg_id,
        content=frame.content,
        message_type=frame.message_type,
        metadata=frame.metadata,
        connection_id=caller.connection_id,
    )


@_handles(protocol.MessageEdit)
async def _edit(caller: Caller, frame: protocol.MessageEdit) -> object:
    caller.message_rate.spend("messages")
    message = await caller.chat.changes.edit(
        caller.user_id, frame.message_id, frame.content, caller.connection_id
    )
    return {"message": message}


@_handles(protocol.MessageUnsend)
async def _unsend(caller: Caller, frame: protocol.MessageUnsend) -> object:
    caller.message_rate.spend("messages")
    message = await caller.chat.changes.unsend(
        caller.user_id, frame.message_id, caller.connection_id
    )
    return {"message": message}


@_handles(protocol.MessageReport)
async def _report(caller: Caller, frame: protocol.MessageReport) -> object:
    caller.message_rate.spend("messages")
    report, created = await caller.chat.moderation.report(
        caller.user_id, frame.message_id, frame.reason
    )
    return {"report": report, "created": created}


def _answered(outcome: OfferOutcome) -> object:
    # Only this conversation's part: other buyers' declined offers are not the caller's.
    return {"offer": outcome.offer, "messages": outcome.messages}


@_handles(protocol.OfferAccept)
async def _accept(caller: Caller, frame: protocol.OfferAccept) -> object:
    outcome = await caller.chat.offers.answer(
        caller.user_id, frame.message_id, "accept", connection_id=caller.connection_id
    )
    return _answered(outcome)


@_handles(protocol.OfferDecline)
async def _decline(caller: Caller, frame: protocol.OfferDecline) -> object:
    outcome = await caller.chat.offers.answer(
        caller.user_id, frame.message_id, "decline", connection_id=caller.connection_id
    )
    return _answered(outcome)


@_handles(protocol.OfferCounter)
async def _counter(caller: Caller, frame: protocol.OfferCounter) -> object:
    caller.message_rate.spend("messages")
    outcome = await caller.chat.offers.answer(
        caller.user_id, frame.message_id, "counter", frame.amount_cents, caller.connection_id
    )
    return _answered(outcome)


@_handles(protocol.OfferWithdraw)
async def _withdraw(caller: Caller, frame: protocol.OfferWithdraw) -> object:
    outcome = await caller.chat.offers.answer(
        caller.user_id, frame.message_id, "withdraw", connection_id=caller.connection_id
    )
    return _answered(outcome)


@_handles(protocol.UserBlock)
async def _block(caller: Caller, frame: protocol.UserBlock) -> object:
    await caller.chat.controls.block(caller.user_id, frame.user_id)
    await caller.presence.recheck([caller.user_id, frame.user_id])
    return {"user_id": frame.user_id, "blocked": True}


@_handles(protocol.UserUnblock)
async def _unblock(caller: Caller, frame: protocol.UserUnblock) -> object:
    await caller.chat.controls.unblock(caller.user_id, frame.user_id)
    await caller.presence.recheck([caller.user_id, frame.user_id])
    return {"user_id": frame.user_id, "blocked": False}


@_handles(protocol.UserBlocks)
async def _blocks(caller: Caller, frame: protocol.UserBlocks) -> object:
    return {"users": await caller.chat.controls.blocked(caller.user_id)}


@_handles(protocol.PresenceSubscribe)
async def _presence_subscribe(caller: Caller, frame: protocol.PresenceSubscribe) -> object:
    return {"presence": await caller.presence.subscribe(caller, frame.user_ids)}


@_handles(protocol.PresenceUnsubscribe)
async def _presence_unsubscribe(caller: Caller, frame: protocol.PresenceUnsubscribe) -> object:
    await caller.presence.unsubscribe(caller, frame.user_ids)
    return {}


@_handles(protocol.UserSettingsUpdate)
async def _settings(caller: Caller, frame: protocol.UserSettingsUpdate) -> object:
    settings, changed = await caller.chat.controls.settings(
        caller.user_id, frame.show_presence, caller.connection_id
    )
    if changed:
        await caller.presence.recheck([caller.user_id])
    return {"settings": settings}


@_handles(protocol.ConversationMute)
async def _mute(caller: Caller, frame: protocol.ConversationMute) -> object:
    conversation = await caller.chat.controls.mute(
        caller.user_id, frame.conversation_id, frame.until, caller.connection_id
    )
    return {"conversation": conversation}


@_handles(protocol.ConversationUnmute)
async def _unmute(caller: Caller, frame: protocol.ConversationUnmute) -> object:
    conversation = await caller.chat.controls.unmute(
        caller.user_id, frame.conversation_id, caller.connection_id
    )
    return {"conversation": conversation}


@_handles(protocol.MessageHistory)
async def _history(caller: Caller, frame: protocol.MessageHistory) -> object:
    messages = await caller.chat.finder.history(
        caller.user_id, frame.conversation_id, frame.before_seq, frame.limit, frame.around_seq
    )
    return {"messages": messages}


@_handles(protocol.MessageSearch)
async def _search(caller: Caller, frame: protocol.MessageSearch) -> object:
    return await caller.chat.finder.search(
        caller.user_id, frame.query, frame.conversation_id, frame.before, frame.limit
    )


@_handles(protocol.ConversationRead)
async def _read(caller: Caller, frame: protocol.ConversationRead) -> object:
    return await caller.chat.read(
        caller.user_id, frame.conversation_id, frame.up_to_seq, caller.connection_id
    )


@_handles(protocol.MessageReceived)
async def _received(caller: Caller, frame: protocol.MessageReceived) -> object:
    if frame.conversation_id is None or frame.up_to_seq is None:
        moved = await caller.chat.receipts.received_many(caller.user_id, frame.conversations)
        return {"receipts": moved}
    return await caller.chat.receipts.received(
        caller.user_id, frame.conversation_id, frame.up_to_seq
    )


@_handles(protocol.ConversationDelete)
async def _delete(caller: Caller, frame: protocol.ConversationDelete) -> object:
    conversation = await caller.chat.delete(
        caller.user_id, frame.conversation_id, caller.connection_id
    )
    return {"conversation": conversation}


@_handles(protocol.ConversationArchive)
async def _archive(caller: Caller, frame: protocol.ConversationArchive) -> object:
    conversation = await caller.chat.archive(
        caller.user_id, frame.conversation_id, caller.connection_id
    )
    return {"conversation": conversation}


@_handles(protocol.ConversationUnarchive)
async def _unarchive(caller: Caller, frame: protocol.ConversationUnarchive) -> object:
    conversation = await caller.chat.unarchive(
        caller.user_id, frame.conversation_id, caller.connection_id
    )
    return {"conversation": conversation}


@_handles(protocol.Typing)
async def _typing(caller: Caller, frame: protocol.Typing) -> object:
    await caller.chat.typing(
        caller.user_id, frame.conversation_id, frame.state, caller.connection_id
    )
    return {} if frame.id is not None else NO_REPLY


@_handles(protocol.Sync)
async def _sync(caller: Caller, frame: protocol.Sync) -> object:
    return await caller.chat.sync(caller.user_id, frame.conversations)

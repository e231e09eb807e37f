"""Every SQL statement Parley runs, one module per aggregate; each function is one statement
or one transaction, all parameterised. Triggers (sql/) keep the counters.

Each function takes a pool or a connection, so a use case can run several in one
transaction. The names below are the store's whole public surface.
"""

from parley.store._sql import blocked_between
from parley.store.changes import edit_message, message_versions, unsend_message
from parley.store.checks import recount_counters
from parley.store.controls import block, blocked_users, end_mutes, mute, unblock, unmute
from parley.store.conversations import (
    FIND_CONVERSATION_QUERY,
    INBOX_QUERY,
    archive,
    delete_for,
    find_conversation,
    get_conversation,
    inbox,
    open_conversation,
    participants,
    participants_shown,
    unarchive,
)
from parley.store.messages import (
    HISTORY_QUERY,
    SEND_MANY_QUERY,
    SendRequest,
    SentBatch,
    history,
    messages_after,
    send_many,
    send_message,
)
from parley.store.offers import OfferAction, answer_offer, make_offer
from parley.store.presence import presence_visible, seen_now, update_settings
from parley.store.reads import (
    BADGES_QUERY,
    MARK_READ_QUERY,
    UNREAD_TOTAL_QUERY,
    badge_of,
    badges,
    mark_delivered,
    mark_delivered_many,
    mark_read,
    unread_total,
)
from parley.store.reports import (
    report_cases,
    report_flagged_sender,
    report_message,
    resolve_report,
)
from parley.store.users_products import ensure_user, get_product, upsert_product, upsert_user

__all__ = [
    "BADGES_QUERY",
    "FIND_CONVERSATION_QUERY",
    "HISTORY_QUERY",
    "INBOX_QUERY",
    "MARK_READ_QUERY",
    "SEND_MANY_QUERY",
    "UNREAD_TOTAL_QUERY",
    "OfferAction",
    "SendRequest",
    "SentBatch",
    "answer_offer",
    "archive",
    "badge_of",
    "badges",
    "block",
    "blocked_between",
    "blocked_users",
    "delete_for",
    "edit_message",
    "end_mutes",
    "ensure_user",
    "find_conversation",
    "get_conversation",
    "get_product",
    "history",
    "inbox",
    "make_offer",
    "mark_delivered",
    "mark_delivered_many",
    "mark_read",
    "message_versions",
    "messages_after",
    "mute",
    "open_conversation",
    "participants",
    "participants_shown",
    "presence_visible",
    "recount_counters",
    "report_cases",
    "report_flagged_sender",
    "report_message",
    "resolve_report",
    "seen_now",
    "send_many",
    "send_message",
    "unarchive",
    "unblock",
    "unmute",
    "unread_total",
    "unsend_message",
    "update_settings",
    "upsert_product",
    "upsert_user",
]

"""The inbox's event types, and what each event's ``data`` holds.

Every write of the inbox's store logs its events in its own transaction; the realtime
stream shows them to whoever may see them, and module subscribers read them in order.

==========================  ===========  ================================================
type                        record       data
==========================  ===========  ================================================
``message.created``         message      ``channel``, ``direction``, ``contact_id``,
                                         ``at`` (the message's ``created_at``);
                                         outbound: ``author`` (``kind``, ``id``);
                                         an auto-reply's: ``automated: true``
``message.status_changed``  message      ``channel``, ``status`` (now), ``previous``
``message.updated``         message      ``channel``, ``fields``: what changed (``media``:
                                         a provider's media is now kept by the server)
``conversation.updated``    conversation ``channel``; ``changes``: ``{field: [before, after]}`` for
                                         ``status``, ``assignee``, ``unread_count``
                                         (a reopening contact's message: ``status``
                                         alone, ``["resolved", "open"]``);
                                         ``change_id``, ``at``, ``status`` and
                                         ``assignee`` (after): the history's entry,
                                         when the status or assignee moved
``conversation.typing``     conversation ``by``: ``contact`` or ``user``; ``user_id`` (None
                                         for the contact, or a program); ``until``: show
                                         it until then, or until that party's message
``contact.updated``         contact      ``fields``: the fields that changed
                                         (``identities``: one was added or removed)
``contact.created``         contact      ``fields``: the profile fields it was made with
                                         (through the API; a first message's contact
                                         comes with its ``message.created``)
``contact.merged``          contact      ``merged_id``: the contact merged into this
                                         one (the survivor), now a pointer to it
``contact.erased``          contact      nothing: the contact was erased (its record
                                         loads as None; its messages load redacted)
==========================  ===========  ================================================
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from omnichannel_core.module import (
    Author,
    ConversationChange,
    EventTypeSpec,
    NotFound,
    format_timestamp,
    to_json,
)
from omnichannel_core.modules.inbox.permissions import CONTACTS_READ, CONVERSATIONS_READ
from omnichannel_core.modules.inbox.store import InboxStore


class InboxEvent(enum.StrEnum):
    MESSAGE_CREATED = "message.created"
    """A message was stored: inbound from a customer, or outbound, queued to be sent."""
    MESSAGE_STATUS_CHANGED = "message.status_changed"
    """An outbound message moved forward (sending, sent, delivered, read, failed...)."""
    MESSAGE_UPDATED = "message.updated"
    """A stored message changed other than by its status: a provider's media it names was
    fetched into the media store (its item now has an ``id``: ``fields`` ``["media"]``), or
    the provider took an outbound message in a status it had passed (Twilio's ``queued``
    answer to a message ``sending``: ``fields`` ``["provider_message_id"]``)."""
    MESSAGE_ATTEMPT_FAILED = "message.attempt_failed"
    """An attempt to send an outbound message failed in a way that is retried: it stays
    queued, with the error, until the next attempt."""
    CONVERSATION_UPDATED = "conversation.updated"
    """A conversation's status, assignee or unread count was changed through the API, or
    its status by the contact's message that reopened it (resolved, now open)."""
    CONVERSATION_TYPING = "conversation.typing"
    """Someone is typing in a conversation: its contact (a chat widget's visitor) or a user
    answering it. Changes nothing; logged at most every few seconds per party
    (`omnichannel_core.modules.inbox.typing`)."""
    CONTACT_UPDATED = "contact.updated"
    """A contact's profile (name, tags, attributes, emails, phones...) or identities
    changed, or it opted out or in on a channel."""
    CONTACT_CREATED = "contact.created"
    """A contact was made through the API (`ContactBook.create_contact`)."""
    CONTACT_MERGED = "contact.merged"
    """Another contact (``merged_id``) was merged into this one: its identities,
    conversations and messages are this one's now."""
    CONTACT_ERASED = "contact.erased"
    """The contact was erased (`store.erasure`): its profile and identities are gone, its
    messages and conversations redacted. Modules forget what they hold of it."""


class TypingParty(enum.StrEnum):
    """Who is typing, in ``conversation.typing``'s ``by``."""

    CONTACT = "contact"
    USER = "user"


def message_created(
    channel: str,
    direction: str,
    contact_id: str,
    at: datetime,
    author: Author | None = None,
    automated: bool = False,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "channel": channel,
        "direction": str(direction),
        "contact_id": contact_id,
        "at": format_timestamp(at),
    }
    if author is not None:
        data["author"] = {"kind": str(author.kind), "id": author.id}
    if automated:
        data["automated"] = True
    return data


def status_changed(channel: str, status: str, previous: str) -> dict[str, Any]:
    return {"channel": channel, "status": str(status), "previous": str(previous)}


def message_updated(channel: str, fields: list[str]) -> dict[str, Any]:
    return {"channel": channel, "fields": sorted(fields)}


def attempt_failed(
    channel: str, error_code: str, attempts: int, retry_at: datetime
) -> dict[str, Any]:
    return {
        "channel": channel,
        "error_code": error_code,
        "attempts": attempts,
        "retry_at": format_timestamp(retry_at),
    }


def conversation_changes(
    channel: str,
    before: dict[str, Any],
    after: dict[str, Any],
    change: ConversationChange | None = None,
) -> dict[str, Any]:
    """The conversation's ``channel`` and ``{"changes": {field: [before, after]}}`` for the
    fields that differ, and the ``change_id`` and ``at`` of the history's entry when the
    status or assignee moved."""
    changes = {
        name: [_plain(before[name]), _plain(after[name])]
        for name in after
        if before[name] != after[name]
    }
    data: dict[str, Any] = {"channel": channel, "changes": changes}
    if change is not None:
        data["change_id"] = change.id
        data["at"] = format_timestamp(change.at)
        data["status"] = str(change.status)
        data["assignee"] = change.assignee
    return data


def typing(by: str, user_id: str | None, until: datetime) -> dict[str, Any]:
    return {"by": str(by), "user_id": user_id, "until": format_timestamp(until)}


def contact_changes(fields: list[str]) -> dict[str, Any]:
    return {"fields": sorted(fields)}


def contact_created(fields: list[str]) -> dict[str, Any]:
    """``contact.created``'s data: the profile fields the contact was made with."""
    return {"fields": sorted(fields)}


def contact_merged(merged_id: str) -> dict[str, Any]:
    """``contact.merged``'s data (logged on the survivor): the id merged into it."""
    return {"merged_id": merged_id}


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, enum.Enum) else value


def event_types(store: InboxStore) -> list[EventTypeSpec]:
    """The inbox's types, each loading its record from ``store``."""

    async def message(record_id: str) -> Any:
        try:
            return to_json(await store.get_message(record_id))
        except NotFound:
            return None

    async def conversation(record_id: str) -> Any:
        try:
            return to_json(await store.get_conversation(record_id))
        except NotFound:
            return None

    async def contact(record_id: str) -> Any:
        try:
            return to_json(await store.get_contact(record_id))
        except NotFound:
            return None

    return [
        EventTypeSpec(
            InboxEvent.MESSAGE_CREATED,
            "message",
            CONVERSATIONS_READ,
            message,
            "a message was stored, in or out",
        ),
        EventTypeSpec(
            InboxEvent.MESSAGE_STATUS_CHANGED,
            "message",
            CONVERSATIONS_READ,
            message,
            "an outbound message moved forward",
        ),
        EventTypeSpec(
            InboxEvent.MESSAGE_UPDATED,
            "message",
            CONVERSATIONS_READ,
            message,
            "a message changed: the provider took it (its provider_message_id), or a"
            " provider's media it names is now kept by the server",
        ),
        EventTypeSpec(
            InboxEvent.MESSAGE_ATTEMPT_FAILED,
            "message",
            CONVERSATIONS_READ,
            message,
            "an attempt to send a message failed; it is retried",
        ),
        EventTypeSpec(
            InboxEvent.CONVERSATION_UPDATED,
            "conversation",
            CONVERSATIONS_READ,
            conversation,
            "a conversation's status, assignee or unread count changed, or a message reopened it",
        ),
        EventTypeSpec(
            InboxEvent.CONVERSATION_TYPING,
            "conversation",
            CONVERSATIONS_READ,
            conversation,
            "someone is typing in a conversation: its contact, or a user",
        ),
        EventTypeSpec(
            InboxEvent.CONTACT_UPDATED,
            "contact",
            CONTACTS_READ,
            contact,
            "a contact changed, or opted out or in on a channel",
            audience=store.contact_audience,
        ),
        EventTypeSpec(
            InboxEvent.CONTACT_CREATED,
            "contact",
            CONTACTS_READ,
            contact,
            "a contact was made through the API",
            audience=store.contact_audience,
        ),
        EventTypeSpec(
            InboxEvent.CONTACT_MERGED,
            "contact",
            CONTACTS_READ,
            contact,
            "another contact was merged into this one",
            audience=store.contact_audience,
        ),
        EventTypeSpec(
            InboxEvent.CONTACT_ERASED,
            "contact",
            CONTACTS_READ,
            contact,
            "a contact was erased: forget what you hold of it",
            audience=store.contact_audience,
        ),
    ]

"""The events the store logs, and what a stream of them is told."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs


class EventType(enum.StrEnum):
    MESSAGE_CREATED = "message.created"
    """A message was stored: inbound from a customer, or outbound, queued to be sent."""
    MESSAGE_STATUS_CHANGED = "message.status_changed"
    """An outbound message moved forward (sending, sent, delivered, read, failed...)."""
    CONVERSATION_UPDATED = "conversation.updated"
    """A conversation's status, assignee or unread count was changed through the API."""
    CONTACT_UPDATED = "contact.updated"
    """A contact's name, tags or attributes changed, or it opted out or in on a channel."""


RECORD_OF_EVENT = {
    EventType.MESSAGE_CREATED: "message",
    EventType.MESSAGE_STATUS_CHANGED: "message",
    EventType.CONVERSATION_UPDATED: "conversation",
    EventType.CONTACT_UPDATED: "contact",
}
"""Which kind of record ``Event.record_id`` names, by type."""


@attrs.frozen
class Event:
    """One entry of the store's event log.

    :param cursor: where the event is in the log, made by the store: opaque, and what a
        stream is resumed from (``Last-Event-ID``).
    :param type: what happened.
    :param record_id: the message, conversation or contact it happened to
        (:data:`RECORD_OF_EVENT`).
    :param conversation_id: the conversation involved; None for a contact event.
    :param assignees: the conversation's assignee after the change, and before it when it
        changed (None: unassigned); empty for a contact event. An agent is told of the
        event when one of them is theirs or None.
    :param at: when it was logged.
    """

    cursor: str
    type: EventType
    record_id: str
    conversation_id: str | None
    assignees: tuple[str | None, ...]
    at: datetime

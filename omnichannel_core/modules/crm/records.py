"""The CRM's records, as its API shows them: custom attribute definitions, notes, the
timeline of a contact, and saved segments. Contacts themselves are the inbox's
(:class:`~omnichannel_core.module.Contact`, through the ``ContactBook`` service)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import attrs

from omnichannel_core.module import Message, field, utcnow

NOTE_PREFIX = "note"
"""A note's id: ``note_`` then :func:`~omnichannel_core.module.new_id`'s body."""
SEGMENT_PREFIX = "seg"
TIMELINE_PREFIX = "tl"
"""A timeline entry's id: ``tl_`` then a digest of the event it came from, or the note's id
(``tl_note_...``) for a note's entry."""


class AttributeType(enum.StrEnum):
    """What a declared attribute's values are (`omnichannel_core.modules.crm.attributes`
    checks them)."""

    TEXT = "text"
    """A string of at most 1,000 characters."""
    NUMBER = "number"
    """A finite number (an integer or not); ``true``/``false`` are not numbers."""
    DATE = "date"
    """A calendar date, ``YYYY-MM-DD``."""
    BOOLEAN = "boolean"
    CHOICE = "choice"
    """One of the definition's ``choices``."""


@attrs.frozen
class AttributeDefinition:
    """A custom attribute an admin declared: contacts' ``attributes.<key>`` values are
    checked against it when set, and segments compare them by its type."""

    key: str = attrs.field(
        metadata={"description": "The attribute's name in a contact's ``attributes``."}
    )
    type: AttributeType = attrs.field(
        metadata={
            "description": "What its values are. Fixed once declared: drop it and declare"
            " it again to change it (stored values stay as they are)."
        }
    )
    label: str = attrs.field(metadata={"description": "How people are shown it."})
    choices: tuple[str, ...] = field(
        default=(), description="The values a ``choice`` attribute takes; empty for others."
    )
    created_at: datetime = attrs.field(factory=utcnow)
    updated_at: datetime = attrs.field(factory=utcnow)


@attrs.frozen
class Note:
    """A note a user (or a program) wrote about a contact, for the team."""

    __schema_name__ = "ContactNote"  # "Note" is a name other modules may well want

    id: str
    contact_id: str
    author_id: str = attrs.field(
        metadata={"description": "The id of the user or API key that wrote it."}
    )
    text: str
    created_at: datetime = attrs.field(factory=utcnow)
    updated_at: datetime = attrs.field(factory=utcnow)


class TimelineKind(enum.StrEnum):
    """What a timeline entry tells of."""

    MESSAGE = "message"
    """A message was stored, in or out (``message_id``; ``data``: ``channel``,
    ``direction``)."""
    MESSAGE_STATUS = "message_status"
    """An outbound message moved on (``data``: ``channel``, ``status``, ``previous``)."""
    CONVERSATION = "conversation"
    """A conversation's status or assignee changed (``data.changes``: ``{field: [before,
    after]}``)."""
    CONTACT_CREATED = "contact_created"
    CONTACT_UPDATED = "contact_updated"
    """``data.fields``: the names of the fields that changed."""
    CONTACT_MERGED = "contact_merged"
    """Another contact was merged into this one (``data.merged_id``)."""
    NOTE = "note"
    """A note was written (``note_id``)."""


@attrs.frozen
class TimelineEntry:
    """One thing that happened to a contact. It holds ids and field names only: what they
    name (a message's text, a note's) is read when the timeline is shown, so an edit, a
    redaction or an erasure shows through."""

    id: str
    contact_id: str
    at: datetime = attrs.field(
        metadata={"description": "When it happened (when the event was logged)."}
    )
    kind: TimelineKind
    conversation_id: str | None = None
    message_id: str | None = None
    note_id: str | None = None
    data: dict[str, Any] = field(
        factory=dict, description="What else the entry tells, by kind (ids and names only)."
    )


@attrs.frozen
class TimelineItem:
    """A timeline entry as shown: the entry, with the message or note it names as they are
    now (null when gone)."""

    id: str
    contact_id: str
    at: datetime
    kind: TimelineKind
    conversation_id: str | None = None
    message_id: str | None = None
    note_id: str | None = None
    data: dict[str, Any] = attrs.field(factory=dict)
    message: Message | None = field(default=None, description="The message, as it is now.")
    note: Note | None = field(default=None, description="The note, as it is now.")

    @classmethod
    def of(
        cls, entry: TimelineEntry, message: Message | None = None, note: Note | None = None
    ) -> TimelineItem:
        return cls(
            id=entry.id,
            contact_id=entry.contact_id,
            at=entry.at,
            kind=entry.kind,
            conversation_id=entry.conversation_id,
            message_id=entry.message_id,
            note_id=entry.note_id,
            data=dict(entry.data),
            message=message,
            note=note,
        )


@attrs.frozen
class Segment:
    """A saved filter over the contacts: its members are the contacts it matches when
    asked (docs/crm.md, "Segments")."""

    id: str
    name: str
    description: str | None = None
    filter: dict[str, Any] = field(
        factory=dict, description='The filter (docs/crm.md, "The filter language").'
    )
    created_by: str | None = field(
        default=None, description="The id of the user or API key that created it."
    )
    created_at: datetime = attrs.field(factory=utcnow)
    updated_at: datetime = attrs.field(factory=utcnow)

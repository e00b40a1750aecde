"""A contact's timeline: a projection of the event log the ``crm.timeline`` subscriber
fills (:class:`TimelineProjection`), plus the entries notes add, and its reader
(:class:`TimelineReader`), which loads what each entry names as it is now.

What becomes an entry (one per event, at most):

=============================  =================  =====================================
event                          kind               contact
=============================  =================  =====================================
``message.created``            message            ``data.contact_id`` (the message's)
``message.status_changed``     message_status     the conversation's; not ``sending``
``conversation.updated``       conversation       the conversation's; a change of
                                                  ``status`` or ``assignee`` (the unread
                                                  count alone makes none)
``contact.created``            contact_created    ``record_id``
``contact.updated``            contact_updated    ``record_id``; none when no field
                                                  changed
``contact.merged``             contact_merged     ``record_id``, the survivor; the merged
                                                  contact's notes and entries move to it
``contact.erased`` (when       none               the contact's notes and entries are
declared)                                         deleted
=============================  =================  =====================================

An entry's id is derived from the event's cursor (:func:`entry_id`), so an event handed over
again, after a crash or a replay, records nothing more. The subscriber starts at the oldest
event the log keeps: installed on a running server, it fills the timeline with what the log
still holds (``OMNICHANNEL_EVENT_RETENTION_HOURS``); older history is not in it.

Events reach it in log order, so a message's entry is recorded before the merge that moves
it (an entry recorded again later keeps its place: its id exists already). A contact of an
event is taken as the event names it, or as the conversation names it when the entry is
made; a conversation gone by then makes no entry.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, TypeVar

from omnichannel_core.module import (
    Conversation,
    Event,
    InboxReader,
    Message,
    NotFound,
    Page,
    Subscriber,
)
from omnichannel_core.modules.crm.records import (
    TIMELINE_PREFIX,
    Note,
    TimelineEntry,
    TimelineItem,
    TimelineKind,
)
from omnichannel_core.modules.crm.store import CrmStore

T = TypeVar("T")

SUBSCRIBER = "crm.timeline"
MESSAGE_CREATED = "message.created"
MESSAGE_STATUS_CHANGED = "message.status_changed"
CONVERSATION_UPDATED = "conversation.updated"
CONTACT_CREATED = "contact.created"
CONTACT_UPDATED = "contact.updated"
CONTACT_MERGED = "contact.merged"
CONTACT_ERASED = "contact.erased"
TIMELINE_EVENTS = frozenset(
    {
        MESSAGE_CREATED,
        MESSAGE_STATUS_CHANGED,
        CONVERSATION_UPDATED,
        CONTACT_CREATED,
        CONTACT_UPDATED,
        CONTACT_MERGED,
    }
)
"""What the subscriber reads, besides :data:`CONTACT_ERASED`."""
CONVERSATION_FIELDS = ("status", "assignee")
"""The changes of a conversation a timeline tells of."""
SKIPPED_STATUSES = frozenset({"sending"})
"""Statuses an outbound message passes through that make no entry."""


def entry_id(cursor: str) -> str:
    """The id of the entry an event makes: ``tl_`` and a digest of its cursor (unique in
    the log; any store's cursor gives an id the timeline's cursors take)."""
    return f"{TIMELINE_PREFIX}_{hashlib.sha256(cursor.encode()).hexdigest()[:32]}"


async def _or_none(load: Awaitable[T]) -> T | None:
    try:
        return await load
    except NotFound:
        return None


class TimelineProjection:
    """Turns events into timeline entries (the ``crm.timeline`` subscriber).

    :param store: the CRM's store.
    :param inbox: gives the inbox's :class:`InboxReader` (``lambda:
        context.service(InboxReader)``): called when an event needs it.
    """

    def __init__(self, store: CrmStore, inbox: Callable[[], InboxReader]) -> None:
        self.store = store
        self.inbox = inbox

    def subscriber(self, types: Collection[str] = TIMELINE_EVENTS) -> Subscriber:
        """The subscriber, reading ``types`` (those of :data:`TIMELINE_EVENTS` the server
        declares, and :data:`CONTACT_ERASED` when it is)."""
        return Subscriber(
            SUBSCRIBER,
            self.handle,
            types=types,
            start="oldest",
            description="records contacts' timelines: messages, conversations, changes",
        )

    async def handle(self, event: Event) -> None:
        """Record the entry ``event`` makes, if any; on ``contact.merged`` move the merged
        contact's notes and entries to the survivor, on ``contact.erased`` delete the
        contact's. Safe to repeat."""
        if event.type == CONTACT_ERASED:
            await self.store.forget_contact(event.record_id)
            return
        entry = await self.entry_of(event)
        if entry is not None:
            await self.store.add_entry(entry)
        merged_id = event.data.get("merged_id")
        if event.type == CONTACT_MERGED and isinstance(merged_id, str):
            await self.store.move_contact(merged_id, event.record_id)

    async def entry_of(self, event: Event) -> TimelineEntry | None:
        """The entry ``event`` makes; None when it makes none."""
        data = event.data
        match event.type:
            case "message.created":
                return await self._message_created(event)
            case "message.status_changed":
                if data.get("status") in SKIPPED_STATUSES:
                    return None
                return await self._message_status(event)
            case "conversation.updated":
                return await self._conversation_updated(event)
            case "contact.created":
                return self._entry(event, event.record_id, TimelineKind.CONTACT_CREATED, data)
            case "contact.updated":
                fields = data.get("fields")
                if fields == []:  # logged although nothing changed
                    return None
                details = {"fields": fields} if fields is not None else {}
                return self._entry(event, event.record_id, TimelineKind.CONTACT_UPDATED, details)
            case "contact.merged":
                details = {"merged_id": data.get("merged_id")}
                return self._entry(event, event.record_id, TimelineKind.CONTACT_MERGED, details)
        return None

    async def _message_created(self, event: Event) -> TimelineEntry | None:
        contact_id = event.data.get("contact_id")
        if not isinstance(contact_id, str):  # logged before events carried it
            message = await _or_none(self.inbox().get_message(event.record_id))
            if message is None:
                return None
            contact_id = message.contact_id
        # A message stored while its contact was being merged names the merged one (on
        # Firestore, until the merge's sweep): its entry goes to the survivor.
        contact = await _or_none(self.inbox().get_contact(contact_id))
        if contact is not None:
            contact_id = contact.id
        details = _picked(event.data, ("channel", "direction"))
        return self._entry(
            event, contact_id, TimelineKind.MESSAGE, details, message_id=event.record_id
        )

    async def _message_status(self, event: Event) -> TimelineEntry | None:
        conversation = await self._conversation_of(event.conversation_id, event.record_id)
        if conversation is None:
            return None
        details = _picked(event.data, ("channel", "status", "previous"))
        return self._entry(
            event,
            conversation.contact_id,
            TimelineKind.MESSAGE_STATUS,
            details,
            conversation_id=conversation.id,
            message_id=event.record_id,
        )

    async def _conversation_updated(self, event: Event) -> TimelineEntry | None:
        changes = event.data.get("changes")
        if not isinstance(changes, Mapping):
            return None
        kept = {name: changes[name] for name in CONVERSATION_FIELDS if name in changes}
        if not kept:
            return None
        conversation = await _or_none(self.inbox().get_conversation(event.record_id))
        if conversation is None:
            return None
        return self._entry(
            event,
            conversation.contact_id,
            TimelineKind.CONVERSATION,
            {"changes": kept},
            conversation_id=conversation.id,
        )

    async def _conversation_of(
        self, conversation_id: str | None, message_id: str
    ) -> Conversation | None:
        inbox = self.inbox()
        if conversation_id is None:
            message = await _or_none(inbox.get_message(message_id))
            if message is None:
                return None
            conversation_id = message.conversation_id
        return await _or_none(inbox.get_conversation(conversation_id))

    @staticmethod
    def _entry(
        event: Event,
        contact_id: str,
        kind: TimelineKind,
        data: Mapping[str, Any],
        conversation_id: str | None = None,
        message_id: str | None = None,
    ) -> TimelineEntry:
        return TimelineEntry(
            id=entry_id(event.cursor),
            contact_id=contact_id,
            at=event.at,
            kind=kind,
            conversation_id=conversation_id or event.conversation_id,
            message_id=message_id,
            data=dict(data),
        )


def _picked(data: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: data[name] for name in names if name in data}


class TimelineReader:
    """A contact's timeline, a page at a time, each entry with the message or note it names
    as it is now.

    :param store: the CRM's store.
    :param inbox: gives the inbox's :class:`InboxReader`.
    """

    MESSAGE_KINDS = frozenset({TimelineKind.MESSAGE, TimelineKind.MESSAGE_STATUS})

    def __init__(self, store: CrmStore, inbox: Callable[[], InboxReader]) -> None:
        self.store = store
        self.inbox = inbox

    async def page(
        self, contact_id: str, cursor: str | None, limit: int, agent_id: str | None = None
    ) -> Page:
        """One page of the contact's timeline, newest first, as :class:`TimelineItem`.

        With ``agent_id`` (an agent's user id), entries of a conversation assigned to
        someone else (or gone) are left out, as the inbox keeps such conversations from the
        agent: the page may then come back short, its cursor still going on.
        """
        page = await self.store.list_timeline(contact_id, cursor, limit)
        entries: list[TimelineEntry] = page.items
        if agent_id is not None:
            entries = await self._visible(entries, agent_id)
        items = await asyncio.gather(*(self._item(entry) for entry in entries))
        return Page(list(items), page.next_cursor)

    async def _visible(self, entries: list[TimelineEntry], agent_id: str) -> list[TimelineEntry]:
        inbox = self.inbox()
        wanted = sorted({e.conversation_id for e in entries if e.conversation_id is not None})
        found = await asyncio.gather(*(_or_none(inbox.get_conversation(c)) for c in wanted))
        theirs = {
            conversation.id
            for conversation in found
            if conversation is not None and conversation.assignee in (None, agent_id)
        }
        return [e for e in entries if e.conversation_id is None or e.conversation_id in theirs]

    async def _item(self, entry: TimelineEntry) -> TimelineItem:
        message: Message | None = None
        note: Note | None = None
        if entry.kind in self.MESSAGE_KINDS and entry.message_id is not None:
            message = await _or_none(self.inbox().get_message(entry.message_id))
        elif entry.note_id is not None:
            note = await _or_none(self.store.get_note(entry.note_id))
        return TimelineItem.of(entry, message, note)

"""A contact's timeline: the ``crm.timeline`` subscriber fed the events a real inbox store
logs (on SQLite and on the Firestore emulator), replays, merges and erasures, and the
reader that shows each entry with its message or note as it is now."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import attrs
import pytest

from omnichannel_core.events.records import Event
from omnichannel_core.hooktypes import InboundMessage
from omnichannel_core.models import DeliveryStatus
from omnichannel_core.modules.crm.notes import Notes
from omnichannel_core.modules.crm.records import TimelineEntry, TimelineKind
from omnichannel_core.modules.crm.store import CrmStore, crm_store_spec
from omnichannel_core.modules.crm.timeline import (
    CONTACT_ERASED,
    TIMELINE_EVENTS,
    TimelineProjection,
    TimelineReader,
    entry_id,
)
from omnichannel_core.modules.inbox.plugin import STORE as INBOX_STORE
from omnichannel_core.modules.inbox.store import InboxStore
from omnichannel_core.policy import Principal, Role
from omnichannel_core.store import KERNEL_STORES
from omnichannel_core.store.protocols import EventLog
from omnichannel_core.timestamps import utcnow

CRM_STORE = crm_store_spec()
AGENT = Principal("user", "usr_1", "Ana", frozenset(), Role.AGENT)


@pytest.fixture(params=["sqlite", "firestore"])
def database(request: pytest.FixtureRequest) -> Any:
    """A fresh database of each backend (the kit's fixtures)."""
    return request.getfixturevalue(f"{request.param}_database")


@attrs.frozen
class World:
    inbox: InboxStore
    crm: CrmStore
    log: EventLog
    projection: TimelineProjection
    reader: TimelineReader

    async def events(self) -> list[Event]:
        return await self.log.after(None, 500)

    async def feed(self, events: list[Event]) -> None:
        for event in events:
            if event.type in TIMELINE_EVENTS or event.type == CONTACT_ERASED:
                await self.projection.handle(event)

    async def timeline(self, contact_id: str) -> list[TimelineEntry]:
        return (await self.crm.list_timeline(contact_id, None, 200)).items


def run_world(database: Any, scenario: Callable[[World], Awaitable[None]]) -> None:
    """Migrate ``database`` for the kernel's stores, the inbox's and the CRM's, and run
    ``scenario`` on them (the inbox store serving as the InboxReader)."""
    specs = [*KERNEL_STORES, INBOX_STORE, CRM_STORE]

    def build(spec: Any) -> Any:
        factory = spec.factory(database.backend)
        assert factory is not None
        return factory(database)

    async def run() -> None:
        await database.migrate(specs)
        await database.open()
        try:
            (log_spec,) = [spec for spec in KERNEL_STORES if spec.interface is EventLog]
            inbox, crm = build(INBOX_STORE), build(CRM_STORE)
            world = World(
                inbox,
                crm,
                build(log_spec),
                TimelineProjection(crm, lambda: inbox),
                TimelineReader(crm, lambda: inbox),
            )
            await scenario(world)
        finally:
            await database.close()

    asyncio.run(run())


def beyond_creation(entries: list[TimelineEntry]) -> list[TimelineEntry]:
    """The entries but those of contact.created (which the inbox's ingest may log too, as
    the rest of issue 16 lands)."""
    return [e for e in entries if e.kind is not TimelineKind.CONTACT_CREATED]


def synthetic(kind: str, record_id: str, cursor: str, **data: Any) -> Event:
    """An event of a type the inbox declares later in issue 16 (contact.created,
    contact.merged, contact.erased), as its store will log it."""
    return Event(cursor, kind, record_id, None, (), utcnow(), data)


def test_the_inboxs_events_become_a_contacts_timeline(database):
    """Messages in and out, a status moving on, an assignment and a contact change become
    entries of the contact's timeline, newest first, holding ids and names only; a status
    of ``sending``, a change of the unread count alone and another contact's events make
    none there. Fed the same events again, the timeline is unchanged."""

    async def scenario(world: World) -> None:
        inbox = world.inbox
        first = await inbox.ingest_inbound(
            "sms", InboundMessage(provider_message_id="SM1", sender="+15550001", text="hi")
        )
        contact_id, conversation_id = first.contact.id, first.conversation_id
        reply, _ = await inbox.create_outbound(conversation_id, "hello", (), {}, None)
        await inbox.advance_message(reply.id, DeliveryStatus.SENDING)
        await inbox.advance_message(reply.id, DeliveryStatus.SENT, provider_message_id="P1")
        await inbox.update_conversation(conversation_id, unread_count=0)
        await inbox.update_conversation(conversation_id, assignee="usr_1")
        await inbox.update_contact(contact_id, display_name="Ana")
        other = await inbox.ingest_inbound(
            "sms", InboundMessage(provider_message_id="SM2", sender="+15550002", text="yo")
        )

        events = await world.events()
        await world.feed(events)
        timeline = await world.timeline(contact_id)
        shown = [
            (e.kind, e.message_id, e.conversation_id, e.data) for e in beyond_creation(timeline)
        ]
        assert shown == [
            (TimelineKind.CONTACT_UPDATED, None, None, {"fields": ["display_name"]}),
            (
                TimelineKind.CONVERSATION,
                None,
                conversation_id,
                {"changes": {"assignee": [None, "usr_1"]}},
            ),
            (
                TimelineKind.MESSAGE_STATUS,
                reply.id,
                conversation_id,
                {"channel": "sms", "status": "sent", "previous": "sending"},
            ),
            (
                TimelineKind.MESSAGE,
                reply.id,
                conversation_id,
                {"channel": "sms", "direction": "outbound"},
            ),
            (
                TimelineKind.MESSAGE,
                first.message_id,
                conversation_id,
                {"channel": "sms", "direction": "inbound"},
            ),
        ]
        by_cursor = {event.cursor: event for event in events}
        for item in timeline:
            (cursor,) = [c for c in by_cursor if entry_id(c) == item.id]
            assert item.at == by_cursor[cursor].at
        assert [e.message_id for e in await world.timeline(other.contact.id)] == [other.message_id]

        await world.feed(events)
        assert await world.timeline(contact_id) == timeline

    run_world(database, scenario)


def test_events_of_gone_records_make_no_entry(database):
    """A status change or conversation change whose conversation the inbox does not know
    (any more) makes no entry, and neither does a contact change of no field; the handler
    does not fail on them."""

    async def scenario(world: World) -> None:
        now = utcnow()
        gone = [
            Event("9001", "message.status_changed", "msg_gone", "cv_gone", (), now,
                  {"channel": "sms", "status": "delivered", "previous": "sent"}),
            Event("9002", "message.status_changed", "msg_gone", None, (), now,
                  {"channel": "sms", "status": "delivered", "previous": "sent"}),
            Event("9003", "conversation.updated", "cv_gone", "cv_gone", (), now,
                  {"changes": {"status": ["open", "resolved"]}}),
            Event("9004", "contact.updated", "ct_1", None, (), now, {"fields": []}),
        ]  # fmt: skip
        for event in gone:
            assert await world.projection.entry_of(event) is None
            await world.projection.handle(event)
        assert await world.timeline("ct_1") == []

    run_world(database, scenario)


def test_a_merge_moves_the_merged_contacts_timeline_and_notes(database):
    """contact.created and contact.merged make entries of their contact; a merge moves the
    merged contact's entries and notes to the survivor (once, however often the event comes)
    and an event of the merged contact replayed afterwards records nothing more.
    contact.erased deletes the contact's entries and notes."""

    async def scenario(world: World) -> None:
        inbox = world.inbox
        kept = await inbox.ingest_inbound(
            "sms", InboundMessage(provider_message_id="SM1", sender="+15550001", text="hi")
        )
        merged = await inbox.ingest_inbound(
            "whatsapp", InboundMessage(provider_message_id="WA1", sender="+15550009", text="hey")
        )
        survivor_id, merged_id = kept.contact.id, merged.contact.id
        events = await world.events()
        await world.feed(events)
        note = await Notes(world.crm).write(merged_id, AGENT, "same person as on SMS")

        created = synthetic("contact.created", survivor_id, "c-1")
        merge = synthetic("contact.merged", survivor_id, "c-2", merged_id=merged_id)
        for _ in range(2):
            await world.feed([created, merge])
        assert await world.timeline(merged_id) == []
        timeline = await world.timeline(survivor_id)
        assert [(e.kind, e.message_id, e.note_id) for e in beyond_creation(timeline)] == [
            (TimelineKind.CONTACT_MERGED, None, None),
            (TimelineKind.NOTE, None, note.id),
            (TimelineKind.MESSAGE, merged.message_id, None),
            (TimelineKind.MESSAGE, kept.message_id, None),
        ]
        assert timeline[0].data == {"merged_id": merged_id}
        assert timeline[1].kind is TimelineKind.CONTACT_CREATED
        assert (await world.crm.get_note(note.id)).contact_id == survivor_id

        await world.feed(events)  # replayed: each entry is where the merge put it
        assert await world.timeline(merged_id) == []
        assert await world.timeline(survivor_id) == timeline

        await world.projection.handle(synthetic(CONTACT_ERASED, survivor_id, "c-3"))
        assert await world.timeline(survivor_id) == []
        assert (await world.crm.list_notes(survivor_id, None, 10)).items == []

    run_world(database, scenario)


def test_the_reader_shows_each_entry_with_its_message_or_note_as_now(database):
    """Each entry comes with its message (as stored now) or its note (as edited); an entry
    whose message is gone comes without it. An agent is shown only the entries of
    conversations assigned to them or to nobody, and the contact's own entries."""

    async def scenario(world: World) -> None:
        inbox = world.inbox
        first = await inbox.ingest_inbound(
            "sms", InboundMessage(provider_message_id="SM1", sender="+15550001", text="hi")
        )
        contact_id = first.contact.id
        await inbox.update_contact(contact_id, display_name="Ana")
        await world.feed(await world.events())
        notes = Notes(world.crm)
        note = await notes.write(contact_id, AGENT, "draft")
        await notes.edit(note.id, AGENT, "final")
        later = utcnow() + timedelta(seconds=1)
        lost = TimelineEntry("tl_lost", contact_id, later, TimelineKind.MESSAGE,
                             "cv_lost", "msg_lost")  # fmt: skip
        await world.crm.add_entry(lost)

        page = await world.reader.page(contact_id, None, 10)
        assert page.next_cursor is None
        by_kind = {item.kind: item for item in page.items if item.id != lost.id}
        assert by_kind[TimelineKind.MESSAGE].message.text == "hi"
        assert by_kind[TimelineKind.NOTE].note.text == "final"
        assert by_kind[TimelineKind.CONTACT_UPDATED].message is None
        (shown_lost,) = [item for item in page.items if item.id == lost.id]
        assert shown_lost.message is None and shown_lost.message_id == "msg_lost"

        def kinds(items: list[Any]) -> list[TimelineKind]:
            return [i.kind for i in items if i.kind is not TimelineKind.CONTACT_CREATED]

        message, note_, updated = (
            TimelineKind.MESSAGE,
            TimelineKind.NOTE,
            TimelineKind.CONTACT_UPDATED,
        )
        assert kinds(page.items) == [message, note_, updated, message]
        # the lost entry's conversation is no one's to see: left out for an agent
        shown = kinds((await world.reader.page(contact_id, None, 10, "usr_1")).items)
        assert shown == [note_, updated, message]
        await inbox.update_conversation(first.conversation_id, assignee="usr_2")
        shown = kinds((await world.reader.page(contact_id, None, 10, "usr_1")).items)
        assert shown == [note_, updated]
        shown = kinds((await world.reader.page(contact_id, None, 10, "usr_2")).items)
        assert shown == [note_, updated, message]

        paged = await world.reader.page(contact_id, None, 2)
        assert len(paged.items) == 2 and paged.next_cursor is not None
        rest = await world.reader.page(contact_id, paged.next_cursor, 10)
        assert [i.id for i in paged.items + rest.items] == [i.id for i in page.items]

    run_world(database, scenario)


def test_the_subscriber_reads_from_the_oldest_event():
    """The subscriber is ``crm.timeline``, starting at the oldest event the log keeps, for
    the timeline's types (and contact.erased once declared)."""
    nothing: Any = None  # neither is used to declare the subscriber
    projection = TimelineProjection(nothing, lambda: nothing)
    subscriber = projection.subscriber()
    assert (subscriber.name, subscriber.start) == ("crm.timeline", "oldest")
    assert subscriber.types == TIMELINE_EVENTS
    erasing = projection.subscriber(TIMELINE_EVENTS | {CONTACT_ERASED})
    assert erasing.types == TIMELINE_EVENTS | {CONTACT_ERASED}

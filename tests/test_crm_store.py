"""The CRM's store on SQLite and on the Firestore emulator: one contract for both
backends (attribute definitions, notes, the timeline, segments, and what follows a contact
when it is merged or erased)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from omnichannel_core.errors import Conflict, InvalidInput, NotFound
from omnichannel_core.modules.crm.records import (
    AttributeDefinition,
    AttributeType,
    Note,
    Segment,
    TimelineEntry,
    TimelineKind,
)
from omnichannel_core.modules.crm.store import CrmStore, crm_store_spec, note_entry_id
from omnichannel_core.paging import encode_cursor
from omnichannel_core.testing.stores import run_store

STORE = crm_store_spec()
START = datetime(2025, 5, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "firestore"])
def database(request: pytest.FixtureRequest) -> Any:
    """A fresh database of each backend (the kit's fixtures)."""
    return request.getfixturevalue(f"{request.param}_database")


def at(minutes: int) -> datetime:
    return START + timedelta(minutes=minutes)


def definition(
    key: str, kind: AttributeType = AttributeType.TEXT, **fields: Any
) -> AttributeDefinition:
    return AttributeDefinition(
        key, kind, fields.pop("label", key.title()), created_at=START, updated_at=START, **fields
    )


def note(n: int, contact_id: str = "ct_1", author_id: str = "usr_1") -> Note:
    return Note(f"note_{n:04d}", contact_id, author_id, f"note {n}", at(n), at(n))


def entry(n: int, contact_id: str = "ct_1", **fields: Any) -> TimelineEntry:
    return TimelineEntry(
        f"tl_{n:04d}",
        contact_id,
        fields.pop("at", at(n)),
        fields.pop("kind", TimelineKind.MESSAGE),
        **fields,
    )


def segment(n: int, **fields: Any) -> Segment:
    return Segment(
        f"seg_{n:04d}",
        fields.pop("name", f"segment {n}"),
        created_at=at(n),
        updated_at=at(n),
        **fields,
    )


async def whole(list_page: Any, limit: int) -> list[Any]:
    """Every item of a list, read ``limit`` at a time."""
    items: list[Any] = []
    cursor = None
    while True:
        page = await list_page(cursor, limit)
        assert len(page.items) <= limit
        items += page.items
        cursor = page.next_cursor
        if cursor is None:
            return items


def test_attribute_definitions_are_declared_once_changed_and_dropped(database):
    """A definition reads back as declared; a second of its key is Conflict and changes
    nothing; they list by key; an update changes label and choices (never the type) and
    ``updated_at``; a dropped one is gone; an unknown key (or one no document can have) is
    NotFound for each operation."""

    async def scenario(store: CrmStore) -> None:
        plan = definition("plan", AttributeType.CHOICE, choices=("free", "pro"))
        score = definition("score", AttributeType.NUMBER, label="Score")
        await store.add_attribute(score)
        await store.add_attribute(plan)
        with pytest.raises(Conflict):
            await store.add_attribute(definition("plan", AttributeType.DATE))
        assert await store.get_attribute("plan") == plan
        assert await store.list_attributes() == [plan, score]

        changed = await store.update_attribute("plan", "Plan", ("free", "pro", "team"), at(5))
        assert changed == attrs.evolve(
            plan, label="Plan", choices=("free", "pro", "team"), updated_at=at(5)
        )
        assert await store.get_attribute("plan") == changed

        await store.drop_attribute("score")
        assert await store.list_attributes() == [changed]
        for unknown in ("score", "nothing", "a/b"):
            with pytest.raises(NotFound):
                await store.get_attribute(unknown)
            with pytest.raises(NotFound):
                await store.update_attribute(unknown, "X", (), at(6))
            with pytest.raises(NotFound):
                await store.drop_attribute(unknown)

    run_store(STORE, database, scenario)


def test_notes_are_kept_changed_and_deleted_with_their_timeline_entry(database):
    """A note reads back as written and adds its timeline entry (kind note, at its
    creation); an update changes its text and ``updated_at`` only; a delete takes the note
    and its entry; an unknown id is NotFound."""

    async def scenario(store: CrmStore) -> None:
        first = note(1)
        await store.add_note(first)
        assert await store.get_note(first.id) == first
        (noted,) = (await store.list_timeline("ct_1", None, 10)).items
        assert noted == TimelineEntry(
            note_entry_id(first.id), "ct_1", first.created_at, TimelineKind.NOTE, note_id=first.id
        )

        changed = await store.update_note(first.id, "changed", at(9))
        assert changed == attrs.evolve(first, text="changed", updated_at=at(9))
        assert await store.get_note(first.id) == changed

        await store.delete_note(first.id)
        assert (await store.list_timeline("ct_1", None, 10)).items == []
        for unknown in (first.id, "note_none", "a/b"):
            with pytest.raises(NotFound):
                await store.get_note(unknown)
            with pytest.raises(NotFound):
                await store.update_note(unknown, "x", at(10))
            with pytest.raises(NotFound):
                await store.delete_note(unknown)

    run_store(STORE, database, scenario)


def test_a_contacts_notes_list_newest_first_in_pages(database):
    """A contact's notes come newest first (ties by id), in pages whose cursors go on
    where the last ended, without another contact's; a contact with none has an empty
    page; a cursor another list made is InvalidInput."""

    async def scenario(store: CrmStore) -> None:
        for n in (3, 1, 4, 2, 5):
            await store.add_note(note(n))
        await store.add_note(note(6, contact_id="ct_2"))
        await store.add_note(attrs.evolve(note(7), created_at=at(5), updated_at=at(5)))

        listed = await whole(lambda c, n: store.list_notes("ct_1", c, n), 2)
        assert [n.id for n in listed] == [
            "note_0007",
            "note_0005",
            "note_0004",
            "note_0003",
            "note_0002",
            "note_0001",
        ]
        assert [n.id for n in (await store.list_notes("ct_2", None, 10)).items] == ["note_0006"]
        assert (await store.list_notes("ct_none", None, 10)).items == []
        assert (await store.list_notes("ct_" + "x" * 2000, None, 10)).items == []
        for bad in ("nonsense", encode_cursor("2025-05-01T09:30:00.000000Z", "seg_0001")):
            with pytest.raises(InvalidInput):
                await store.list_notes("ct_1", bad, 10)

    run_store(STORE, database, scenario)


def test_timeline_entries_are_recorded_once_and_listed_newest_first(database):
    """An entry reads back as recorded, its data included; recording one of the same id
    again (the same event handed over twice) records nothing and answers False; a contact's
    entries list newest first, ties by id, in pages, without another contact's."""

    async def scenario(store: CrmStore) -> None:
        first = entry(
            1,
            conversation_id="cv_1",
            message_id="msg_1",
            data={"channel": "sms", "direction": "inbound"},
        )
        assert await store.add_entry(first) is True
        assert await store.add_entry(attrs.evolve(first, contact_id="ct_9")) is False
        for n in (4, 2, 3):
            assert await store.add_entry(entry(n, kind=TimelineKind.CONTACT_UPDATED))
        assert await store.add_entry(entry(5, at=at(4)))
        await store.add_entry(entry(6, contact_id="ct_2"))

        listed = await whole(lambda c, n: store.list_timeline("ct_1", c, n), 2)
        assert [e.id for e in listed] == ["tl_0005", "tl_0004", "tl_0003", "tl_0002", "tl_0001"]
        assert listed[-1] == first
        assert (await store.list_timeline("ct_9", None, 10)).items == []
        with pytest.raises(InvalidInput):
            await store.list_timeline("ct_1", encode_cursor(first.id, "x"), 10)

    run_store(STORE, database, scenario)


def test_segments_are_kept_changed_listed_and_deleted(database):
    """A segment reads back as saved, its filter whole; an update changes only the fields
    given (a null description clears it) and ``updated_at``; they list newest first in
    pages; a deleted one is gone; an unknown id is NotFound."""

    async def scenario(store: CrmStore) -> None:
        rule = {"and": [{"field": "tags", "op": "contains", "value": "vip"}]}
        first = segment(1, description="our best", filter=rule, created_by="usr_1")
        await store.add_segment(first)
        for n in (3, 2):
            await store.add_segment(segment(n))
        assert await store.get_segment(first.id) == first

        renamed = await store.update_segment(first.id, at(8), name="best")
        assert renamed == attrs.evolve(first, name="best", updated_at=at(8))
        other = {"field": "attributes.plan", "op": "eq", "value": "pro"}
        refiltered = await store.update_segment(first.id, at(9), description=None, filter=other)
        assert refiltered == attrs.evolve(renamed, description=None, filter=other, updated_at=at(9))
        assert await store.get_segment(first.id) == refiltered

        listed = await whole(store.list_segments, 2)
        assert [s.id for s in listed] == ["seg_0003", "seg_0002", "seg_0001"]

        await store.delete_segment("seg_0002")
        assert [s.id for s in (await store.list_segments(None, 10)).items] == [
            "seg_0003",
            "seg_0001",
        ]
        for unknown in ("seg_0002", "seg_none", "a/b"):
            with pytest.raises(NotFound):
                await store.get_segment(unknown)
            with pytest.raises(NotFound):
                await store.update_segment(unknown, at(10), name="x")
            with pytest.raises(NotFound):
                await store.delete_segment(unknown)

    run_store(STORE, database, scenario)


def test_a_merged_contacts_notes_and_entries_move_to_the_survivor(database, monkeypatch):
    """``move_contact`` gives the survivor every note and entry of the merged contact, in
    batches (here of 3), and says how many moved; the survivor's own stay, another
    contact's are untouched; moved again, nothing moves; an entry recorded again after the
    move (an event replayed) stays with the survivor."""
    monkeypatch.setattr(f"omnichannel_core.modules.crm.{database.backend}.BATCH", 3)

    async def scenario(store: CrmStore) -> None:
        for n in range(1, 5):
            await store.add_note(note(n, contact_id="ct_old"))
        for n in range(10, 15):
            await store.add_entry(entry(n, contact_id="ct_old"))
        await store.add_note(note(20, contact_id="ct_new"))
        await store.add_entry(entry(21, contact_id="ct_new"))
        await store.add_entry(entry(22, contact_id="ct_other"))

        assert await store.move_contact("ct_old", "ct_new") == 4 + 4 + 5
        assert await store.move_contact("ct_old", "ct_new") == 0
        assert await store.add_entry(entry(10, contact_id="ct_old")) is False

        assert (await store.list_notes("ct_old", None, 50)).items == []
        assert (await store.list_timeline("ct_old", None, 50)).items == []
        notes = (await store.list_notes("ct_new", None, 50)).items
        assert [n.id for n in notes] == [
            "note_0020",
            "note_0004",
            "note_0003",
            "note_0002",
            "note_0001",
        ]
        assert (await store.get_note("note_0001")).contact_id == "ct_new"
        timeline = (await store.list_timeline("ct_new", None, 50)).items
        assert len(timeline) == 4 + 5 + 2
        assert {e.contact_id for e in timeline} == {"ct_new"}
        assert [e.id for e in (await store.list_timeline("ct_other", None, 50)).items] == [
            "tl_0022"
        ]
        assert await store.move_contact("ct_new", "ct_new") == 0

    run_store(STORE, database, scenario)


def test_forgetting_a_contact_deletes_its_notes_and_entries(database, monkeypatch):
    """``forget_contact`` deletes every note and entry of the contact, in batches, and says
    how many; another contact's stay; forgetting again deletes nothing."""
    monkeypatch.setattr(f"omnichannel_core.modules.crm.{database.backend}.BATCH", 3)

    async def scenario(store: CrmStore) -> None:
        for n in range(1, 5):
            await store.add_note(note(n, contact_id="ct_gone"))
        for n in range(10, 13):
            await store.add_entry(entry(n, contact_id="ct_gone"))
        await store.add_note(note(20, contact_id="ct_kept"))

        assert await store.forget_contact("ct_gone") == 4 + 4 + 3
        assert await store.forget_contact("ct_gone") == 0
        assert (await store.list_notes("ct_gone", None, 50)).items == []
        assert (await store.list_timeline("ct_gone", None, 50)).items == []
        with pytest.raises(NotFound):
            await store.get_note("note_0001")
        assert [n.id for n in (await store.list_notes("ct_kept", None, 50)).items] == ["note_0020"]
        assert len((await store.list_timeline("ct_kept", None, 50)).items) == 1

    run_store(STORE, database, scenario)

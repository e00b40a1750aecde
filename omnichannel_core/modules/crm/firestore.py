"""The CRM's store on Firestore (imported only when the server runs on Firestore: it needs
Google's client).

``crm_attributes/{key}``
    ``type``, ``label``, ``choices``, ``created_at``, ``updated_at``.
``crm_notes/{note_id}``
    ``contact_id``, ``author_id``, ``text``, ``created_at``, ``updated_at``. A contact's
    notes are a query on ``contact_id`` ordered by ``created_at``: a composite index
    (firestore.indexes.json). ``text`` is exempt from indexing.
``crm_timeline/{entry_id}``
    ``contact_id``, ``at``, ``kind``, ``conversation_id``, ``message_id``, ``note_id``,
    ``data_json``. A contact's timeline is a query on ``contact_id`` ordered by ``at``: a
    composite index (firestore.indexes.json).
``crm_segments/{segment_id}``
    ``name``, ``description``, ``filter_json``, ``created_by``, ``created_at``,
    ``updated_at``; listed by ``created_at`` (a single-field index).

Moving or forgetting a contact's notes and entries queries them by ``contact_id`` (a
single-field index, which Firestore makes by itself) and writes them in batches of
:data:`BATCH`, each committed alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.api_core.exceptions import AlreadyExists
from google.cloud.firestore_v1 import (
    AsyncCollectionReference,
    AsyncWriteBatch,
    DocumentSnapshot,
    FieldFilter,
)

from omnichannel_core.module import UNSET, Conflict, Page
from omnichannel_core.module.firestore import (
    FirestoreDatabase,
    KeysetQuery,
    Transaction,
    decode_position,
    document,
    exact_time,
    existing,
    json_text,
)
from omnichannel_core.modules.crm.records import (
    NOTE_PREFIX,
    SEGMENT_PREFIX,
    TIMELINE_PREFIX,
    AttributeDefinition,
    AttributeType,
    Note,
    Segment,
    TimelineEntry,
    TimelineKind,
)
from omnichannel_core.modules.crm.store import note_entry, note_entry_id

ATTRIBUTES = "crm_attributes"
NOTES = "crm_notes"
TIMELINE = "crm_timeline"
SEGMENTS = "crm_segments"
BATCH = 400
"""Writes per commit when moving or forgetting a contact's records (Firestore takes 500)."""
LONGEST_ID = 1000
"""Bytes of the longest contact id a query compares ``contact_id`` with (Firestore refuses
a value of about 1,500 bytes or more with an error): no contact has a longer one."""


def _attribute(snapshot: DocumentSnapshot) -> AttributeDefinition:
    return _attribute_of(snapshot.id, existing(snapshot, "attribute"))


def _attribute_of(key: str, data: dict[str, Any]) -> AttributeDefinition:
    return AttributeDefinition(
        key=key,
        type=AttributeType(data["type"]),
        label=data["label"],
        choices=tuple(data.get("choices") or ()),
        created_at=exact_time(data["created_at"]),
        updated_at=exact_time(data["updated_at"]),
    )


def _note(snapshot: DocumentSnapshot) -> Note:
    data = existing(snapshot, "note")
    return Note(
        id=snapshot.id,
        contact_id=data["contact_id"],
        author_id=data["author_id"],
        text=data["text"],
        created_at=exact_time(data["created_at"]),
        updated_at=exact_time(data["updated_at"]),
    )


def _note_fields(note: Note) -> dict[str, Any]:
    return {
        "contact_id": note.contact_id,
        "author_id": note.author_id,
        "text": note.text,
        "created_at": note.created_at,
        "updated_at": note.updated_at,
    }


def _entry(snapshot: DocumentSnapshot) -> TimelineEntry:
    data = existing(snapshot, "timeline entry")
    return TimelineEntry(
        id=snapshot.id,
        contact_id=data["contact_id"],
        at=exact_time(data["at"]),
        kind=TimelineKind(data["kind"]),
        conversation_id=data.get("conversation_id"),
        message_id=data.get("message_id"),
        note_id=data.get("note_id"),
        data=json.loads(data.get("data_json") or "{}"),
    )


def _entry_fields(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "contact_id": entry.contact_id,
        "at": entry.at,
        "kind": str(entry.kind),
        "conversation_id": entry.conversation_id,
        "message_id": entry.message_id,
        "note_id": entry.note_id,
        "data_json": json_text(entry.data),
    }


def _segment(snapshot: DocumentSnapshot) -> Segment:
    return _segment_of(snapshot.id, existing(snapshot, "segment"))


def _segment_of(segment_id: str, data: dict[str, Any]) -> Segment:
    return Segment(
        id=segment_id,
        name=data["name"],
        description=data.get("description"),
        filter=json.loads(data["filter_json"]),
        created_by=data.get("created_by"),
        created_at=exact_time(data["created_at"]),
        updated_at=exact_time(data["updated_at"]),
    )


def _queryable(contact_id: str) -> bool:
    return len(contact_id.encode()) <= LONGEST_ID


class FirestoreCrmStore:
    def __init__(self, database: FirestoreDatabase) -> None:
        self.database = database

    def _collection(self, name: str) -> AsyncCollectionReference:
        return self.database.collection(name)

    # Attribute definitions.

    async def add_attribute(self, definition: AttributeDefinition) -> None:
        reference = document(self._collection(ATTRIBUTES), definition.key, "attribute")
        try:
            await reference.create(
                {
                    "type": str(definition.type),
                    "label": definition.label,
                    "choices": list(definition.choices),
                    "created_at": definition.created_at,
                    "updated_at": definition.updated_at,
                }
            )
        except AlreadyExists:
            raise Conflict(
                f"attribute {definition.key!r} is declared already", key=definition.key
            ) from None

    async def get_attribute(self, key: str) -> AttributeDefinition:
        return _attribute(await document(self._collection(ATTRIBUTES), key, "attribute").get())

    async def list_attributes(self) -> list[AttributeDefinition]:
        definitions = [
            _attribute(snapshot) async for snapshot in self._collection(ATTRIBUTES).stream()
        ]
        return sorted(definitions, key=lambda definition: definition.key)

    async def update_attribute(
        self, key: str, label: str, choices: tuple[str, ...], updated_at: datetime
    ) -> AttributeDefinition:
        reference = document(self._collection(ATTRIBUTES), key, "attribute")
        fields = {"label": label, "choices": list(choices), "updated_at": updated_at}

        async def body(transaction: Transaction) -> AttributeDefinition:
            (snapshot,) = await transaction.get(reference)
            data = existing(snapshot, "attribute")
            transaction.update(reference, fields)
            return _attribute_of(key, {**data, **fields})

        return await self.database.transact((ATTRIBUTES, key), body)

    async def drop_attribute(self, key: str) -> None:
        reference = document(self._collection(ATTRIBUTES), key, "attribute")

        async def body(transaction: Transaction) -> None:
            (snapshot,) = await transaction.get(reference)
            existing(snapshot, "attribute")
            transaction.delete(reference)

        await self.database.transact((ATTRIBUTES, key), body)

    # Notes.

    async def add_note(self, note: Note) -> None:
        entry = note_entry(note)
        batch = self.database.client.batch()
        batch.create(document(self._collection(NOTES), note.id, "note"), _note_fields(note))
        batch.set(self._collection(TIMELINE).document(entry.id), _entry_fields(entry))
        await batch.commit()

    async def get_note(self, note_id: str) -> Note:
        return _note(await document(self._collection(NOTES), note_id, "note").get())

    async def update_note(self, note_id: str, text: str, updated_at: datetime) -> Note:
        reference = document(self._collection(NOTES), note_id, "note")
        fields = {"text": text, "updated_at": updated_at}

        async def body(transaction: Transaction) -> Note:
            (snapshot,) = await transaction.get(reference)
            note = _note(snapshot)
            transaction.update(reference, fields)
            return Note(
                id=note.id,
                contact_id=note.contact_id,
                author_id=note.author_id,
                text=text,
                created_at=note.created_at,
                updated_at=updated_at,
            )

        return await self.database.transact((NOTES, note_id), body)

    async def delete_note(self, note_id: str) -> None:
        reference = document(self._collection(NOTES), note_id, "note")
        entry = self._collection(TIMELINE).document(note_entry_id(note_id))

        async def body(transaction: Transaction) -> None:
            (snapshot,) = await transaction.get(reference)
            existing(snapshot, "note")
            transaction.delete(reference)
            transaction.delete(entry)

        await self.database.transact((NOTES, note_id), body)

    async def list_notes(self, contact_id: str, cursor: str | None, limit: int) -> Page:
        return await self._contact_page(NOTES, "created_at", NOTE_PREFIX, contact_id, cursor, limit)

    # The timeline.

    async def add_entry(self, entry: TimelineEntry) -> bool:
        reference = document(self._collection(TIMELINE), entry.id, "timeline entry")
        try:
            await reference.create(_entry_fields(entry))
        except AlreadyExists:
            return False
        return True

    async def list_timeline(self, contact_id: str, cursor: str | None, limit: int) -> Page:
        return await self._contact_page(TIMELINE, "at", TIMELINE_PREFIX, contact_id, cursor, limit)

    # Segments.

    async def add_segment(self, segment: Segment) -> None:
        await document(self._collection(SEGMENTS), segment.id, "segment").create(
            {
                "name": segment.name,
                "description": segment.description,
                "filter_json": json_text(segment.filter),
                "created_by": segment.created_by,
                "created_at": segment.created_at,
                "updated_at": segment.updated_at,
            }
        )

    async def get_segment(self, segment_id: str) -> Segment:
        return _segment(await document(self._collection(SEGMENTS), segment_id, "segment").get())

    async def update_segment(
        self,
        segment_id: str,
        updated_at: datetime,
        name: str = UNSET,
        description: str | None = UNSET,
        filter: dict[str, Any] = UNSET,
    ) -> Segment:
        reference = document(self._collection(SEGMENTS), segment_id, "segment")
        fields: dict[str, Any] = {"updated_at": updated_at}
        if name is not UNSET:
            fields["name"] = name
        if description is not UNSET:
            fields["description"] = description
        if filter is not UNSET:
            fields["filter_json"] = json_text(filter)

        async def body(transaction: Transaction) -> Segment:
            (snapshot,) = await transaction.get(reference)
            data = existing(snapshot, "segment")
            transaction.update(reference, fields)
            return _segment_of(segment_id, {**data, **fields})

        return await self.database.transact((SEGMENTS, segment_id), body)

    async def delete_segment(self, segment_id: str) -> None:
        reference = document(self._collection(SEGMENTS), segment_id, "segment")

        async def body(transaction: Transaction) -> None:
            (snapshot,) = await transaction.get(reference)
            existing(snapshot, "segment")
            transaction.delete(reference)

        await self.database.transact((SEGMENTS, segment_id), body)

    async def list_segments(self, cursor: str | None, limit: int) -> Page:
        segments = self._collection(SEGMENTS)
        keyset = KeysetQuery(segments, segments, "created_at", True, SEGMENT_PREFIX)
        return await keyset.page(cursor, limit, _segment)

    # What follows a contact.

    async def move_contact(self, merged_id: str, survivor_id: str) -> int:
        if merged_id == survivor_id:
            return 0

        def move(batch: AsyncWriteBatch, snapshot: DocumentSnapshot) -> None:
            batch.update(snapshot.reference, {"contact_id": survivor_id})

        return await self._in_batches(merged_id, move)

    async def forget_contact(self, contact_id: str) -> int:
        def forget(batch: AsyncWriteBatch, snapshot: DocumentSnapshot) -> None:
            batch.delete(snapshot.reference)

        return await self._in_batches(contact_id, forget)

    async def _in_batches(
        self, contact_id: str, write: Callable[[AsyncWriteBatch, DocumentSnapshot], None]
    ) -> int:
        """``write`` each note and entry of the contact, :data:`BATCH` to a commit, until
        the query finds none left (each write takes the record out of it)."""
        if not _queryable(contact_id):
            return 0
        total = 0
        for name in (NOTES, TIMELINE):
            query = (
                self._collection(name)
                .where(filter=FieldFilter("contact_id", "==", contact_id))
                .limit(BATCH)
            )
            while True:
                found = [snapshot async for snapshot in query.stream()]
                if not found:
                    break
                batch = self.database.client.batch()
                for snapshot in found:
                    write(batch, snapshot)
                await batch.commit()
                total += len(found)
                if len(found) < BATCH:
                    break
        return total

    async def _contact_page(
        self,
        name: str,
        field: str,
        id_prefix: str,
        contact_id: str,
        cursor: str | None,
        limit: int,
    ) -> Page:
        collection = self._collection(name)
        keyset = KeysetQuery(
            collection,
            collection.where(filter=FieldFilter("contact_id", "==", contact_id)),
            field,
            True,
            id_prefix,
        )
        if not _queryable(contact_id):  # no contact has it
            decode_position(cursor, id_prefix)  # a bad cursor is still InvalidInput
            return Page([], None)
        return await keyset.page(cursor, limit, _note if name == NOTES else _entry)

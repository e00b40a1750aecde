"""The CRM's store on SQLite (tables ``crm_attributes``, ``crm_notes``, ``crm_timeline``
and ``crm_segments``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

from omnichannel_core.module import (
    UNSET,
    Conflict,
    NotFound,
    Page,
    decode_list_cursor,
    format_timestamp,
    parse_timestamp,
)
from omnichannel_core.module.sqlite import (
    SqliteDatabase,
    SqliteMigration,
    fetch_one,
    json_text,
    keyset_page,
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

MIGRATIONS: tuple[SqliteMigration, ...] = (
    """
    CREATE TABLE crm_attributes (
        key TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        label TEXT NOT NULL,
        choices TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE crm_notes (
        id TEXT PRIMARY KEY,
        contact_id TEXT NOT NULL,
        author_id TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX crm_notes_by_contact ON crm_notes (contact_id, created_at DESC, id DESC);
    CREATE TABLE crm_timeline (
        id TEXT PRIMARY KEY,
        contact_id TEXT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        conversation_id TEXT,
        message_id TEXT,
        note_id TEXT,
        data TEXT NOT NULL
    );
    CREATE INDEX crm_timeline_by_contact ON crm_timeline (contact_id, at DESC, id DESC);
    CREATE TABLE crm_segments (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT,
        filter TEXT NOT NULL,
        created_by TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX crm_segments_by_created ON crm_segments (created_at DESC, id DESC)
    """,
)
"""Step 1. Never change a released step: append the next one."""

BATCH = 500
"""Rows a write of :meth:`SqliteCrmStore.move_contact` or ``forget_contact`` changes: each
write holds the database's one writer (and the event loop's thread) briefly."""

MOVED_TABLES = ("crm_notes", "crm_timeline")
"""The tables whose rows belong to a contact (``contact_id``)."""


def _attribute(row: sqlite3.Row) -> AttributeDefinition:
    return AttributeDefinition(
        key=row["key"],
        type=AttributeType(row["type"]),
        label=row["label"],
        choices=tuple(json.loads(row["choices"])),
        created_at=parse_timestamp(row["created_at"]),
        updated_at=parse_timestamp(row["updated_at"]),
    )


def _note(row: sqlite3.Row) -> Note:
    return Note(
        id=row["id"],
        contact_id=row["contact_id"],
        author_id=row["author_id"],
        text=row["text"],
        created_at=parse_timestamp(row["created_at"]),
        updated_at=parse_timestamp(row["updated_at"]),
    )


def _entry(row: sqlite3.Row) -> TimelineEntry:
    return TimelineEntry(
        id=row["id"],
        contact_id=row["contact_id"],
        at=parse_timestamp(row["at"]),
        kind=TimelineKind(row["kind"]),
        conversation_id=row["conversation_id"],
        message_id=row["message_id"],
        note_id=row["note_id"],
        data=json.loads(row["data"]),
    )


def _segment(row: sqlite3.Row) -> Segment:
    return Segment(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        filter=json.loads(row["filter"]),
        created_by=row["created_by"],
        created_at=parse_timestamp(row["created_at"]),
        updated_at=parse_timestamp(row["updated_at"]),
    )


INSERT_ENTRY = (
    "INSERT INTO crm_timeline (id, contact_id, at, kind, conversation_id, message_id, note_id,"
    " data) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)


def _insert_entry(connection: sqlite3.Connection, entry: TimelineEntry) -> bool:
    inserted = connection.execute(
        INSERT_ENTRY,
        (
            entry.id,
            entry.contact_id,
            format_timestamp(entry.at),
            str(entry.kind),
            entry.conversation_id,
            entry.message_id,
            entry.note_id,
            json_text(entry.data),
        ),
    )
    return inserted.rowcount == 1


class SqliteCrmStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    # Attribute definitions.

    async def add_attribute(self, definition: AttributeDefinition) -> None:
        def write(connection: sqlite3.Connection) -> None:
            inserted = connection.execute(
                "INSERT INTO crm_attributes (key, type, label, choices, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                (
                    definition.key,
                    str(definition.type),
                    definition.label,
                    json_text(list(definition.choices)),
                    format_timestamp(definition.created_at),
                    format_timestamp(definition.updated_at),
                ),
            )
            if inserted.rowcount != 1:
                raise Conflict(
                    f"attribute {definition.key!r} is declared already", key=definition.key
                )

        await self.database.write(write)

    async def get_attribute(self, key: str) -> AttributeDefinition:
        def read(connection: sqlite3.Connection) -> AttributeDefinition:
            row = fetch_one(
                connection, "SELECT * FROM crm_attributes WHERE key = ?", (key,), "attribute"
            )
            return _attribute(row)

        return await self.database.read(read)

    async def list_attributes(self) -> list[AttributeDefinition]:
        def read(connection: sqlite3.Connection) -> list[AttributeDefinition]:
            rows = connection.execute("SELECT * FROM crm_attributes ORDER BY key").fetchall()
            return [_attribute(row) for row in rows]

        return await self.database.read(read)

    async def update_attribute(
        self, key: str, label: str, choices: tuple[str, ...], updated_at: datetime
    ) -> AttributeDefinition:
        def write(connection: sqlite3.Connection) -> AttributeDefinition:
            row = connection.execute(
                "UPDATE crm_attributes SET label = ?, choices = ?, updated_at = ?"
                " WHERE key = ? RETURNING *",
                (label, json_text(list(choices)), format_timestamp(updated_at), key),
            ).fetchone()
            if row is None:
                raise NotFound(f"attribute {key!r} not found", id=key)
            return _attribute(row)

        return await self.database.write(write)

    async def drop_attribute(self, key: str) -> None:
        def write(connection: sqlite3.Connection) -> None:
            deleted = connection.execute("DELETE FROM crm_attributes WHERE key = ?", (key,))
            if deleted.rowcount != 1:
                raise NotFound(f"attribute {key!r} not found", id=key)

        await self.database.write(write)

    # Notes.

    async def add_note(self, note: Note) -> None:
        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO crm_notes (id, contact_id, author_id, text, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    note.id,
                    note.contact_id,
                    note.author_id,
                    note.text,
                    format_timestamp(note.created_at),
                    format_timestamp(note.updated_at),
                ),
            )
            _insert_entry(connection, note_entry(note))

        await self.database.write(write)

    async def get_note(self, note_id: str) -> Note:
        def read(connection: sqlite3.Connection) -> Note:
            return _note(
                fetch_one(connection, "SELECT * FROM crm_notes WHERE id = ?", (note_id,), "note")
            )

        return await self.database.read(read)

    async def update_note(self, note_id: str, text: str, updated_at: datetime) -> Note:
        def write(connection: sqlite3.Connection) -> Note:
            row = connection.execute(
                "UPDATE crm_notes SET text = ?, updated_at = ? WHERE id = ? RETURNING *",
                (text, format_timestamp(updated_at), note_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"note {note_id!r} not found", id=note_id)
            return _note(row)

        return await self.database.write(write)

    async def delete_note(self, note_id: str) -> None:
        def write(connection: sqlite3.Connection) -> None:
            deleted = connection.execute("DELETE FROM crm_notes WHERE id = ?", (note_id,))
            if deleted.rowcount != 1:
                raise NotFound(f"note {note_id!r} not found", id=note_id)
            connection.execute("DELETE FROM crm_timeline WHERE id = ?", (note_entry_id(note_id),))

        await self.database.write(write)

    async def list_notes(self, contact_id: str, cursor: str | None, limit: int) -> Page:
        return await self._page(
            "SELECT * FROM crm_notes WHERE contact_id = ?",
            [contact_id],
            cursor,
            NOTE_PREFIX,
            ("created_at", "id"),
            limit,
            _note,
        )

    # The timeline.

    async def add_entry(self, entry: TimelineEntry) -> bool:
        return await self.database.write(lambda c: _insert_entry(c, entry))

    async def list_timeline(self, contact_id: str, cursor: str | None, limit: int) -> Page:
        return await self._page(
            "SELECT * FROM crm_timeline WHERE contact_id = ?",
            [contact_id],
            cursor,
            TIMELINE_PREFIX,
            ("at", "id"),
            limit,
            _entry,
        )

    # Segments.

    async def add_segment(self, segment: Segment) -> None:
        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO crm_segments (id, name, description, filter, created_by,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    segment.id,
                    segment.name,
                    segment.description,
                    json_text(segment.filter),
                    segment.created_by,
                    format_timestamp(segment.created_at),
                    format_timestamp(segment.updated_at),
                ),
            )

        await self.database.write(write)

    async def get_segment(self, segment_id: str) -> Segment:
        def read(connection: sqlite3.Connection) -> Segment:
            row = fetch_one(
                connection, "SELECT * FROM crm_segments WHERE id = ?", (segment_id,), "segment"
            )
            return _segment(row)

        return await self.database.read(read)

    async def update_segment(
        self,
        segment_id: str,
        updated_at: datetime,
        name: str = UNSET,
        description: str | None = UNSET,
        filter: dict[str, Any] = UNSET,
    ) -> Segment:
        columns: dict[str, Any] = {"updated_at": format_timestamp(updated_at)}
        if name is not UNSET:
            columns["name"] = name
        if description is not UNSET:
            columns["description"] = description
        if filter is not UNSET:
            columns["filter"] = json_text(filter)
        assignments = ", ".join(f"{column} = ?" for column in columns)

        def write(connection: sqlite3.Connection) -> Segment:
            row = connection.execute(
                f"UPDATE crm_segments SET {assignments} WHERE id = ? RETURNING *",  # noqa: S608
                (*columns.values(), segment_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"segment {segment_id!r} not found", id=segment_id)
            return _segment(row)

        return await self.database.write(write)

    async def delete_segment(self, segment_id: str) -> None:
        def write(connection: sqlite3.Connection) -> None:
            deleted = connection.execute("DELETE FROM crm_segments WHERE id = ?", (segment_id,))
            if deleted.rowcount != 1:
                raise NotFound(f"segment {segment_id!r} not found", id=segment_id)

        await self.database.write(write)

    async def list_segments(self, cursor: str | None, limit: int) -> Page:
        return await self._page(
            "SELECT * FROM crm_segments WHERE 1 = 1",
            [],
            cursor,
            SEGMENT_PREFIX,
            ("created_at", "id"),
            limit,
            _segment,
        )

    # What follows a contact.

    async def move_contact(self, merged_id: str, survivor_id: str) -> int:
        if merged_id == survivor_id:
            return 0

        def move(table: str) -> Callable[[sqlite3.Connection], int]:
            def write(connection: sqlite3.Connection) -> int:
                moved = connection.execute(
                    f"UPDATE {table} SET contact_id = ? WHERE id IN"  # noqa: S608
                    f" (SELECT id FROM {table} WHERE contact_id = ? LIMIT ?)",
                    (survivor_id, merged_id, BATCH),
                )
                return moved.rowcount

            return write

        return await self._in_batches(move)

    async def forget_contact(self, contact_id: str) -> int:
        def forget(table: str) -> Callable[[sqlite3.Connection], int]:
            def write(connection: sqlite3.Connection) -> int:
                deleted = connection.execute(
                    f"DELETE FROM {table} WHERE id IN"  # noqa: S608
                    f" (SELECT id FROM {table} WHERE contact_id = ? LIMIT ?)",
                    (contact_id, BATCH),
                )
                return deleted.rowcount

            return write

        return await self._in_batches(forget)

    async def _in_batches(
        self, batch_of: Callable[[str], Callable[[sqlite3.Connection], int]]
    ) -> int:
        """Run each table's batch write until one changes fewer than :data:`BATCH` rows."""
        total = 0
        for table in MOVED_TABLES:
            write = batch_of(table)
            while True:
                changed = await self.database.write(write)
                total += changed
                if changed < BATCH:
                    break
        return total

    async def _page(
        self,
        select: str,
        params: list[Any],
        cursor: str | None,
        id_prefix: str,
        key: tuple[str, str],
        limit: int,
        build: Callable[[sqlite3.Row], Any],
    ) -> Page:
        after = decode_list_cursor(cursor, id_prefix) if cursor else None  # bad: InvalidInput

        def read(connection: sqlite3.Connection) -> Page:
            return keyset_page(
                connection, select, params, after, key, descending=True, limit=limit, build=build
            )

        return await self.database.read(read)

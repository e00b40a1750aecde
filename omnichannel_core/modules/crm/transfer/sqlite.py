"""The imports' store on SQLite: table ``crm_imports``, one row per import. The job finds
its work by ``waiting_since`` (set while pending or running: a small partial index), and
saves over its own save only (``version``)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from omnichannel_core.module import (
    NotFound,
    Page,
    decode_list_cursor,
    format_timestamp,
    parse_timestamp,
    utcnow,
)
from omnichannel_core.module.sqlite import SqliteDatabase, SqliteMigration, keyset_page
from omnichannel_core.modules.crm.transfer.records import (
    IMPORT_PREFIX,
    WAITING,
    ContactImport,
    Dedupe,
    ImportState,
    OnMatch,
    RowError,
)

MIGRATIONS: tuple[SqliteMigration, ...] = (
    """
    CREATE TABLE crm_imports (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        media_id TEXT NOT NULL,
        mapping TEXT NOT NULL,
        dedupe TEXT NOT NULL,
        on_match TEXT NOT NULL,
        dry_run INTEGER NOT NULL,
        delimiter TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        size INTEGER NOT NULL,
        next_byte INTEGER NOT NULL,
        next_row INTEGER NOT NULL,
        rows_read INTEGER NOT NULL,
        created INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        skipped INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        errors TEXT NOT NULL,
        error TEXT,
        started_at TEXT,
        finished_at TEXT,
        batch_started_at TEXT,
        version INTEGER NOT NULL,
        waiting_since TEXT
    );
    CREATE INDEX crm_imports_newest ON crm_imports (created_at, id);
    CREATE INDEX crm_imports_waiting ON crm_imports (waiting_since, id)
        WHERE waiting_since IS NOT NULL
    """,
)
"""Step 1 of the ``crm_imports`` store. Never change a released step: append the next one."""

INSERT = (
    "INSERT INTO crm_imports (id, state, media_id, mapping, dedupe, on_match, dry_run,"
    " delimiter, created_by, created_at, updated_at, size, next_byte, next_row, rows_read,"
    " created, updated, skipped, failed, errors, error, started_at, finished_at,"
    " batch_started_at, version, waiting_since)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def _parsed(value: str | None) -> datetime | None:
    return None if value is None else parse_timestamp(value)


def _errors_text(errors: tuple[RowError, ...]) -> str:
    return json.dumps([[error.row, error.column, error.message] for error in errors])


def _values(record: ContactImport) -> tuple[Any, ...]:
    return (
        record.id,
        str(record.state),
        record.media_id,
        json.dumps(record.mapping),
        str(record.dedupe),
        str(record.on_match),
        int(record.dry_run),
        record.delimiter,
        record.created_by,
        format_timestamp(record.created_at),
        format_timestamp(record.updated_at),
        record.size,
        record.next_byte,
        record.next_row,
        record.rows_read,
        record.created,
        record.updated,
        record.skipped,
        record.failed,
        _errors_text(record.errors),
        record.error,
        _time(record.started_at),
        _time(record.finished_at),
        _time(record.batch_started_at),
        record.version,
        format_timestamp(record.created_at) if record.state in WAITING else None,
    )


def _import(row: sqlite3.Row) -> ContactImport:
    return ContactImport(
        id=row["id"],
        state=ImportState(row["state"]),
        media_id=row["media_id"],
        mapping=json.loads(row["mapping"]),
        dedupe=Dedupe(row["dedupe"]),
        on_match=OnMatch(row["on_match"]),
        dry_run=bool(row["dry_run"]),
        delimiter=row["delimiter"],
        created_by=row["created_by"],
        created_at=parse_timestamp(row["created_at"]),
        updated_at=parse_timestamp(row["updated_at"]),
        size=row["size"],
        next_byte=row["next_byte"],
        next_row=row["next_row"],
        rows_read=row["rows_read"],
        created=row["created"],
        updated=row["updated"],
        skipped=row["skipped"],
        failed=row["failed"],
        errors=tuple(RowError(*error) for error in json.loads(row["errors"])),
        error=row["error"],
        started_at=_parsed(row["started_at"]),
        finished_at=_parsed(row["finished_at"]),
        batch_started_at=_parsed(row["batch_started_at"]),
        version=row["version"],
    )


def _get(connection: sqlite3.Connection, import_id: str) -> ContactImport:
    row = connection.execute("SELECT * FROM crm_imports WHERE id = ?", (import_id,)).fetchone()
    if row is None:
        raise NotFound(f"import {import_id!r} not found", id=import_id)
    return _import(row)


# A cancelled import keeps its state, end and (absent) waiting mark: only the counts change.
SAVE = """
UPDATE crm_imports SET
    state = CASE WHEN state = 'cancelled' THEN state ELSE ? END,
    updated_at = ?, next_byte = ?, next_row = ?, rows_read = ?, created = ?, updated = ?,
    skipped = ?, failed = ?, errors = ?, error = ?, started_at = ?,
    finished_at = CASE WHEN state = 'cancelled' THEN finished_at ELSE ? END,
    batch_started_at = CASE WHEN state = 'cancelled' THEN NULL ELSE ? END,
    waiting_since = CASE WHEN state = 'cancelled' THEN NULL ELSE ? END,
    version = ?
WHERE id = ? AND version = ?
"""

CANCEL = """
UPDATE crm_imports SET state = 'cancelled', finished_at = ?, updated_at = ?,
    batch_started_at = NULL, waiting_since = NULL
WHERE id = ? AND state IN ('pending', 'running')
"""


class SqliteImportStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    async def add_import(self, record: ContactImport) -> None:
        values = _values(record)

        def write(connection: sqlite3.Connection) -> None:
            connection.execute(INSERT, values)

        await self.database.write(write)

    async def get_import(self, import_id: str) -> ContactImport:
        return await self.database.read(lambda connection: _get(connection, import_id))

    async def list_imports(self, cursor: str | None, limit: int) -> Page:
        after = list(decode_list_cursor(cursor, IMPORT_PREFIX)) if cursor else None

        def read(connection: sqlite3.Connection) -> Page:
            select = "SELECT * FROM crm_imports WHERE 1 = 1"
            key = ("created_at", "id")
            return keyset_page(connection, select, [], after, key, True, limit, _import)

        return await self.database.read(read)

    async def next_import(self) -> ContactImport | None:
        def read(connection: sqlite3.Connection) -> ContactImport | None:
            row = connection.execute(
                "SELECT * FROM crm_imports WHERE waiting_since IS NOT NULL"
                " ORDER BY waiting_since, id LIMIT 1"
            ).fetchone()
            return None if row is None else _import(row)

        return await self.database.read(read)

    async def save_import(self, record: ContactImport, version: int) -> ContactImport | None:
        waiting = format_timestamp(record.created_at) if record.state in WAITING else None
        values = (
            str(record.state),
            format_timestamp(record.updated_at),
            record.next_byte,
            record.next_row,
            record.rows_read,
            record.created,
            record.updated,
            record.skipped,
            record.failed,
            _errors_text(record.errors),
            record.error,
            _time(record.started_at),
            _time(record.finished_at),
            _time(record.batch_started_at),
            waiting,
            version + 1,
            record.id,
            version,
        )

        def write(connection: sqlite3.Connection) -> ContactImport | None:
            if connection.execute(SAVE, values).rowcount == 0:
                return None
            return _get(connection, record.id)

        return await self.database.write(write)

    async def cancel_import(self, import_id: str) -> ContactImport:
        now = format_timestamp(utcnow())

        def write(connection: sqlite3.Connection) -> ContactImport:
            connection.execute(CANCEL, (now, now, import_id))
            return _get(connection, import_id)

        return await self.database.write(write)

    async def count_waiting(self) -> int:
        def read(connection: sqlite3.Connection) -> int:
            row = connection.execute(
                "SELECT count(*) FROM crm_imports WHERE waiting_since IS NOT NULL"
            ).fetchone()
            return int(row[0])

        return await self.database.read(read)

"""The audit log in SQLite (`omnichannel_core.audit`): append-only by the database's own
rule, whoever writes to the file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from omnichannel_core.audit import AuditEntry
from omnichannel_core.errors import Conflict
from omnichannel_core.paging import Page, decode_list_cursor
from omnichannel_core.store.specs import SqliteMigration
from omnichannel_core.store.sqlite.rows import json_text, keyset_page
from omnichannel_core.timestamps import format_timestamp, parse_timestamp

if TYPE_CHECKING:
    from omnichannel_core.store.sqlite.database import SqliteDatabase

AUDIT_TABLE = """
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT,
    target_type TEXT,
    target_id TEXT,
    details TEXT NOT NULL DEFAULT '{}',
    client_address TEXT,
    at TEXT NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_by_action ON audit_log (action, at DESC, id DESC)
"""

AUDIT_LOG_TRIGGERS = (
    """
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END
    """,
    """
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END
    """,
    # INSERT OR REPLACE deletes the row it replaces without firing DELETE triggers (unless
    # recursive_triggers is on): refuse an insert whose id is taken before it gets there.
    """
    CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log
    WHEN EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id)
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END
    """,
)
"""The audit log is append-only by the database's own rule, whoever writes to the file."""


def create_audit_log(connection: sqlite3.Connection) -> None:
    """Migration step: the table, then each trigger alone (a trigger's body holds ``;``,
    which a SQL migration splits on)."""
    for statement in AUDIT_TABLE.split(";"):
        if statement.strip():
            connection.execute(statement)
    for trigger in AUDIT_LOG_TRIGGERS:
        connection.execute(trigger)


AUDIT_MIGRATIONS: tuple[SqliteMigration, ...] = (create_audit_log,)
"""The kernel's ``audit`` store; made by the pre-module schema's migration 6."""


def audit_entry_from_row(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        action=row["action"],
        actor_type=row["actor_type"],
        actor_id=row["actor_id"],
        target_type=row["target_type"],
        target_id=row["target_id"],
        details=json.loads(row["details"]),
        client_address=row["client_address"],
        at=parse_timestamp(row["at"]),
    )


def append_audit(connection: sqlite3.Connection, entry: AuditEntry) -> None:
    """Insert the entry in the write that runs on ``connection`` (it is kept if, and when,
    that write commits); Conflict when its id is taken (the stored one stays as it was)."""
    try:
        connection.execute(
            "INSERT INTO audit_log (id, action, actor_type, actor_id, target_type, target_id,"
            " details, client_address, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.id,
                entry.action,
                entry.actor_type,
                entry.actor_id,
                entry.target_type,
                entry.target_id,
                json_text(entry.details),
                entry.client_address,
                format_timestamp(entry.at),
            ),
        )
    except sqlite3.IntegrityError as error:
        if "append-only" not in str(error):  # not the trigger that refuses a taken id
            raise
        raise Conflict(f"audit entry {entry.id!r} exists", id=entry.id) from None


def list_audit(
    connection: sqlite3.Connection, action: str | None, after: Sequence[Any] | None, limit: int
) -> Page:
    select, params = "SELECT * FROM audit_log WHERE 1 = 1", []
    if action is not None:
        select += " AND action = ?"
        params.append(action)
    return keyset_page(
        connection,
        select,
        params,
        after,
        ("at", "id"),
        descending=True,
        limit=limit,
        build=audit_entry_from_row,
    )


class SqliteAuditLog:
    """:class:`omnichannel_core.audit.AuditLog` on the SQLite database."""

    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    async def append(self, entry: AuditEntry) -> None:
        await self.database.write(lambda c: append_audit(c, entry))

    async def list(self, action: str | None, cursor: str | None, limit: int) -> Page:
        after = decode_list_cursor(cursor, "aud") if cursor else None
        return await self.database.read(lambda c: list_audit(c, action, after, limit))

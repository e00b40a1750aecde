"""The settings' store on SQLite (tables ``settings``, one row, and
``settings_canned_responses``; the away ledger in ``settings_away_sent``, a row per channel
and contact, and ``settings_away_hours``, a row per channel)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

import attrs

from omnichannel_core.module import (
    AuditEntry,
    Conflict,
    Page,
    format_timestamp,
    from_json,
    parse_timestamp,
    utcnow,
)
from omnichannel_core.module.sqlite import (
    SqliteDatabase,
    SqliteMigration,
    append_audit,
    append_event,
    fetch_one,
    json_text,
)
from omnichannel_core.modules.settings.records import CannedResponse, Settings
from omnichannel_core.modules.settings.store import (
    SETTINGS_RECORD,
    SETTINGS_UPDATED,
    AwayClaim,
    AwayHour,
    AwaySent,
    AwayVerdict,
    CannedChange,
    SettingsChange,
    away_verdict,
    shortcut_cursor,
    shortcut_of_cursor,
)

MIGRATIONS: tuple[SqliteMigration, ...] = (
    """
    CREATE TABLE settings (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL,
        data TEXT NOT NULL
    );
    CREATE TABLE settings_canned_responses (
        id TEXT PRIMARY KEY,
        shortcut TEXT NOT NULL UNIQUE,
        data TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE settings_away_sent (
        channel TEXT NOT NULL,
        contact_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        PRIMARY KEY (channel, contact_id)
    );
    CREATE TABLE settings_away_hours (
        channel TEXT PRIMARY KEY,
        hour TEXT NOT NULL,
        sent INTEGER NOT NULL
    )
    """,
)
"""Steps 1 and 2 (the away ledger). Never change a released step: append the next one."""


def _settings(row: sqlite3.Row | None) -> Settings:
    if row is None:
        return Settings()
    return attrs.evolve(from_json(json.loads(row["data"]), Settings), version=row["version"])


def _canned(row: sqlite3.Row) -> CannedResponse:
    return from_json(json.loads(row["data"]), CannedResponse)


def _read_settings(connection: sqlite3.Connection) -> Settings:
    row = connection.execute("SELECT version, data FROM settings WHERE id = 1").fetchone()
    return _settings(row)


def _bump(connection: sqlite3.Connection, settings: Settings, audit: AuditEntry | None) -> int:
    """Store ``settings`` as the next version, log the event and append ``audit``; the new
    version."""
    version = _read_settings(connection).version + 1
    stored = attrs.evolve(settings, version=version)
    connection.execute(
        "INSERT INTO settings (id, version, data) VALUES (1, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET version = excluded.version, data = excluded.data",
        (version, json_text(stored)),
    )
    append_event(connection, SETTINGS_UPDATED, SETTINGS_RECORD, data={"version": version})
    if audit is not None:
        append_audit(connection, audit)
    return version


def _taken(shortcut: str) -> Conflict:
    return Conflict(f"shortcut: {shortcut!r} is another canned response's", field="shortcut")


class SqliteSettingsStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    async def get(self) -> Settings:
        return await self.database.read(_read_settings)

    async def version(self) -> int:
        def read(connection: sqlite3.Connection) -> int:
            row = connection.execute("SELECT version FROM settings WHERE id = 1").fetchone()
            return 0 if row is None else int(row[0])

        return await self.database.read(read)

    async def change(self, change: SettingsChange, by: str | None) -> Settings:
        def write(connection: sqlite3.Connection) -> Settings:
            stored = _read_settings(connection)
            changed, audit = change(stored)
            if changed == stored:
                return stored
            changed = attrs.evolve(changed, updated_at=utcnow(), updated_by=by)
            return attrs.evolve(changed, version=_bump(connection, changed, audit))

        return await self.database.write(write)

    async def canned_responses(self, cursor: str | None, limit: int) -> Page:
        after = "" if cursor is None else shortcut_of_cursor(cursor)

        def read(connection: sqlite3.Connection) -> Page:
            rows = connection.execute(
                "SELECT data FROM settings_canned_responses WHERE shortcut > ?"
                " ORDER BY shortcut LIMIT ?",
                (after, limit + 1),
            ).fetchall()
            items = [_canned(row) for row in rows[:limit]]
            next_cursor = shortcut_cursor(items[-1].shortcut) if len(rows) > limit else None
            return Page(items, next_cursor)

        return await self.database.read(read)

    async def canned_response(self, response_id: str) -> CannedResponse:
        def read(connection: sqlite3.Connection) -> CannedResponse:
            sql = "SELECT data FROM settings_canned_responses WHERE id = ?"
            return _canned(fetch_one(connection, sql, (response_id,), "canned response"))

        return await self.database.read(read)

    async def count_canned_responses(self) -> int:
        def read(connection: sqlite3.Connection) -> int:
            row = connection.execute("SELECT count(*) FROM settings_canned_responses").fetchone()
            return int(row[0])

        return await self.database.read(read)

    async def create_canned_response(
        self, response: CannedResponse, audit: AuditEntry | None
    ) -> CannedResponse:
        def write(connection: sqlite3.Connection) -> CannedResponse:
            inserted = connection.execute(
                "INSERT INTO settings_canned_responses (id, shortcut, data) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (response.id, response.shortcut, json_text(response)),
            )
            if inserted.rowcount != 1:
                raise _taken(response.shortcut)
            _bump(connection, _read_settings(connection), audit)
            return response

        return await self.database.write(write)

    async def change_canned_response(
        self, response_id: str, change: CannedChange, by: str | None
    ) -> CannedResponse:
        def write(connection: sqlite3.Connection) -> CannedResponse:
            sql = "SELECT data FROM settings_canned_responses WHERE id = ?"
            stored = _canned(fetch_one(connection, sql, (response_id,), "canned response"))
            changed, audit = change(stored)
            if changed == stored:
                return stored
            changed = attrs.evolve(changed, updated_at=utcnow(), updated_by=by)
            other = connection.execute(
                "SELECT id FROM settings_canned_responses WHERE shortcut = ? AND id != ?",
                (changed.shortcut, response_id),
            ).fetchone()
            if other is not None:
                raise _taken(changed.shortcut)
            connection.execute(
                "UPDATE settings_canned_responses SET shortcut = ?, data = ? WHERE id = ?",
                (changed.shortcut, json_text(changed), response_id),
            )
            _bump(connection, _read_settings(connection), audit)
            return changed

        return await self.database.write(write)

    async def delete_canned_response(
        self, response_id: str, audit: Callable[[CannedResponse], AuditEntry | None]
    ) -> None:
        def write(connection: sqlite3.Connection) -> None:
            sql = "SELECT data FROM settings_canned_responses WHERE id = ?"
            stored = _canned(fetch_one(connection, sql, (response_id,), "canned response"))
            connection.execute("DELETE FROM settings_canned_responses WHERE id = ?", (response_id,))
            _bump(connection, _read_settings(connection), audit(stored))

        await self.database.write(write)

    async def claim_away(self, claim: AwayClaim) -> AwayVerdict:
        def write(connection: sqlite3.Connection) -> AwayVerdict:
            row = connection.execute(
                "SELECT message_id, sent_at FROM settings_away_sent"
                " WHERE channel = ? AND contact_id = ?",
                (claim.channel, claim.contact_id),
            ).fetchone()
            sent = None if row is None else AwaySent(row[0], parse_timestamp(row[1]))
            row = connection.execute(
                "SELECT hour, sent FROM settings_away_hours WHERE channel = ?", (claim.channel,)
            ).fetchone()
            hour = None if row is None else AwayHour(row[0], int(row[1]))
            verdict, counted = away_verdict(claim, sent, hour)
            if verdict is AwayVerdict.SEND and counted is not None:
                connection.execute(
                    "INSERT INTO settings_away_sent (channel, contact_id, message_id, sent_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (channel, contact_id) DO UPDATE SET"
                    " message_id = excluded.message_id, sent_at = excluded.sent_at",
                    (claim.channel, claim.contact_id, claim.message_id, format_timestamp(claim.at)),
                )
                connection.execute(
                    "INSERT INTO settings_away_hours (channel, hour, sent) VALUES (?, ?, ?)"
                    " ON CONFLICT (channel) DO UPDATE SET hour = excluded.hour,"
                    " sent = excluded.sent",
                    (claim.channel, counted.hour, counted.sent),
                )
            return verdict

        return await self.database.write(write)

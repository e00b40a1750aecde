"""The job runner's leases and subscribers' cursors in SQLite (`omnichannel_core.store.protocols`).

A lease is one row per job; taking it is one conditional upsert, so two runners asking at
once cannot both get it (writes are serialized, see the runner).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from omnichannel_core.store.protocols import Lease, SubscriberState
from omnichannel_core.store.specs import SqliteMigration
from omnichannel_core.timestamps import format_timestamp, parse_timestamp, utcnow

if TYPE_CHECKING:
    from omnichannel_core.store.sqlite.database import SqliteDatabase

JOB_MIGRATIONS: tuple[SqliteMigration, ...] = (
    """
    CREATE TABLE job_leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        last_run_at TEXT
    ) WITHOUT ROWID;

    CREATE TABLE subscriber_cursors (
        name TEXT PRIMARY KEY,
        cursor TEXT,
        updated_at TEXT NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        behind INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID
    """,
    # 2: resyncs asked for and done (`SubscriberState.resync`), apart from retention's mark.
    """
    ALTER TABLE subscriber_cursors ADD COLUMN resync_asked INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE subscriber_cursors ADD COLUMN resynced INTEGER NOT NULL DEFAULT 0
    """,
)
"""The kernel's ``jobs`` store."""


def _optional_time(value: str | None) -> datetime | None:
    return None if value is None else parse_timestamp(value)


def _lease(row: sqlite3.Row) -> Lease:
    return Lease(
        name=row["name"],
        holder=row["holder"],
        expires_at=parse_timestamp(row["expires_at"]),
        last_run_at=_optional_time(row["last_run_at"]),
    )


def _subscriber(row: sqlite3.Row) -> SubscriberState:
    return SubscriberState(
        name=row["name"],
        cursor=row["cursor"],
        updated_at=parse_timestamp(row["updated_at"]),
        failures=row["failures"],
        last_error=row["last_error"],
        behind=bool(row["behind"]),
        resync_asked=row["resync_asked"],
        resynced=row["resynced"],
    )


def take_lease(
    connection: sqlite3.Connection, name: str, holder: str, ttl: timedelta, now: datetime
) -> Lease | None:
    row = connection.execute(
        "INSERT INTO job_leases (name, holder, expires_at) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
        " expires_at = excluded.expires_at"
        " WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= ?"
        " RETURNING *",
        (name, holder, format_timestamp(now + ttl), format_timestamp(now)),
    ).fetchone()
    return None if row is None else _lease(row)


class SqliteJobStore:
    """:class:`omnichannel_core.store.protocols.JobStore` on the SQLite database."""

    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    async def take_lease(
        self, name: str, holder: str, ttl: timedelta, now: datetime
    ) -> Lease | None:
        return await self.database.write(lambda c: take_lease(c, name, holder, ttl, now))

    async def release_lease(self, name: str, holder: str) -> None:
        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                "UPDATE job_leases SET expires_at = ? WHERE name = ? AND holder = ?",
                (format_timestamp(utcnow()), name, holder),
            )

        await self.database.write(write)

    async def record_run(self, name: str, holder: str, at: datetime) -> None:
        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                "UPDATE job_leases SET last_run_at = ? WHERE name = ? AND holder = ?",
                (format_timestamp(at), name, holder),
            )

        await self.database.write(write)

    async def leases(self) -> list[Lease]:
        def read(connection: sqlite3.Connection) -> list[Lease]:
            rows = connection.execute("SELECT * FROM job_leases ORDER BY name").fetchall()
            return [_lease(row) for row in rows]

        return await self.database.read(read)

    async def subscriber(self, name: str) -> SubscriberState | None:
        def read(connection: sqlite3.Connection) -> SubscriberState | None:
            row = connection.execute(
                "SELECT * FROM subscriber_cursors WHERE name = ?", (name,)
            ).fetchone()
            return None if row is None else _subscriber(row)

        return await self.database.read(read)

    async def start_subscriber(self, state: SubscriberState) -> SubscriberState:
        def write(connection: sqlite3.Connection) -> SubscriberState:
            connection.execute(
                "INSERT INTO subscriber_cursors (name, cursor, updated_at, failures, last_error,"
                " behind, resync_asked) VALUES (?, ?, ?, 0, NULL, ?, ?)"
                " ON CONFLICT (name) DO NOTHING",
                (
                    state.name,
                    state.cursor,
                    format_timestamp(state.updated_at),
                    int(state.behind),
                    state.resync_asked,
                ),
            )
            row = connection.execute(
                "SELECT * FROM subscriber_cursors WHERE name = ?", (state.name,)
            ).fetchone()
            return _subscriber(row)

        return await self.database.write(write)

    async def save_subscriber(self, state: SubscriberState) -> None:
        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO subscriber_cursors"
                " (name, cursor, updated_at, failures, last_error, behind, resynced)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " cursor = excluded.cursor, updated_at = excluded.updated_at,"
                " failures = excluded.failures, last_error = excluded.last_error,"
                " behind = excluded.behind, resynced = excluded.resynced",
                (
                    state.name,
                    state.cursor,
                    format_timestamp(state.updated_at),
                    state.failures,
                    state.last_error,
                    int(state.behind),
                    state.resynced,
                ),
            )

        await self.database.write(write)

    async def mark_behind(self, name: str) -> None:
        def write(connection: sqlite3.Connection) -> None:
            connection.execute("UPDATE subscriber_cursors SET behind = 1 WHERE name = ?", (name,))

        await self.database.write(write)

    async def ask_resync(self, name: str) -> int:
        def write(connection: sqlite3.Connection) -> int:
            row = connection.execute(
                "UPDATE subscriber_cursors SET resync_asked = resync_asked + 1 WHERE name = ?"
                " RETURNING resync_asked",
                (name,),
            ).fetchone()
            return 0 if row is None else int(row["resync_asked"])

        return await self.database.write(write)

    async def subscribers(self) -> list[SubscriberState]:
        def read(connection: sqlite3.Connection) -> list[SubscriberState]:
            rows = connection.execute("SELECT * FROM subscriber_cursors ORDER BY name").fetchall()
            return [_subscriber(row) for row in rows]

        return await self.database.read(read)

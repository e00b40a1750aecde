"""Presence on SQLite: tables ``presence_streams`` (one row per open event stream) and
``presence_statuses`` (one row per user who set a status)."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from datetime import datetime

from omnichannel_core.module import format_timestamp, parse_timestamp
from omnichannel_core.module.sqlite import SqliteDatabase, SqliteMigration
from omnichannel_core.modules.events.presence.records import OpenStream, Status, UserStatus

MIGRATIONS: tuple[SqliteMigration, ...] = (
    """
    CREATE TABLE presence_streams (
        stream_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        process TEXT NOT NULL,
        opened_at TEXT NOT NULL,
        seen_at TEXT NOT NULL
    );
    CREATE INDEX presence_streams_by_seen ON presence_streams (seen_at);
    CREATE INDEX presence_streams_by_user ON presence_streams (user_id, seen_at);
    CREATE TABLE presence_statuses (
        user_id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        changed_at TEXT NOT NULL
    )
    """,
)
"""Step 1. Never change a released step: append the next one."""

STATUSES_PER_QUERY = 500
"""User ids asked in one statement (SQLite limits a statement's parameters)."""


def _stream(row: sqlite3.Row) -> OpenStream:
    return OpenStream(
        stream_id=row["stream_id"],
        user_id=row["user_id"],
        process=row["process"],
        opened_at=parse_timestamp(row["opened_at"]),
        seen_at=parse_timestamp(row["seen_at"]),
    )


class SqlitePresenceStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    async def keep_stream(self, stream: OpenStream) -> None:
        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO presence_streams"
                " (stream_id, user_id, process, opened_at, seen_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (stream_id) DO UPDATE SET user_id = excluded.user_id,"
                " process = excluded.process, opened_at = excluded.opened_at,"
                " seen_at = excluded.seen_at",
                (
                    stream.stream_id,
                    stream.user_id,
                    stream.process,
                    format_timestamp(stream.opened_at),
                    format_timestamp(stream.seen_at),
                ),
            )

        await self.database.write(write)

    async def drop_stream(self, stream_id: str) -> None:
        def write(connection: sqlite3.Connection) -> None:
            connection.execute("DELETE FROM presence_streams WHERE stream_id = ?", (stream_id,))

        await self.database.write(write)

    async def streams(self, seen_since: datetime, user_id: str | None = None) -> list[OpenStream]:
        since = format_timestamp(seen_since)

        def read(connection: sqlite3.Connection) -> list[OpenStream]:
            if user_id is None:
                rows = connection.execute(
                    "SELECT * FROM presence_streams WHERE seen_at >= ?", (since,)
                )
            else:
                rows = connection.execute(
                    "SELECT * FROM presence_streams WHERE user_id = ? AND seen_at >= ?",
                    (user_id, since),
                )
            return [_stream(row) for row in rows]

        return await self.database.read(read)

    async def prune_streams(self, seen_before: datetime) -> int:
        before = format_timestamp(seen_before)

        def write(connection: sqlite3.Connection) -> int:
            pruned = connection.execute("DELETE FROM presence_streams WHERE seen_at < ?", (before,))
            return pruned.rowcount

        return await self.database.write(write)

    async def set_status(self, status: UserStatus) -> None:
        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO presence_statuses (user_id, status, changed_at) VALUES (?, ?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET status = excluded.status,"
                " changed_at = excluded.changed_at",
                (status.user_id, status.status.value, format_timestamp(status.changed_at)),
            )

        await self.database.write(write)

    async def statuses(self, user_ids: Collection[str]) -> dict[str, UserStatus]:
        wanted = list(dict.fromkeys(user_ids))

        def read(connection: sqlite3.Connection) -> dict[str, UserStatus]:
            found: dict[str, UserStatus] = {}
            for start in range(0, len(wanted), STATUSES_PER_QUERY):
                chunk = wanted[start : start + STATUSES_PER_QUERY]
                marks = ", ".join("?" * len(chunk))
                rows = connection.execute(
                    f"SELECT * FROM presence_statuses WHERE user_id IN ({marks})",  # noqa: S608 - only placeholders
                    chunk,
                )
                for row in rows:
                    found[row["user_id"]] = UserStatus(
                        row["user_id"], Status(row["status"]), parse_timestamp(row["changed_at"])
                    )
            return found

        return await self.database.read(read)

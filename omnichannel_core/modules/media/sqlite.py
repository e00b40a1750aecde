"""The media module's store on SQLite (tables ``media_items``, ``media_holders``,
``media_fetches`` and ``media_erasures``).

Every write runs in one transaction of the database's single writer: the claim that
:meth:`SqliteMediaStore.add_media` reads and the one :meth:`SqliteMediaStore.forget_media`
takes are serialized with each other."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from omnichannel_core.module import Media, NotFound, format_timestamp, parse_timestamp
from omnichannel_core.module.sqlite import SqliteDatabase, SqliteMigration, json_text
from omnichannel_core.modules.media.records import (
    FetchState,
    ForgottenItems,
    PendingFetch,
    StoredMedia,
)

MIGRATIONS: tuple[SqliteMigration, ...] = (
    """
    CREATE TABLE media_items (
        id TEXT PRIMARY KEY,
        content_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        filename TEXT,
        sha256 TEXT NOT NULL,
        created_at TEXT NOT NULL,
        uploaded_by TEXT
    );
    CREATE TABLE media_fetches (
        message_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        channel TEXT NOT NULL,
        media TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        due_at TEXT,
        failing_since TEXT,
        error TEXT,
        media_id TEXT,
        updated_at TEXT,
        PRIMARY KEY (message_id, idx)
    );
    CREATE INDEX media_fetches_due ON media_fetches (due_at) WHERE due_at IS NOT NULL
    """,
    """
    CREATE TABLE media_holders (
        media_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        PRIMARY KEY (media_id, message_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE INDEX media_items_sha256 ON media_items (sha256);
    CREATE INDEX media_fetches_media_id ON media_fetches (media_id) WHERE media_id IS NOT NULL;
    CREATE TABLE media_erasures (
        sha256 TEXT NOT NULL,
        claim TEXT NOT NULL,
        claimed_at TEXT NOT NULL,
        PRIMARY KEY (sha256, claim)
    ) WITHOUT ROWID
    """,
)
"""Steps 1, 2 (which messages hold an item: who may attach it) and 3 (forgetting: items and
fetches found by what they name, erasure claims). Never change a released step: append the
next one."""


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def _parsed(value: str | None) -> datetime | None:
    return None if value is None else parse_timestamp(value)


def _media(row: sqlite3.Row) -> StoredMedia:
    return StoredMedia(
        id=row["id"],
        content_type=row["content_type"],
        size=row["size"],
        filename=row["filename"],
        sha256=row["sha256"],
        created_at=parse_timestamp(row["created_at"]),
        uploaded_by=row["uploaded_by"],
    )


def _fetch(row: sqlite3.Row) -> PendingFetch:
    return PendingFetch(
        message_id=row["message_id"],
        index=row["idx"],
        channel=row["channel"],
        media=Media(**json.loads(row["media"])),
        state=FetchState(row["state"]),
        attempts=row["attempts"],
        due_at=_parsed(row["due_at"]),
        failing_since=_parsed(row["failing_since"]),
        error=row["error"],
        media_id=row["media_id"],
        updated_at=_parsed(row["updated_at"]),
    )


def _fetch_values(fetch: PendingFetch) -> tuple[Any, ...]:
    return (
        fetch.message_id,
        fetch.index,
        fetch.channel,
        json_text(fetch.media),
        str(fetch.state),
        fetch.attempts,
        _time(fetch.due_at),
        _time(fetch.failing_since),
        fetch.error,
        fetch.media_id,
        _time(fetch.updated_at),
    )


INSERT_FETCH = (
    "INSERT INTO media_fetches (message_id, idx, channel, media, state, attempts, due_at,"
    " failing_since, error, media_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (message_id, idx) DO NOTHING"
)
SAVE_FETCH = (
    "UPDATE media_fetches SET channel = ?, media = ?, state = ?, attempts = ?, due_at = ?,"
    " failing_since = ?, error = ?, media_id = ?, updated_at = ?"
    " WHERE message_id = ? AND idx = ?"
)


class SqliteMediaStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    async def add_media(self, media: StoredMedia) -> datetime | None:
        def write(connection: sqlite3.Connection) -> datetime | None:
            claimed = connection.execute(
                "SELECT max(claimed_at) AS newest FROM media_erasures WHERE sha256 = ?",
                (media.sha256,),
            ).fetchone()
            if claimed["newest"] is not None:
                return parse_timestamp(claimed["newest"])
            connection.execute(
                "INSERT INTO media_items"
                " (id, content_type, size, filename, sha256, created_at, uploaded_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    media.id,
                    media.content_type,
                    media.size,
                    media.filename,
                    media.sha256,
                    format_timestamp(media.created_at),
                    media.uploaded_by,
                ),
            )
            return None

        return await self.database.write(write)

    async def get_media(self, media_id: str) -> StoredMedia:
        def read(connection: sqlite3.Connection) -> StoredMedia:
            row = connection.execute(
                "SELECT * FROM media_items WHERE id = ?", (media_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"media {media_id!r} not found", id=media_id)
            return _media(row)

        return await self.database.read(read)

    async def add_holders(self, message_id: str, media_ids: Sequence[str]) -> None:
        def write(connection: sqlite3.Connection) -> None:
            connection.executemany(
                "INSERT INTO media_holders (media_id, message_id) VALUES (?, ?)"
                " ON CONFLICT (media_id, message_id) DO NOTHING",
                [(media_id, message_id) for media_id in media_ids],
            )

        if media_ids:
            await self.database.write(write)

    async def holders(self, media_id: str, limit: int) -> list[str]:
        def read(connection: sqlite3.Connection) -> list[str]:
            rows = connection.execute(
                "SELECT message_id FROM media_holders WHERE media_id = ?"
                " ORDER BY message_id DESC LIMIT ?",
                (media_id, limit),
            ).fetchall()
            return [row["message_id"] for row in rows]

        return await self.database.read(read)

    async def expect_fetch(self, fetch: PendingFetch) -> bool:
        def write(connection: sqlite3.Connection) -> bool:
            inserted = connection.execute(
                INSERT_FETCH,
                _fetch_values(fetch),
            )
            return inserted.rowcount == 1

        return await self.database.write(write)

    async def get_fetch(self, message_id: str, index: int) -> PendingFetch | None:
        def read(connection: sqlite3.Connection) -> PendingFetch | None:
            row = connection.execute(
                "SELECT * FROM media_fetches WHERE message_id = ? AND idx = ?",
                (message_id, index),
            ).fetchone()
            return None if row is None else _fetch(row)

        return await self.database.read(read)

    async def save_fetch(self, fetch: PendingFetch) -> None:
        def write(connection: sqlite3.Connection) -> None:
            message_id, index, *fields = _fetch_values(fetch)
            connection.execute(SAVE_FETCH, (*fields, message_id, index))

        await self.database.write(write)

    async def due_fetches(self, now: datetime, limit: int) -> list[PendingFetch]:
        def read(connection: sqlite3.Connection) -> list[PendingFetch]:
            rows = connection.execute(
                "SELECT * FROM media_fetches WHERE due_at IS NOT NULL AND due_at <= ?"
                " ORDER BY due_at LIMIT ?",
                (format_timestamp(now), limit),
            ).fetchall()
            return [_fetch(row) for row in rows]

        return await self.database.read(read)

    async def next_due_at(self) -> datetime | None:
        def read(connection: sqlite3.Connection) -> datetime | None:
            row = connection.execute(
                "SELECT min(due_at) AS due FROM media_fetches WHERE due_at IS NOT NULL"
            ).fetchone()
            return _parsed(row["due"])

        return await self.database.read(read)

    async def count_pending(self) -> int:
        def read(connection: sqlite3.Connection) -> int:
            row = connection.execute(
                "SELECT count(*) AS pending FROM media_fetches WHERE due_at IS NOT NULL"
            ).fetchone()
            return int(row["pending"])

        return await self.database.read(read)

    async def forget_media(
        self, media_ids: Collection[str], claim: str, now: datetime
    ) -> ForgottenItems:
        unique = list(dict.fromkeys(media_ids))

        def write(connection: sqlite3.Connection) -> ForgottenItems:
            forgotten = 0
            digests: dict[str, None] = {}
            for media_id in unique:
                row = connection.execute(
                    "DELETE FROM media_items WHERE id = ? RETURNING sha256", (media_id,)
                ).fetchone()
                connection.execute("DELETE FROM media_holders WHERE media_id = ?", (media_id,))
                connection.execute("DELETE FROM media_fetches WHERE media_id = ?", (media_id,))
                if row is not None:
                    forgotten += 1
                    digests[row["sha256"]] = None
            connection.executemany(
                "INSERT INTO media_erasures (sha256, claim, claimed_at) VALUES (?, ?, ?)"
                " ON CONFLICT (sha256, claim) DO NOTHING",
                [(digest, claim, format_timestamp(now)) for digest in digests],
            )
            return ForgottenItems(forgotten, tuple(digests))

        return await self.database.write(write)

    async def forget_fetches(self, message_ids: Collection[str]) -> int:
        unique = list(dict.fromkeys(message_ids))

        def write(connection: sqlite3.Connection) -> int:
            return sum(
                connection.execute(
                    "DELETE FROM media_fetches WHERE message_id = ?", (message_id,)
                ).rowcount
                for message_id in unique
            )

        return await self.database.write(write) if unique else 0

    async def sha256_in_use(self, sha256: str) -> bool:
        def read(connection: sqlite3.Connection) -> bool:
            row = connection.execute(
                "SELECT 1 FROM media_items WHERE sha256 = ? LIMIT 1", (sha256,)
            ).fetchone()
            return row is not None

        return await self.database.read(read)

    async def release_erasure(self, sha256: str, claim: str) -> None:
        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                "DELETE FROM media_erasures WHERE sha256 = ? AND claim = ?", (sha256, claim)
            )

        await self.database.write(write)

    async def take_over_erasures(self, before: datetime, claim: str, now: datetime) -> list[str]:
        def write(connection: sqlite3.Connection) -> list[str]:
            rows = connection.execute(
                "SELECT sha256 FROM media_erasures GROUP BY sha256 HAVING max(claimed_at) < ?",
                (format_timestamp(before),),
            ).fetchall()
            taken = [row["sha256"] for row in rows]
            for sha256 in taken:
                connection.execute("DELETE FROM media_erasures WHERE sha256 = ?", (sha256,))
                connection.execute(
                    "INSERT INTO media_erasures (sha256, claim, claimed_at) VALUES (?, ?, ?)",
                    (sha256, claim, format_timestamp(now)),
                )
            return taken

        return await self.database.write(write)

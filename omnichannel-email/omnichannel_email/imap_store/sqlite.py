"""The IMAP poller's store on SQLite: three tables of its own, made by its migration.

``email_imap_positions`` holds one row per mailbox (UIDVALIDITY, last UID), replaced when
UIDVALIDITY changes and moved forward only otherwise, in the statement itself.
``email_imap_skipped`` keys a skipped mail by mailbox, UIDVALIDITY and UID, so recording it
twice is harmless. ``email_imap_status`` holds one row per mailbox.
"""

from __future__ import annotations

import sqlite3

from omnichannel_core.module import format_timestamp, parse_timestamp
from omnichannel_core.module.sqlite import SqliteDatabase, SqliteMigration
from omnichannel_email.imap_store.records import PollerStatus, Position, SkippedMail

MIGRATIONS: tuple[SqliteMigration, ...] = (
    """
    CREATE TABLE email_imap_positions (
        mailbox TEXT PRIMARY KEY,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL
    );
    CREATE TABLE email_imap_skipped (
        mailbox TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        reason TEXT NOT NULL,
        size INTEGER,
        skipped_at TEXT NOT NULL,
        PRIMARY KEY (mailbox, uidvalidity, uid)
    );
    CREATE INDEX email_imap_skipped_latest ON email_imap_skipped (mailbox, skipped_at);
    CREATE TABLE email_imap_status (
        mailbox TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        since TEXT NOT NULL,
        error TEXT,
        error_at TEXT
    )
    """,
)
"""Step 1. Never change a released step: append the next one."""

ADVANCE = (
    "INSERT INTO email_imap_positions (mailbox, uidvalidity, last_uid) VALUES (?, ?, ?)"
    " ON CONFLICT (mailbox) DO UPDATE SET"
    " last_uid = CASE WHEN uidvalidity = excluded.uidvalidity"
    " THEN max(last_uid, excluded.last_uid) ELSE excluded.last_uid END,"
    " uidvalidity = excluded.uidvalidity"
)


class SqliteImapStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    async def position(self, mailbox: str) -> Position | None:
        def read(connection: sqlite3.Connection) -> Position | None:
            row = connection.execute(
                "SELECT uidvalidity, last_uid FROM email_imap_positions WHERE mailbox = ?",
                (mailbox,),
            ).fetchone()
            return None if row is None else Position(row["uidvalidity"], row["last_uid"])

        return await self.database.read(read)

    async def advance(self, mailbox: str, position: Position) -> None:
        def write(connection: sqlite3.Connection) -> None:
            connection.execute(ADVANCE, (mailbox, position.uidvalidity, position.last_uid))

        await self.database.write(write)

    async def skip(self, mailbox: str, skipped: SkippedMail) -> None:
        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO email_imap_skipped"
                " (mailbox, uidvalidity, uid, reason, size, skipped_at)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (mailbox, uidvalidity, uid) DO NOTHING",
                (
                    mailbox,
                    skipped.uidvalidity,
                    skipped.uid,
                    skipped.reason,
                    skipped.size,
                    format_timestamp(skipped.skipped_at),
                ),
            )
            connection.execute(ADVANCE, (mailbox, skipped.uidvalidity, skipped.uid))

        await self.database.write(write)

    async def skipped(self, mailbox: str, limit: int) -> list[SkippedMail]:
        def read(connection: sqlite3.Connection) -> list[SkippedMail]:
            rows = connection.execute(
                "SELECT * FROM email_imap_skipped WHERE mailbox = ?"
                " ORDER BY skipped_at DESC, uidvalidity DESC, uid DESC LIMIT ?",
                (mailbox, limit),
            ).fetchall()
            return [
                SkippedMail(
                    uidvalidity=row["uidvalidity"],
                    uid=row["uid"],
                    reason=row["reason"],
                    size=row["size"],
                    skipped_at=parse_timestamp(row["skipped_at"]),
                )
                for row in rows
            ]

        return await self.database.read(read)

    async def count_skipped(self, mailbox: str) -> int:
        def read(connection: sqlite3.Connection) -> int:
            query = "SELECT count(*) FROM email_imap_skipped WHERE mailbox = ?"
            count: int = connection.execute(query, (mailbox,)).fetchone()[0]
            return count

        return await self.database.read(read)

    async def save_status(self, mailbox: str, status: PollerStatus) -> None:
        error_at = format_timestamp(status.error_at) if status.error_at else None

        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO email_imap_status (mailbox, state, since, error, error_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (mailbox) DO UPDATE SET"
                " state = excluded.state, since = excluded.since, error = excluded.error,"
                " error_at = excluded.error_at",
                (
                    mailbox,
                    status.state.value,
                    format_timestamp(status.since),
                    status.error,
                    error_at,
                ),
            )

        await self.database.write(write)

    async def status(self, mailbox: str) -> PollerStatus | None:
        def read(connection: sqlite3.Connection) -> PollerStatus | None:
            row = connection.execute(
                "SELECT * FROM email_imap_status WHERE mailbox = ?", (mailbox,)
            ).fetchone()
            if row is None:
                return None
            error_at = row["error_at"]
            return PollerStatus(
                state=row["state"],
                since=parse_timestamp(row["since"]),
                error=row["error"],
                error_at=parse_timestamp(error_at) if error_at else None,
            )

        return await self.database.read(read)

"""The event log in SQLite (`omnichannel_core.store.protocols`): one row per event, appended by
the write it logs, inside that write's transaction (:func:`append_event`).

Writes are serialized (one transaction at a time across processes, see the runner), so the
``seq`` each event gets (an AUTOINCREMENT rowid, never reused after a prune) follows commit
order: a reader that saw ``seq`` N has seen every event committed before it, and any event
it has not seen gets a ``seq`` above N. That makes ``seq`` the cursor, gaplessly.

A cursor above every ``seq`` logged (kept or pruned) is ahead of the log: it came from a
file that was since replaced by an older copy, or reset, and reading on from it would skip
every event until the log caught up, so it is refused with EventsExpired.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from omnichannel_core.errors import EventsExpired, InvalidInput
from omnichannel_core.events.records import Event
from omnichannel_core.serialization import compact_json
from omnichannel_core.store.specs import SqliteMigration
from omnichannel_core.store.sqlite.runner import LoggingConnection
from omnichannel_core.timestamps import format_timestamp, parse_timestamp, utcnow

if TYPE_CHECKING:
    from omnichannel_core.store.sqlite.database import SqliteDatabase

EVENT_TABLES = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    record_id TEXT NOT NULL,
    conversation_id TEXT,
    assignees TEXT NOT NULL DEFAULT '[]',
    at TEXT NOT NULL
);
CREATE INDEX events_by_time ON events (at);

CREATE TABLE events_pruned (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    through_seq INTEGER NOT NULL
);
"""
"""``events_pruned`` remembers the highest ``seq`` a prune deleted, so a stream resuming
from before it is told that it missed events."""

EVENT_MIGRATIONS: tuple[SqliteMigration, ...] = (
    EVENT_TABLES,
    # 2: what a subscriber needs besides the record's id (a message's channel, a
    # conversation's status before and after), as JSON.
    "ALTER TABLE events ADD COLUMN data TEXT NOT NULL DEFAULT '{}'",
)
"""The kernel's ``events`` store. Its first step was the pre-module schema's migration 7."""


def append_event(
    connection: sqlite3.Connection,
    type: str,
    record_id: str,
    conversation_id: str | None = None,
    assignees: tuple[str | None, ...] = (),
    at: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> None:
    """Log an event in the write that runs on ``connection``: it is in the log if, and
    when, that write commits, and the event bus is told then.

    :param type: a registered event type's name.
    :param record_id: the record it happened to.
    :param conversation_id: the conversation involved, if any.
    :param assignees: the conversation's assignee after the change, and before it when it
        changed (None: unassigned).
    :param at: when (fixed-width text, `omnichannel_core.timestamps.format_timestamp`);
        now when not given.
    :param data: JSON-ready facts a subscriber needs (kept small: it is read by every
        subscriber and every stream).
    """
    connection.execute(
        "INSERT INTO events (type, record_id, conversation_id, assignees, at, data)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            type,
            record_id,
            conversation_id,
            json.dumps(list(assignees)),
            at or format_timestamp(utcnow()),
            compact_json(dict(data or {})),
        ),
    )
    if isinstance(connection, LoggingConnection):
        connection.events_logged = True


SEQ_MAX = 2**63 - 1
"""SQLite's largest integer: a bigger number cannot even be bound to a query."""


def _seq_of(cursor: str) -> int:
    """The ``seq`` a cursor names; InvalidInput unless it is one this store could have made
    (``str(seq)``, so no sign, no leading zero, at least 1, at most :data:`SEQ_MAX`)."""
    canonical = cursor.isascii() and cursor.isdigit() and not cursor.startswith("0")
    if not canonical or len(cursor) > 19 or int(cursor) > SEQ_MAX:
        raise InvalidInput(f"not an event cursor of this server: {cursor[:40]!r}", field="cursor")
    return int(cursor)


def _event_from_row(row: sqlite3.Row) -> Event:
    return Event(
        cursor=str(row["seq"]),
        type=row["type"],
        record_id=row["record_id"],
        conversation_id=row["conversation_id"],
        assignees=tuple(json.loads(row["assignees"])),
        at=parse_timestamp(row["at"]),
        data=json.loads(row["data"]),
    )


def events_after(connection: sqlite3.Connection, cursor: str | None, limit: int) -> list[Event]:
    after = 0 if cursor is None else _seq_of(cursor)
    pruned = connection.execute("SELECT through_seq FROM events_pruned WHERE id = 1").fetchone()
    pruned_through = 0 if pruned is None else pruned["through_seq"]
    if cursor is not None and after < pruned_through:
        raise EventsExpired(
            "events after this cursor are no longer kept; reload and open a new stream",
            cursor=cursor,
        )
    rows = connection.execute(
        "SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
    ).fetchall()
    if cursor is not None and not rows and after > _newest_seq(connection):
        raise EventsExpired(
            "this cursor is ahead of the event log (the store was reset or restored?);"
            " reload and open a new stream",
            cursor=cursor,
        )
    return [_event_from_row(row) for row in rows]


def _newest_seq(connection: sqlite3.Connection) -> int:
    """The ``seq`` of the newest event logged, whether kept or pruned (0: none yet). One
    statement, so one snapshot: a prune committing between two reads could otherwise hide
    the newest event from both. It never decreases, so reading it after the events that
    follow a cursor cannot make a cursor this store made look ahead of the log."""
    row = connection.execute(
        "SELECT max(coalesce((SELECT max(seq) FROM events), 0),"
        " coalesce((SELECT through_seq FROM events_pruned WHERE id = 1), 0)) AS seq"
    ).fetchone()
    return row["seq"]


def latest_event_cursor(connection: sqlite3.Connection) -> str | None:
    """The newest event's cursor, kept or pruned: after a prune that emptied the log, the
    last one it deleted (reading after it raises nothing), not None (the log's start, which
    the prune made expired for every older cursor)."""
    seq = _newest_seq(connection)
    return None if seq == 0 else str(seq)


def prune_events(
    connection: sqlite3.Connection, before: datetime, keep_after: Sequence[str] = ()
) -> int:
    """Delete the log up to the newest event logged before ``before`` (in log order, so a
    clock that went back cannot leave a hole), but nothing after a cursor of
    ``keep_after``."""
    row = connection.execute(
        "SELECT max(seq) AS seq FROM events WHERE at < ?", (format_timestamp(before),)
    ).fetchone()
    through = row["seq"]
    if through is not None and keep_after:
        through = min(through, *(_seq_of(cursor) for cursor in keep_after))
    if through is None or through < 1:
        return 0
    deleted = connection.execute("DELETE FROM events WHERE seq <= ?", (through,)).rowcount
    connection.execute(
        "INSERT INTO events_pruned (id, through_seq) VALUES (1, ?) ON CONFLICT (id)"
        " DO UPDATE SET through_seq = max(through_seq, excluded.through_seq)",
        (through,),
    )
    return deleted


class SqliteEventLog:
    """:class:`omnichannel_core.store.protocols.EventLog` on the SQLite database."""

    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    async def after(self, cursor: str | None, limit: int) -> list[Event]:
        return await self.database.read(lambda c: events_after(c, cursor, limit))

    async def latest(self) -> str | None:
        return await self.database.read(latest_event_cursor)

    async def prune(self, before: datetime, keep_after: Sequence[str] = ()) -> int:
        return await self.database.write(lambda c: prune_events(c, before, keep_after))

"""The event log in SQLite (`omnichannel_core.events`): one row per event, appended by the
write it logs, inside that write's transaction.

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
from datetime import datetime

from omnichannel_core.errors import EventsExpired, InvalidInput
from omnichannel_core.events.records import Event, EventType
from omnichannel_core.serialization import format_timestamp, parse_timestamp

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
"""Migration 7. ``events_pruned`` remembers the highest ``seq`` a prune deleted, so a
stream resuming from before it is told that it missed events."""


def append_event(
    connection: sqlite3.Connection,
    type: EventType,
    record_id: str,
    conversation_id: str | None,
    assignees: tuple[str | None, ...],
    at: str,
) -> None:
    connection.execute(
        "INSERT INTO events (type, record_id, conversation_id, assignees, at)"
        " VALUES (?, ?, ?, ?, ?)",
        (type, record_id, conversation_id, json.dumps(list(assignees)), at),
    )


def message_event(
    connection: sqlite3.Connection, type: EventType, message_id: str, conversation_id: str, at: str
) -> None:
    """Log ``type`` for a message, with its conversation's current assignee."""
    row = connection.execute(
        "SELECT assignee FROM conversations WHERE id = ?", (conversation_id,)
    ).fetchone()
    assignee = row["assignee"] if row is not None else None
    append_event(connection, type, message_id, conversation_id, (assignee,), at)


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
        type=EventType(row["type"]),
        record_id=row["record_id"],
        conversation_id=row["conversation_id"],
        assignees=tuple(json.loads(row["assignees"])),
        at=parse_timestamp(row["at"]),
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
    row = connection.execute("SELECT max(seq) AS seq FROM events").fetchone()
    return None if row["seq"] is None else str(row["seq"])


def prune_events(connection: sqlite3.Connection, before: datetime) -> int:
    """Delete the log up to the newest event logged before ``before`` (in log order, so a
    clock that went back cannot leave a hole)."""
    row = connection.execute(
        "SELECT max(seq) AS seq FROM events WHERE at < ?", (format_timestamp(before),)
    ).fetchone()
    if row["seq"] is None:
        return 0
    deleted = connection.execute("DELETE FROM events WHERE seq <= ?", (row["seq"],)).rowcount
    connection.execute(
        "INSERT INTO events_pruned (id, through_seq) VALUES (1, ?) ON CONFLICT (id)"
        " DO UPDATE SET through_seq = max(through_seq, excluded.through_seq)",
        (row["seq"],),
    )
    return deleted

"""Conversations' history on SQLite: each change of a status or assignee, written in the
transaction of the change, read a page at a time for the API, and the store read whole,
conversation by conversation, for a rebuild (`services.InboxHistory`)."""

from __future__ import annotations

import json
import sqlite3

from omnichannel_core.module import (
    ConversationChange,
    ConversationRecord,
    Page,
    compact_json,
    decode_cursor,
    encode_cursor,
    format_timestamp,
    parse_timestamp,
)
from omnichannel_core.module.sqlite import keyset_page
from omnichannel_core.modules.inbox.store.history import (
    author_fields,
    change_from,
)
from omnichannel_core.modules.inbox.store.sqlite.rows import (
    conversation_from_row,
    message_from_row,
)


def insert_change(connection: sqlite3.Connection, change: ConversationChange | None) -> None:
    """Keep ``change`` (None: nothing moved, nothing kept)."""
    if change is None:
        return
    by = author_fields(change.by)
    connection.execute(
        "INSERT INTO conversation_changes (id, conversation_id, at, status, previous_status,"
        " assignee, previous_assignee, by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            change.id,
            change.conversation_id,
            format_timestamp(change.at),
            str(change.status),
            str(change.previous_status),
            change.assignee,
            change.previous_assignee,
            None if by is None else compact_json(by),
        ),
    )


def _change_from_row(row: sqlite3.Row) -> ConversationChange:
    fields = dict(row)
    fields["by"] = json.loads(row["by"] or "null")
    return change_from(fields, parse_timestamp(row["at"]))


def read_changes(
    connection: sqlite3.Connection, conversation_id: str
) -> tuple[ConversationChange, ...]:
    rows = connection.execute(
        "SELECT * FROM conversation_changes WHERE conversation_id = ? ORDER BY at, id",
        (conversation_id,),
    ).fetchall()
    return tuple(_change_from_row(row) for row in rows)


def page_changes(
    connection: sqlite3.Connection,
    conversation_id: str,
    after: tuple[str, str] | None,
    limit: int,
) -> Page:
    """One page of the conversation's history after ``after`` (a decoded cursor: ``at``
    as stored, and the change's id), oldest first, through the index on
    (conversation_id, at, id)."""
    return keyset_page(
        connection,
        "SELECT * FROM conversation_changes WHERE conversation_id = ?",
        [conversation_id],
        after,
        ("at", "id"),
        descending=False,
        limit=limit,
        build=_change_from_row,
    )


def scan(
    connection: sqlite3.Connection, cursor: str | None, limit: int
) -> tuple[list[ConversationRecord], str | None]:
    """Up to ``limit`` conversations in id order after ``cursor``, each whole."""
    after = decode_cursor(cursor, 1)[0] if cursor else ""
    rows = connection.execute(
        "SELECT * FROM conversations WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
    ).fetchall()
    records = []
    for row in rows:
        messages = connection.execute(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY created_at, id",
            (row["id"],),
        ).fetchall()
        records.append(
            ConversationRecord(
                conversation_from_row(row),
                tuple(message_from_row(message) for message in messages),
                read_changes(connection, row["id"]),
            )
        )
    following = encode_cursor(rows[-1]["id"]) if len(rows) == limit else None
    return records, following

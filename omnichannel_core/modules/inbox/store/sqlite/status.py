"""Delivery status in SQLite: forward-only moves, provider ids, parked updates and
watermarks.

A provider may call back about a message before the core has recorded its provider id (the
callback races the answer to ``send``). Such an update is parked in ``parked_statuses``;
when the id is recorded, every parked update for it is applied in the same transaction.
A watermark moves every message of a conversation stored up to a time, one batch per
transaction. Each function here runs inside the writer's transaction; a move logs its
``message.status_changed`` event there.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from omnichannel_core.channel import StatusUpdate
from omnichannel_core.module import DeliveryStatus, Direction, Message, format_timestamp, utcnow
from omnichannel_core.module.sqlite import append_event
from omnichannel_core.modules.inbox import events
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.store import SETTLED_RANK, StatusApplied, statuses_behind
from omnichannel_core.modules.inbox.store.sqlite.rows import fetch_message, message_from_row


def status_event(
    connection: sqlite3.Connection, row: sqlite3.Row, status: DeliveryStatus, at: str
) -> None:
    """Log ``message.status_changed`` for the message of ``row`` (its status before the
    move), with its conversation's current assignee."""
    found = connection.execute(
        "SELECT assignee FROM conversations WHERE id = ?", (row["conversation_id"],)
    ).fetchone()
    assignee = found["assignee"] if found is not None else None
    append_event(
        connection,
        InboxEvent.MESSAGE_STATUS_CHANGED,
        row["id"],
        row["conversation_id"],
        (assignee,),
        at,
        events.status_changed(row["channel"], status, row["status"]),
    )


def updated_event(
    connection: sqlite3.Connection, row: sqlite3.Row, fields: list[str], at: str
) -> None:
    """Log ``message.updated`` for the message of ``row``: ``fields`` changed."""
    found = connection.execute(
        "SELECT assignee FROM conversations WHERE id = ?", (row["conversation_id"],)
    ).fetchone()
    append_event(
        connection,
        InboxEvent.MESSAGE_UPDATED,
        row["id"],
        row["conversation_id"],
        (found["assignee"] if found is not None else None,),
        at,
        events.message_updated(row["channel"], fields),
    )


def attempt_event(
    connection: sqlite3.Connection,
    row: sqlite3.Row,
    error_code: str,
    attempts: int,
    retry_at: datetime,
    at: str,
) -> None:
    """Log ``message.attempt_failed`` for the message of ``row``: it is retried at
    ``retry_at``."""
    found = connection.execute(
        "SELECT assignee FROM conversations WHERE id = ?", (row["conversation_id"],)
    ).fetchone()
    append_event(
        connection,
        InboxEvent.MESSAGE_ATTEMPT_FAILED,
        row["id"],
        row["conversation_id"],
        (found["assignee"] if found is not None else None,),
        at,
        events.attempt_failed(row["channel"], error_code, attempts, retry_at),
    )


def settle(connection: sqlite3.Connection, message_id: str) -> None:
    """The message was sent, or ended: its outbox entry goes, and it is no longer in doubt."""
    connection.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))
    connection.execute("UPDATE messages SET in_doubt = 0 WHERE id = ? AND in_doubt", (message_id,))


def _move(
    connection: sqlite3.Connection,
    message_id: str,
    status: DeliveryStatus,
    error_code: str | None,
    error_message: str | None,
    now: str,
) -> None:
    connection.execute(
        "UPDATE messages SET status = ?, error_code = coalesce(?, error_code),"
        " error_message = coalesce(?, error_message), updated_at = ? WHERE id = ?",
        (status, error_code, error_message, now, message_id),
    )
    if status.rank >= SETTLED_RANK:
        settle(connection, message_id)


def _provider_id_taken(connection: sqlite3.Connection, row: sqlite3.Row, provider_id: str) -> bool:
    """True when another message of the same channel and direction holds ``provider_id``."""
    taken = connection.execute(
        "SELECT 1 FROM messages WHERE channel = ? AND direction = ?"
        " AND provider_message_id = ? AND id != ?",
        (row["channel"], row["direction"], provider_id, row["id"]),
    ).fetchone()
    return taken is not None


def _take_parked(
    connection: sqlite3.Connection, channel: str, provider_id: str, ttl: timedelta
) -> list[sqlite3.Row]:
    """The unexpired updates parked for (channel, provider id), lowest rank first; all the
    updates parked for it, expired or not, are deleted."""
    cutoff = format_timestamp(utcnow() - ttl)
    rows = connection.execute(
        "DELETE FROM parked_statuses WHERE channel = ? AND provider_message_id = ?"
        " RETURNING status, error_code, error_message, parked_at",
        (channel, provider_id),
    ).fetchall()
    fresh = [row for row in rows if row["parked_at"] >= cutoff]
    return sorted(fresh, key=lambda row: (DeliveryStatus(row["status"]).rank, row["parked_at"]))


def advance(
    connection: sqlite3.Connection,
    row: sqlite3.Row,
    status: DeliveryStatus,
    provider_message_id: str | None,
    error_code: str | None,
    error_message: str | None,
    ttl: timedelta,
) -> StatusApplied:
    """Move the message of ``row`` forward to ``status`` (never back), record its provider id
    if it has none and nobody else holds it, and apply what was parked for that id."""
    start = DeliveryStatus(row["status"])
    current = start
    outbound = row["direction"] == Direction.OUTBOUND
    now = format_timestamp(utcnow())
    if outbound and current.can_move_to(status):
        _move(connection, row["id"], status, error_code, error_message, now)
        current = status
    conflict = False
    recorded: str | None = None  # the provider id, once this call recorded it
    if provider_message_id is not None and row["provider_message_id"] is None:
        conflict = _provider_id_taken(connection, row, provider_message_id)
        if not conflict:
            connection.execute(
                "UPDATE messages SET provider_message_id = ?, updated_at = ? WHERE id = ?",
                (provider_message_id, now, row["id"]),
            )
            recorded = provider_message_id
    if recorded is not None and outbound:
        for parked in _take_parked(connection, row["channel"], recorded, ttl):
            parked_status = DeliveryStatus(parked["status"])
            if current.can_move_to(parked_status):
                _move(
                    connection,
                    row["id"],
                    parked_status,
                    parked["error_code"],
                    parked["error_message"],
                    now,
                )
                current = parked_status
    if current is start and recorded is None:
        message = message_from_row(row)
        return StatusApplied(message, changed=False, provider_id_conflict=conflict)
    if current is not start:
        status_event(connection, row, current, now)
    else:  # the provider took it, and its first status is one we had passed
        updated_event(connection, row, ["provider_message_id"], now)
    message = fetch_message(connection, row["id"])
    return StatusApplied(message, changed=current is not start, provider_id_conflict=conflict)


def park(
    connection: sqlite3.Connection, channel: str, update: StatusUpdate, ttl: timedelta
) -> StatusApplied:
    """Keep an update for a provider id not yet recorded; drop every expired parked update.

    A repeat of an update already parked (same channel, provider id and status) is kept once.
    """
    now = utcnow()
    connection.execute(
        "DELETE FROM parked_statuses WHERE parked_at < ?", (format_timestamp(now - ttl),)
    )
    connection.execute(
        "INSERT INTO parked_statuses (channel, provider_message_id, status, error_code,"
        " error_message, parked_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            channel,
            update.provider_message_id,
            DeliveryStatus(update.status),
            update.error_code,
            update.error_message,
            format_timestamp(now),
        ),
    )
    return StatusApplied(None, changed=False, parked=True)


def apply_status(
    connection: sqlite3.Connection, channel: str, update: StatusUpdate, ttl: timedelta
) -> StatusApplied:
    """Apply a provider's update to the outbound message with its provider id, or park it."""
    row = connection.execute(
        "SELECT * FROM messages"
        " WHERE channel = ? AND direction = 'outbound' AND provider_message_id = ?",
        (channel, update.provider_message_id),
    ).fetchone()
    if row is None:
        return park(connection, channel, update, ttl)
    status, code, text = update.status, update.error_code, update.error_message
    return advance(connection, row, status, None, code, text, ttl)


def apply_watermark(
    connection: sqlite3.Connection,
    channel: str,
    recipient: str,
    status: DeliveryStatus,
    up_to: str,
    ttl: timedelta,
    limit: int,
) -> list[Message]:
    """Move forward to ``status`` at most ``limit`` outbound messages of the conversations of
    ``channel`` answering to ``recipient``, stored at or before ``up_to``; returns them.

    Only messages that can move are read (``status IN`` what is behind it, through
    ``messages_by_status``), and each one read is moved, so each batch leaves the rest
    for the next and a batch shorter than ``limit`` is the last.
    """
    behind = statuses_behind(status)
    if not behind:
        return []
    select = (
        "SELECT messages.* FROM conversations"
        " JOIN messages ON messages.conversation_id = conversations.id"
        " WHERE conversations.channel = ? AND conversations.address = ?"
        " AND messages.direction = 'outbound' AND messages.created_at <= ?"
    )
    select += f" AND messages.status IN ({', '.join('?' * len(behind))}) LIMIT ?"  # marks only
    rows = connection.execute(select, (channel, recipient, up_to, *behind, limit)).fetchall()
    moved = [advance(connection, row, status, None, None, None, ttl) for row in rows]
    return [applied.message for applied in moved if applied.changed and applied.message]

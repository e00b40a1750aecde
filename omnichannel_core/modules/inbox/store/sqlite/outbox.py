"""The outbox on SQLite: the ``outbox`` and ``send_paces`` tables (migration 7; the
entries' ``attempted`` mark, migration 13).

Each method is one write of the shared database, so one transaction; each state change is
an ``UPDATE ... WHERE state = ...`` so that only one writer wins it.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta

from omnichannel_core.module import (
    AuditEntry,
    Conflict,
    DeliveryStatus,
    Message,
    NotFound,
    compact_json,
    format_timestamp,
    parse_timestamp,
    utcnow,
)
from omnichannel_core.module.sqlite import SqliteDatabase, append_audit, fetch_one
from omnichannel_core.modules.inbox.pace import PaceRecord, reserved, slowed
from omnichannel_core.modules.inbox.store.outbox import (
    NOT_CONFIRMED,
    NOT_CONFIRMED_TEXT,
    REPLY,
    ChannelBacklog,
    Claimed,
    Failure,
    OutboxEntry,
    OutboxState,
)
from omnichannel_core.modules.inbox.store.sqlite.rows import (
    fetch_conversation,
    fetch_message,
    live_contact_row,
)
from omnichannel_core.modules.inbox.store.sqlite.status import (
    advance,
    attempt_event,
    settle,
    status_event,
)

ADOPTED_DOUBT = timedelta(hours=1)
"""How long messages an earlier version left unsettled wait in doubt (migration 8)."""


def _optional_time(value: str | None) -> datetime | None:
    return None if value is None else parse_timestamp(value)


def entry_from_row(row: sqlite3.Row) -> OutboxEntry:
    return OutboxEntry(
        message_id=row["message_id"],
        channel=row["channel"],
        address=row["address"],
        state=OutboxState(row["state"]),
        priority=row["priority"],
        due_at=parse_timestamp(row["due_at"]),
        first_due_at=parse_timestamp(row["first_due_at"]),
        failing_since=_optional_time(row["failing_since"]),
        attempts=row["attempts"],
        lease_holder=row["lease_holder"],
        lease_until=_optional_time(row["lease_until"]),
        doubt_until=_optional_time(row["doubt_until"]),
        resend=bool(row["resend"]),
        last_error=row["last_error"],
        attempted=bool(row["attempted"]),
    )


def enqueue(
    connection: sqlite3.Connection,
    message_id: str,
    conversation_id: str,
    due_at: str,
    priority: int = REPLY,
    attempts: int = 0,
) -> None:
    """Add the outbox entry of a message just stored (in the caller's transaction)."""
    connection.execute(
        "INSERT INTO outbox (message_id, channel, address, state, priority, due_at,"
        " first_due_at, attempts) SELECT ?, channel, address, 'queued', ?, ?, ?, ?"
        " FROM conversations WHERE id = ?",
        (message_id, priority, due_at, due_at, attempts, conversation_id),
    )


def adopt_unsettled_messages(connection: sqlite3.Connection) -> None:
    """Migration step: outbound messages left ``queued`` or ``sending`` by a version that
    sent inside the request go in doubt (they may have reached the provider)."""
    now = utcnow()
    stamp, until = format_timestamp(now), format_timestamp(now + ADOPTED_DOUBT)
    rows = connection.execute(
        "SELECT messages.id, messages.channel, address, messages.created_at FROM messages"
        " JOIN conversations ON conversations.id = conversation_id"
        " WHERE direction = 'outbound' AND messages.status IN ('queued', 'sending')"
        " AND provider_message_id IS NULL"  # one with the provider's id, the provider took
    ).fetchall()
    for message_id, channel, address, created_at in rows:
        connection.execute(
            "UPDATE messages SET status = 'sending', in_doubt = 1, updated_at = ? WHERE id = ?",
            (stamp, message_id),
        )
        connection.execute(
            "INSERT INTO outbox (message_id, channel, address, state, priority, due_at,"
            " first_due_at, doubt_until, last_error) VALUES (?, ?, ?, 'in_doubt', ?, ?, ?, ?, ?)",
            (message_id, channel, address, REPLY, created_at, created_at, until, "left unsettled"),
        )


class SqliteOutbox:
    """:class:`omnichannel_core.modules.inbox.store.outbox.OutboxStore` on SQLite (a part
    of the inbox store)."""

    database: SqliteDatabase
    parked_status_ttl: timedelta

    async def due_outbound(
        self, now: datetime, limit: int, channel: str | None = None
    ) -> list[OutboxEntry]:
        def read(connection: sqlite3.Connection) -> list[OutboxEntry]:
            if channel is None:
                rows = connection.execute(
                    "SELECT * FROM outbox WHERE state = 'queued' AND due_at <= ?"
                    " ORDER BY priority, due_at LIMIT ?",
                    (format_timestamp(now), limit),
                ).fetchall()
            else:
                rows = connection.execute(
                    "SELECT * FROM outbox WHERE channel = ? AND state = 'queued'"
                    " AND due_at <= ? ORDER BY priority, due_at LIMIT ?",
                    (channel, format_timestamp(now), limit),
                ).fetchall()
            return [entry_from_row(row) for row in rows]

        return await self.database.read(read)

    async def next_due_at(self) -> datetime | None:
        def read(connection: sqlite3.Connection) -> datetime | None:
            (due,) = connection.execute(
                "SELECT min(due_at) FROM outbox WHERE state = 'queued'"
            ).fetchone()
            return _optional_time(due)

        return await self.database.read(read)

    async def claim_outbound(
        self, message_id: str, holder: str, lease_until: datetime, now: datetime
    ) -> Claimed | None:
        def write(connection: sqlite3.Connection) -> Claimed | None:
            row = connection.execute(
                "UPDATE outbox SET state = 'sending', lease_holder = ?, lease_until = ?,"
                " attempted = 0"
                " WHERE message_id = ? AND state = 'queued' AND due_at <= ? RETURNING *",
                (holder, format_timestamp(lease_until), message_id, format_timestamp(now)),
            ).fetchone()
            if row is None:
                return None
            message = fetch_message(connection, message_id)
            conversation = fetch_conversation(connection, message.conversation_id)
            return Claimed(
                entry_from_row(row),
                message,
                conversation.address,
                conversation.last_inbound_at,
                _opted_out(connection, message.contact_id),
            )

        return await self.database.write(write)

    async def begin_attempt(self, message_id: str, holder: str, now: datetime) -> bool:
        def write(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                "UPDATE outbox SET attempted = 1, attempts = attempts + 1"
                " WHERE message_id = ? AND state = 'sending' AND lease_holder = ?"
                " AND lease_until > ?",
                (message_id, holder, format_timestamp(now)),
            )
            if cursor.rowcount != 1:
                return False
            connection.execute(
                "UPDATE messages SET attempts = attempts + 1 WHERE id = ?", (message_id,)
            )
            return True

        return await self.database.write(write)

    async def extend_lease(self, message_id: str, holder: str, lease_until: datetime) -> bool:
        def write(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                "UPDATE outbox SET lease_until = ?"
                " WHERE message_id = ? AND state = 'sending' AND lease_holder = ?",
                (format_timestamp(lease_until), message_id, holder),
            )
            return cursor.rowcount == 1

        return await self.database.write(write)

    async def retry_outbound(
        self, message_id: str, holder: str, due_at: datetime, failure: Failure
    ) -> bool:
        def write(connection: sqlite3.Connection) -> bool:
            now = format_timestamp(utcnow())
            entry = connection.execute(
                "UPDATE outbox SET state = 'queued', due_at = ?, lease_holder = NULL,"
                " lease_until = NULL, last_error = ?, failing_since = coalesce(failing_since, ?)"
                " WHERE message_id = ? AND state = 'sending' AND lease_holder = ?"
                " RETURNING attempts",
                (format_timestamp(due_at), failure.text, now, message_id, holder),
            ).fetchone()
            if entry is None:
                return False
            connection.execute(
                "UPDATE messages SET error_code = ?, error_message = ?, error_details = ?,"
                " updated_at = ? WHERE id = ?",
                (failure.code, failure.text, compact_json(failure.details), now, message_id),
            )
            row = fetch_one(
                connection, "SELECT * FROM messages WHERE id = ?", (message_id,), "message"
            )
            attempt_event(connection, row, failure.code, entry["attempts"], due_at, now)
            return True

        return await self.database.write(write)

    async def fail_outbound(self, message_id: str, holder: str, failure: Failure) -> Message | None:
        def write(connection: sqlite3.Connection) -> Message | None:
            held = connection.execute(
                "SELECT 1 FROM outbox WHERE message_id = ? AND state = 'sending'"
                " AND lease_holder = ?",
                (message_id, holder),
            ).fetchone()
            if held is None:
                return None
            connection.execute(
                "UPDATE messages SET error_details = ? WHERE id = ?",
                (compact_json(failure.details), message_id),
            )
            row = fetch_one(
                connection, "SELECT * FROM messages WHERE id = ?", (message_id,), "message"
            )
            applied = advance(
                connection,
                row,
                DeliveryStatus.FAILED,
                None,
                failure.code,
                failure.text,
                self.parked_status_ttl,
            )
            settle(connection, message_id)
            assert applied.message is not None
            return fetch_message(connection, message_id)

        return await self.database.write(write)

    async def doubt_outbound(
        self,
        message_id: str,
        holder: str | None,
        doubt_until: datetime,
        resend_at: datetime | None,
        error: str,
        now: datetime,
    ) -> Message | None:
        def write(connection: sqlite3.Connection) -> Message | None:
            condition = "lease_holder = ?" if holder is not None else "lease_until < ?"
            state = OutboxState.QUEUED if resend_at is not None else OutboxState.IN_DOUBT
            sql = (
                "UPDATE outbox SET state = ?, due_at = coalesce(?, due_at), resend = ?,"
                " doubt_until = coalesce(doubt_until, ?), lease_holder = NULL,"
                " lease_until = NULL, last_error = ?"
                " WHERE message_id = ? AND state = 'sending' AND "
            )
            sql += condition + " RETURNING *"  # one of two fixed clauses
            row = connection.execute(
                sql,
                (
                    state,
                    None if resend_at is None else format_timestamp(resend_at),
                    resend_at is not None,
                    format_timestamp(doubt_until),
                    error,
                    message_id,
                    holder if holder is not None else format_timestamp(now),
                ),
            ).fetchone()
            if row is None:
                return None
            message = fetch_one(
                connection, "SELECT * FROM messages WHERE id = ?", (message_id,), "message"
            )
            stamp = format_timestamp(now)
            connection.execute(
                "UPDATE messages SET in_doubt = 1, updated_at = ? WHERE id = ?",
                (stamp, message_id),
            )
            if DeliveryStatus(message["status"]).can_move_to(DeliveryStatus.SENDING):
                connection.execute(
                    "UPDATE messages SET status = 'sending' WHERE id = ?", (message_id,)
                )
                status_event(connection, message, DeliveryStatus.SENDING, stamp)
            return fetch_message(connection, message_id)

        return await self.database.write(write)

    async def requeue_unattempted(self, message_id: str, now: datetime) -> bool:
        def write(connection: sqlite3.Connection) -> bool:
            stamp = format_timestamp(now)
            cursor = connection.execute(  # attempted again: as if stored before the mark
                "UPDATE outbox SET state = 'queued', due_at = ?, lease_holder = NULL,"
                " lease_until = NULL, attempted = 1"
                " WHERE message_id = ? AND state = 'sending' AND NOT attempted"
                " AND lease_until < ?",
                (stamp, message_id, stamp),
            )
            return cursor.rowcount == 1

        return await self.database.write(write)

    async def expired_leases(self, now: datetime, limit: int) -> list[OutboxEntry]:
        def read(connection: sqlite3.Connection) -> list[OutboxEntry]:
            rows = connection.execute(
                "SELECT * FROM outbox WHERE state = 'sending' AND lease_until < ? LIMIT ?",
                (format_timestamp(now), limit),
            ).fetchall()
            return [entry_from_row(row) for row in rows]

        return await self.database.read(read)

    async def lapsed_doubts(self, now: datetime, limit: int) -> list[OutboxEntry]:
        def read(connection: sqlite3.Connection) -> list[OutboxEntry]:
            rows = connection.execute(
                "SELECT * FROM outbox WHERE doubt_until < ? AND state != 'sending' LIMIT ?",
                (format_timestamp(now), limit),
            ).fetchall()
            return [entry_from_row(row) for row in rows]

        return await self.database.read(read)

    async def expire_doubt(self, message_id: str, now: datetime) -> Message | None:
        def write(connection: sqlite3.Connection) -> Message | None:
            entry = connection.execute(
                "SELECT 1 FROM outbox WHERE message_id = ? AND doubt_until < ?"
                " AND state != 'sending'",
                (message_id, format_timestamp(now)),
            ).fetchone()
            if entry is None:
                return None
            row = fetch_one(
                connection, "SELECT * FROM messages WHERE id = ?", (message_id,), "message"
            )
            applied = advance(
                connection,
                row,
                DeliveryStatus.FAILED,
                None,
                NOT_CONFIRMED,
                NOT_CONFIRMED_TEXT,
                self.parked_status_ttl,
            )
            settle(connection, message_id)  # even if a status had moved it (it cannot now)
            return applied.message

        return await self.database.write(write)

    async def retry_failed(self, message_id: str, audit: AuditEntry, now: datetime) -> Message:
        def write(connection: sqlite3.Connection) -> Message:
            row = fetch_one(
                connection, "SELECT * FROM messages WHERE id = ?", (message_id,), "message"
            )
            if row["direction"] != "outbound" or row["status"] != DeliveryStatus.FAILED:
                raise Conflict(
                    f"only a failed outbound message can be retried; this one is {row['status']}",
                    status=row["status"],
                )
            stamp = format_timestamp(now)
            connection.execute(
                "UPDATE messages SET status = 'queued', error_code = NULL, error_message = NULL,"
                " error_details = '{}', provider_message_id = NULL, in_doubt = 0,"
                " send_at = NULL, updated_at = ? WHERE id = ?",
                (stamp, message_id),
            )
            enqueue(connection, message_id, row["conversation_id"], stamp, REPLY, row["attempts"])
            status_event(connection, row, DeliveryStatus.QUEUED, stamp)
            append_audit(connection, audit)
            return fetch_message(connection, message_id)

        return await self.database.write(write)

    async def cancel_outbound(self, message_id: str, audit: AuditEntry) -> Message:
        def write(connection: sqlite3.Connection) -> Message:
            row = fetch_one(
                connection, "SELECT * FROM messages WHERE id = ?", (message_id,), "message"
            )
            entry = connection.execute(
                "SELECT state, resend FROM outbox WHERE message_id = ?", (message_id,)
            ).fetchone()
            if entry is None or entry["state"] != OutboxState.QUEUED or entry["resend"]:
                raise Conflict(
                    "only a message not yet being sent can be cancelled; this one is"
                    f" {row['status']}" + (" and in doubt" if row["in_doubt"] else ""),
                    status=row["status"],
                )
            applied = advance(
                connection,
                row,
                DeliveryStatus.CANCELLED,
                None,
                None,
                None,
                self.parked_status_ttl,
            )
            append_audit(connection, audit)
            assert applied.message is not None
            return applied.message

        return await self.database.write(write)

    async def outbox_backlog(self, now: datetime) -> dict[str, ChannelBacklog]:
        stamp = format_timestamp(now)

        def read(connection: sqlite3.Connection) -> dict[str, ChannelBacklog]:
            rows = connection.execute(
                "SELECT channel,"
                " sum(state = 'queued' AND NOT resend AND due_at <= :now),"
                " sum(state = 'queued' AND NOT resend AND due_at > :now AND attempts = 0),"
                " sum(state = 'queued' AND NOT resend AND due_at > :now AND attempts > 0),"
                " sum(state = 'sending'),"
                " sum(state = 'in_doubt' OR resend),"
                " min(CASE WHEN first_due_at <= :now AND state != 'in_doubt' AND NOT resend"
                " THEN first_due_at END)"
                " FROM outbox GROUP BY channel ORDER BY channel",
                {"now": stamp},
            ).fetchall()
            return {
                row[0]: ChannelBacklog(
                    queued=row[1],
                    scheduled=row[2],
                    retrying=row[3],
                    sending=row[4],
                    in_doubt=row[5],
                    oldest_due_at=_optional_time(row[6]),
                )
                for row in rows
            }

        return await self.database.read(read)

    async def reserve_pace(
        self, key: str, interval: float, count: int, now: float
    ) -> tuple[float, float]:
        def write(connection: sqlite3.Connection) -> tuple[float, float]:
            record, start, spacing = reserved(_pace(connection, key), interval, count, now)
            _store_pace(connection, key, record)
            return start, spacing

        return await self.database.write(write)

    async def slow_pace(self, key: str, until: float, now: float) -> None:
        def write(connection: sqlite3.Connection) -> None:
            _store_pace(connection, key, slowed(_pace(connection, key), until, now))

        await self.database.write(write)


def _pace(connection: sqlite3.Connection, key: str) -> PaceRecord:
    row = connection.execute(
        "SELECT next_free, fraction, slowed_at FROM send_paces WHERE key = ?", (key,)
    ).fetchone()
    return PaceRecord() if row is None else PaceRecord(row[0], row[1], row[2])


def _store_pace(connection: sqlite3.Connection, key: str, record: PaceRecord) -> None:
    connection.execute(
        "INSERT INTO send_paces (key, next_free, fraction, slowed_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET next_free = excluded.next_free,"
        " fraction = excluded.fraction, slowed_at = excluded.slowed_at",
        (key, record.next_free, record.fraction, record.slowed_at),
    )


def _opted_out(connection: sqlite3.Connection, contact_id: str) -> tuple[str, ...]:
    """The channels the message's contact opted out on: a contact merged away reads as its
    survivor, which holds its opt-outs too (never as "not opted out")."""
    try:
        row = live_contact_row(connection, contact_id)
    except NotFound:
        return ()
    return tuple(json.loads(row["opted_out"]))

"""The campaigns' store on SQLite (tables ``campaigns`` and ``campaign_recipients``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from omnichannel_core.module import (
    AuditEntry,
    Page,
    decode_list_cursor,
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
    keyset_page,
)
from omnichannel_core.modules.campaigns.records import (
    CAMPAIGN_PREFIX,
    Campaign,
    CampaignStatus,
    Counts,
    Minute,
    Recipient,
    RecipientState,
    SkipReason,
    counted,
)
from omnichannel_core.modules.campaigns.store import (
    CAMPAIGN_UPDATED,
    STAMPED,
    TIMES,
    reached,
    require_status,
    seq_cursor,
    seq_of_cursor,
)

MIGRATIONS: tuple[SqliteMigration, ...] = (
    """
    CREATE TABLE campaigns (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        start_at TEXT,
        finished_at TEXT,
        created_at TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX campaigns_by_created ON campaigns (created_at DESC, id DESC);
    CREATE INDEX campaigns_by_status ON campaigns (status, start_at);
    CREATE TABLE campaign_recipients (
        campaign_id TEXT NOT NULL,
        contact_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        channel TEXT NOT NULL,
        state TEXT NOT NULL,
        skip_reason TEXT,
        not_before TEXT,
        message_id TEXT,
        status TEXT,
        in_doubt INTEGER NOT NULL DEFAULT 0,
        error_code TEXT,
        queued_at TEXT,
        sent_at TEXT,
        delivered_at TEXT,
        read_at TEXT,
        failed_at TEXT,
        replied_at TEXT,
        opted_out_at TEXT,
        PRIMARY KEY (campaign_id, contact_id)
    );
    CREATE INDEX campaign_recipients_by_seq ON campaign_recipients (campaign_id, seq);
    CREATE INDEX campaign_recipients_pending ON campaign_recipients (campaign_id, seq)
        WHERE state = 'pending';
    CREATE INDEX campaign_recipients_by_contact
        ON campaign_recipients (contact_id, channel, queued_at DESC)
        WHERE state = 'queued'
    """,
)
"""Step 1. Never change a released step: append the next one."""


def _campaign(row: sqlite3.Row) -> Campaign:
    return from_json(json.loads(row["data"]), Campaign)


def _time(value: str | None) -> datetime | None:
    return None if value is None else parse_timestamp(value)


def _recipient(row: sqlite3.Row) -> Recipient:
    return Recipient(
        campaign_id=row["campaign_id"],
        contact_id=row["contact_id"],
        seq=row["seq"],
        channel=row["channel"],
        state=RecipientState(row["state"]),
        skip_reason=SkipReason(row["skip_reason"]) if row["skip_reason"] else None,
        message_id=row["message_id"],
        status=row["status"],
        in_doubt=bool(row["in_doubt"]),
        error_code=row["error_code"],
        **{name: _time(row[name]) for name in TIMES},
    )


def _start_at(campaign: Campaign) -> str | None:
    at = campaign.schedule.at
    return None if at is None else format_timestamp(at)


def _save(connection: sqlite3.Connection, campaign: Campaign, insert: bool) -> None:
    values = (
        campaign.status.value,
        _start_at(campaign),
        None if campaign.finished_at is None else format_timestamp(campaign.finished_at),
        format_timestamp(campaign.created_at),
        json_text(campaign),
        campaign.id,
    )
    if insert:
        connection.execute(
            "INSERT INTO campaigns (status, start_at, finished_at, created_at, data, id)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            values,
        )
    else:
        connection.execute(
            "UPDATE campaigns SET status = ?, start_at = ?, finished_at = ?, created_at = ?,"
            " data = ? WHERE id = ?",
            values,
        )


def _log(connection: sqlite3.Connection, campaign: Campaign) -> None:
    append_event(connection, CAMPAIGN_UPDATED, campaign.id, data={"status": campaign.status.value})


class SqliteCampaignStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    async def create(self, campaign: Campaign) -> Campaign:
        def write(connection: sqlite3.Connection) -> Campaign:
            _save(connection, campaign, insert=True)
            _log(connection, campaign)
            return campaign

        return await self.database.write(write)

    async def get(self, campaign_id: str) -> Campaign:
        def read(connection: sqlite3.Connection) -> Campaign:
            sql = "SELECT data FROM campaigns WHERE id = ?"
            return _campaign(fetch_one(connection, sql, (campaign_id,), "campaign"))

        return await self.database.read(read)

    async def list_campaigns(
        self, status: CampaignStatus | None, cursor: str | None, limit: int
    ) -> Page:
        after = None if cursor is None else decode_list_cursor(cursor, CAMPAIGN_PREFIX)
        select, params = "SELECT * FROM campaigns WHERE 1 = 1", []
        if status is not None:
            select += " AND status = ?"
            params.append(status.value)

        def read(connection: sqlite3.Connection) -> Page:
            return keyset_page(
                connection, select, params, after, ("created_at", "id"), True, limit, _campaign
            )

        return await self.database.read(read)

    async def change(
        self,
        campaign_id: str,
        changes: Mapping[str, Any],
        when: Collection[CampaignStatus],
        audit: AuditEntry | None = None,
    ) -> Campaign:
        def write(connection: sqlite3.Connection) -> Campaign:
            sql = "SELECT data FROM campaigns WHERE id = ?"
            campaign = _campaign(fetch_one(connection, sql, (campaign_id,), "campaign"))
            require_status(campaign, when)
            changed = attrs.evolve(campaign, **changes, updated_at=utcnow())
            _save(connection, changed, insert=False)
            _log(connection, changed)
            if audit is not None:
                append_audit(connection, audit)
            return changed

        return await self.database.write(write)

    async def delete(self, campaign_id: str, when: Collection[CampaignStatus]) -> None:
        def write(connection: sqlite3.Connection) -> None:
            sql = "SELECT data FROM campaigns WHERE id = ?"
            require_status(_campaign(fetch_one(connection, sql, (campaign_id,), "campaign")), when)
            connection.execute("DELETE FROM campaigns WHERE id = ?", (campaign_id,))
            connection.execute(
                "DELETE FROM campaign_recipients WHERE campaign_id = ?", (campaign_id,)
            )

        await self.database.write(write)

    async def due(self, now: datetime) -> list[Campaign]:
        def read(connection: sqlite3.Connection) -> list[Campaign]:
            rows = connection.execute(
                "SELECT data FROM campaigns WHERE status = 'running' OR (status = 'scheduled'"
                " AND (start_at IS NULL OR start_at <= ?)) ORDER BY created_at, id",
                (format_timestamp(now),),
            ).fetchall()
            return [_campaign(row) for row in rows]

        return await self.database.read(read)

    async def recently_finished(self, since: datetime) -> list[Campaign]:
        def read(connection: sqlite3.Connection) -> list[Campaign]:
            rows = connection.execute(
                "SELECT data FROM campaigns WHERE status IN ('completed', 'cancelled')"
                " AND finished_at >= ?",
                (format_timestamp(since),),
            ).fetchall()
            return [_campaign(row) for row in rows]

        return await self.database.read(read)

    async def add_recipients(
        self, campaign_id: str, channel: str, contact_ids: Sequence[str], first_seq: int
    ) -> int:
        rows = [
            (campaign_id, contact_id, first_seq + index, channel)
            for index, contact_id in enumerate(contact_ids)
        ]

        def write(connection: sqlite3.Connection) -> int:
            before = connection.total_changes
            connection.executemany(
                "INSERT OR IGNORE INTO campaign_recipients (campaign_id, contact_id, seq,"
                " channel, state) VALUES (?, ?, ?, ?, 'pending')",
                rows,
            )
            return connection.total_changes - before

        return await self.database.write(write)

    async def next_seq(self, campaign_id: str) -> int:
        def read(connection: sqlite3.Connection) -> int:
            row = connection.execute(
                "SELECT coalesce(max(seq) + 1, 0) FROM campaign_recipients WHERE campaign_id = ?",
                (campaign_id,),
            ).fetchone()
            return int(row[0])

        return await self.database.read(read)

    async def pending(self, campaign_id: str, now: datetime, limit: int) -> list[Recipient]:
        def read(connection: sqlite3.Connection) -> list[Recipient]:
            rows = connection.execute(
                "SELECT * FROM campaign_recipients WHERE campaign_id = ? AND state = 'pending'"
                " AND (not_before IS NULL OR not_before <= ?) ORDER BY seq LIMIT ?",
                (campaign_id, format_timestamp(now), limit),
            ).fetchall()
            return [_recipient(row) for row in rows]

        return await self.database.read(read)

    async def has_pending(self, campaign_id: str) -> bool:
        def read(connection: sqlite3.Connection) -> bool:
            row = connection.execute(
                "SELECT 1 FROM campaign_recipients WHERE campaign_id = ? AND state = 'pending'"
                " LIMIT 1",
                (campaign_id,),
            ).fetchone()
            return row is not None

        return await self.database.read(read)

    async def settle(self, recipient: Recipient) -> bool:
        def write(connection: sqlite3.Connection) -> bool:
            updated = connection.execute(
                "UPDATE campaign_recipients SET state = ?, skip_reason = ?, not_before = ?,"
                " message_id = ?, queued_at = ?"
                " WHERE campaign_id = ? AND contact_id = ? AND state = 'pending'",
                (
                    recipient.state.value,
                    None if recipient.skip_reason is None else recipient.skip_reason.value,
                    _text(recipient.not_before),
                    recipient.message_id,
                    _text(recipient.queued_at),
                    recipient.campaign_id,
                    recipient.contact_id,
                ),
            )
            return updated.rowcount == 1

        return await self.database.write(write)

    async def skip_pending(self, campaign_id: str, reason: SkipReason, limit: int) -> int:
        def write(connection: sqlite3.Connection) -> int:
            updated = connection.execute(
                "UPDATE campaign_recipients SET state = 'skipped', skip_reason = ?,"
                " not_before = NULL WHERE campaign_id = ? AND contact_id IN (SELECT contact_id"
                " FROM campaign_recipients WHERE campaign_id = ? AND state = 'pending' LIMIT ?)",
                (reason.value, campaign_id, campaign_id, limit),
            )
            return updated.rowcount

        return await self.database.write(write)

    async def record_outcome(
        self,
        campaign_id: str,
        contact_id: str,
        status: str,
        in_doubt: bool,
        error_code: str | None,
        at: datetime,
    ) -> None:
        stamps = "".join(f", {name} = coalesce({name}, ?)" for name in reached(status))
        when = format_timestamp(at)

        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                f"UPDATE campaign_recipients SET status = ?, in_doubt = ?,"  # noqa: S608
                f" error_code = ?{stamps} WHERE campaign_id = ? AND contact_id = ?",
                (
                    status,
                    int(in_doubt),
                    error_code,
                    *([when] * len(reached(status))),
                    campaign_id,
                    contact_id,
                ),
            )

        await self.database.write(write)

    async def of_contact(self, contact_id: str, channel: str) -> list[Recipient]:
        def read(connection: sqlite3.Connection) -> list[Recipient]:
            rows = connection.execute(
                "SELECT * FROM campaign_recipients WHERE contact_id = ? AND channel = ?"
                " AND state = 'queued' ORDER BY queued_at DESC LIMIT 100",
                (contact_id, channel),
            ).fetchall()
            return [_recipient(row) for row in rows]

        return await self.database.read(read)

    async def stamp(self, campaign_id: str, contact_id: str, name: str, at: datetime) -> bool:
        if name not in STAMPED:
            raise ValueError(f"not a stamp: {name!r}")

        def write(connection: sqlite3.Connection) -> bool:
            updated = connection.execute(
                f"UPDATE campaign_recipients SET {name} = ?"  # noqa: S608
                f" WHERE campaign_id = ? AND contact_id = ? AND {name} IS NULL",
                (format_timestamp(at), campaign_id, contact_id),
            )
            return updated.rowcount == 1

        return await self.database.write(write)

    async def counts(self, campaign_id: str) -> Counts:
        def read(connection: sqlite3.Connection) -> Counts:
            rows = connection.execute(
                "SELECT state, skip_reason, status, in_doubt, error_code,"
                " sent_at IS NOT NULL AS sent, delivered_at IS NOT NULL AS delivered,"
                " read_at IS NOT NULL AS read, replied_at IS NOT NULL AS replied,"
                " opted_out_at IS NOT NULL AS opted_out, count(*) AS n"
                " FROM campaign_recipients WHERE campaign_id = ?"
                " GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10",
                (campaign_id,),
            ).fetchall()
            return counted([dict(row) for row in rows])

        return await self.database.read(read)

    async def timeline(self, campaign_id: str) -> list[Minute]:
        def read(connection: sqlite3.Connection) -> list[Minute]:
            rows = connection.execute(
                "SELECT minute, sum(sent) AS sent, sum(delivered) AS delivered FROM ("
                " SELECT substr(sent_at, 1, 16) AS minute, 1 AS sent, 0 AS delivered"
                " FROM campaign_recipients WHERE campaign_id = ? AND sent_at IS NOT NULL"
                " UNION ALL"
                " SELECT substr(delivered_at, 1, 16), 0, 1"
                " FROM campaign_recipients WHERE campaign_id = ? AND delivered_at IS NOT NULL"
                ") GROUP BY minute ORDER BY minute",
                (campaign_id, campaign_id),
            ).fetchall()
            return [
                Minute(parse_timestamp(row["minute"] + ":00Z"), row["sent"], row["delivered"])
                for row in rows
            ]

        return await self.database.read(read)

    async def recipients(
        self,
        campaign_id: str,
        state: RecipientState | None,
        cursor: str | None,
        limit: int,
    ) -> Page:
        after = -1 if cursor is None else seq_of_cursor(cursor)
        select = "SELECT * FROM campaign_recipients WHERE campaign_id = ? AND seq > ?"
        params: list[Any] = [campaign_id, after]
        if state is not None:
            select += " AND state = ?"
            params.append(state.value)

        def read(connection: sqlite3.Connection) -> Page:
            rows = connection.execute(
                select + " ORDER BY seq LIMIT ?", [*params, limit + 1]
            ).fetchall()
            items = [_recipient(row) for row in rows[:limit]]
            next_cursor = seq_cursor(items[-1].seq) if len(rows) > limit else None
            return Page(items, next_cursor)

        return await self.database.read(read)

    async def log_progress(self, campaign_id: str) -> None:
        def write(connection: sqlite3.Connection) -> None:
            sql = "SELECT data FROM campaigns WHERE id = ?"
            _log(connection, _campaign(fetch_one(connection, sql, (campaign_id,), "campaign")))

        await self.database.write(write)


def _text(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)

"""The dashboard's store on SQLite (tables ``dashboard_conversations``, ``dashboard_counted``,
``dashboard_meta``, and the rollups' tiers ``dashboard_rollups`` (quarter hours),
``dashboard_days`` and ``dashboard_hours``)."""

from __future__ import annotations

import functools
import itertools
import json
import sqlite3
from collections.abc import Collection, Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from omnichannel_core.module import ConversationStatus, format_timestamp, parse_timestamp
from omnichannel_core.module.sqlite import SqliteDatabase, SqliteMigration
from omnichannel_core.modules.dashboard.fold import fold
from omnichannel_core.modules.dashboard.records import (
    ConversationState,
    DayRow,
    Fact,
    HourRow,
    Increment,
    Metric,
)
from omnichannel_core.modules.dashboard.store import UTC_ZONE, Clock, QueueCounts, RollupRow
from omnichannel_core.modules.dashboard.tiers import Additions

HOURS_TABLE = """
    CREATE TABLE dashboard_hours (
        dimension TEXT NOT NULL,
        hour TEXT NOT NULL,
        metric TEXT NOT NULL,
        count INTEGER NOT NULL,
        bins TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (dimension, hour, metric)
    ) WITHOUT ROWID
"""
"""The hours' tier: a local hour (its start, UTC) per dimension and metric; a dimension's
hours are one range of the key."""


def add_the_hours(connection: sqlite3.Connection) -> None:
    """Step 2: the hours' tier, counted from the quarter hours kept so far (in the zone the
    days are counted in), so a store counted before it has its hours without a rebuild."""
    connection.execute(HOURS_TABLE)
    row = connection.execute("SELECT value FROM dashboard_meta WHERE key = 'zone'").fetchone()
    added = Additions(UTC_ZONE if row is None else ZoneInfo(row[0]))
    for bucket, channel, agent, metric, bin_index, count in connection.execute(
        "SELECT bucket, channel, agent, metric, bin, count FROM dashboard_rollups"
    ):
        increment = Increment(parse_timestamp(bucket), channel, agent, Metric(metric), bin_index)
        added.add([increment], count)
    _write_spans(connection, "dashboard_hours", "hour", _hour_rows(added))


MIGRATIONS: tuple[SqliteMigration, ...] = (
    """
    CREATE TABLE dashboard_conversations (
        conversation_id TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        status TEXT NOT NULL,
        assignee TEXT,
        cycle_start TEXT,
        wait_start TEXT,
        responded INTEGER NOT NULL DEFAULT 0,
        waiting_since TEXT
    ) WITHOUT ROWID;
    CREATE INDEX dashboard_conversations_waiting
        ON dashboard_conversations (waiting_since) WHERE waiting_since IS NOT NULL;
    CREATE INDEX dashboard_conversations_queue
        ON dashboard_conversations (status, assignee);
    CREATE INDEX dashboard_conversations_clock
        ON dashboard_conversations (wait_start) WHERE wait_start IS NOT NULL;
    CREATE TABLE dashboard_rollups (
        bucket TEXT NOT NULL,
        channel TEXT NOT NULL,
        agent TEXT NOT NULL,
        metric TEXT NOT NULL,
        bin INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (bucket, channel, agent, metric, bin)
    ) WITHOUT ROWID;
    CREATE TABLE dashboard_counted (
        key TEXT PRIMARY KEY,
        at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX dashboard_counted_by_time ON dashboard_counted (at);
    CREATE TABLE dashboard_days (
        day TEXT NOT NULL,
        dimension TEXT NOT NULL,
        metric TEXT NOT NULL,
        count INTEGER NOT NULL,
        bins TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (day, dimension, metric)
    ) WITHOUT ROWID;
    CREATE TABLE dashboard_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    add_the_hours,
)
"""Step 1, then step 2 (the hours' tier). Never change a released step: append the next
one."""


def _time(value: str | None) -> datetime | None:
    return None if value is None else parse_timestamp(value)


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def _state(row: sqlite3.Row) -> ConversationState:
    return ConversationState(
        conversation_id=row["conversation_id"],
        channel=row["channel"],
        status=ConversationStatus(row["status"]),
        assignee=row["assignee"],
        cycle_start=_time(row["cycle_start"]),
        wait_start=_time(row["wait_start"]),
        responded=bool(row["responded"]),
        waiting_since=_time(row["waiting_since"]),
    )


def _save(connection: sqlite3.Connection, state: ConversationState) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO dashboard_conversations (conversation_id, channel, status,"
        " assignee, cycle_start, wait_start, responded, waiting_since)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            state.conversation_id,
            state.channel,
            str(state.status),
            state.assignee,
            _stamp(state.cycle_start),
            _stamp(state.wait_start),
            int(state.responded),
            _stamp(state.waiting_since),
        ),
    )


_timestamp = functools.lru_cache(maxsize=4096)(format_timestamp)
"""`format_timestamp` of quarter hours and hours, kept: a while's facts share a few."""

SpanRows = list[tuple[str, str, str, int, int]]
"""Counts to add to the days' or the hours' tier: the day or hour, the dimension, the
metric, the bin (`records.NO_BIN` for a plain count) and the count."""


def _day_rows(added: Additions) -> SpanRows:
    return [
        (day.isoformat(), dimension, str(metric), bin_index, count)
        for ((day, dimension, metric), bin_index), count in added.days.items()
    ]


def _hour_rows(added: Additions) -> SpanRows:
    return [
        (_timestamp(hour), dimension, str(metric), bin_index, count)
        for ((hour, dimension, metric), bin_index), count in added.hours.items()
    ]


def _write_spans(connection: sqlite3.Connection, table: str, column: str, rows: SpanRows) -> None:
    """Add ``rows`` to the days' or hours' tier (SQLite adds a bin's count in the row's
    JSON)."""
    # Only the table and column names of this module are spliced in.
    connection.executemany(
        f"INSERT INTO {table} ({column}, dimension, metric, count, bins)"  # noqa: S608
        " VALUES (?1, ?2, ?3, ?5,"
        " CASE WHEN ?4 < 0 THEN '{}' ELSE json_object(CAST(?4 AS TEXT), ?5) END)"
        f" ON CONFLICT ({column}, dimension, metric) DO UPDATE SET count = count + ?5,"
        " bins = CASE WHEN ?4 < 0 THEN bins ELSE json_set(bins, '$.\"' || ?4 || '\"',"
        " coalesce(json_extract(bins, '$.\"' || ?4 || '\"'), 0) + ?5) END",
        rows,
    )


def _write(connection: sqlite3.Connection, added: Additions) -> None:
    """Add what the facts of a transaction add, to each tier."""
    connection.executemany(
        "INSERT INTO dashboard_rollups (bucket, channel, agent, metric, bin, count)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (bucket, channel, agent, metric, bin)"
        " DO UPDATE SET count = count + excluded.count",
        [
            (_timestamp(bucket), channel, agent, str(metric), bin_index, count)
            for (bucket, channel, agent, metric, bin_index), count in added.quarters.items()
        ],
    )
    _write_spans(connection, "dashboard_days", "day", _day_rows(added))
    _write_spans(connection, "dashboard_hours", "hour", _hour_rows(added))


def _span(row: sqlite3.Row) -> tuple[str, Metric, int, dict[int, int]]:
    """A row of the days' or hours' tier: its dimension, metric, count and bins."""
    stored = json.loads(row["bins"])
    bins = dict(zip(map(int, stored), stored.values(), strict=True))  # no loop in Python
    return row["dimension"], Metric(row["metric"]), row["count"], bins


class SqliteDashboardStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    async def apply(
        self, facts: Sequence[Fact], sla: timedelta, keep_keys: datetime, zone: ZoneInfo = UTC_ZONE
    ) -> int:
        def write(connection: sqlite3.Connection) -> int:
            counted = 0
            states: dict[str, ConversationState | None] = {}
            added = Additions(zone)
            for fact in facts:
                if connection.execute(
                    "SELECT 1 FROM dashboard_counted WHERE key = ?", (fact.key,)
                ).fetchone():
                    continue
                if fact.conversation_id not in states:
                    row = connection.execute(
                        "SELECT * FROM dashboard_conversations WHERE conversation_id = ?",
                        (fact.conversation_id,),
                    ).fetchone()
                    states[fact.conversation_id] = None if row is None else _state(row)
                folded, increments = fold(states[fact.conversation_id], fact, sla)
                states[fact.conversation_id] = folded
                added.add(increments)
                if fact.at >= keep_keys:
                    connection.execute(
                        "INSERT INTO dashboard_counted (key, at) VALUES (?, ?)",
                        (fact.key, format_timestamp(fact.at)),
                    )
                counted += 1
            for state in states.values():
                if state is not None:
                    _save(connection, state)
            _write(connection, added)
            return counted

        return await self.database.write(write)

    async def rollups(
        self,
        starts: Sequence[datetime],
        channel: str | None = None,
        agent: str | None = None,
        by_channel: bool = False,
        by_agent: bool = False,
        metrics: Collection[Metric] | None = None,
    ) -> list[RollupRow]:
        if len(starts) < 2:
            return []
        edges = [format_timestamp(start) for start in starts]
        spans = ", ".join("(?, ?, ?)" for _ in edges[:-1])
        values: list[object] = []
        for index, (start, end) in enumerate(itertools.pairwise(edges)):
            values.extend((index, start, end))
        # Each span bounds its own rows: bounding the whole period again here would make
        # SQLite search every span with the period's bounds (each row read once per span).
        where, parameters = ["1"], []
        if channel is not None:
            where.append("r.channel = ?")
            parameters.append(channel)
        if agent is not None:
            where.append("r.agent = ?")
            parameters.append(agent)
        if metrics is not None:
            where.append(f"r.metric IN ({', '.join('?' for _ in metrics)})")
            parameters.extend(str(metric) for metric in metrics)
        channel_column = "r.channel" if by_channel else "''"
        agent_column = "r.agent" if by_agent else "''"
        # Only placeholders and the column names above are spliced in.
        sql = (
            f"WITH spans (idx, start, end) AS (VALUES {spans})"  # noqa: S608
            f" SELECT spans.idx AS idx, {channel_column} AS channel, {agent_column} AS agent,"
            " r.metric AS metric, r.bin AS bin, sum(r.count) AS count"
            " FROM dashboard_rollups AS r JOIN spans"
            " ON r.bucket >= spans.start AND r.bucket < spans.end"
            f" WHERE {' AND '.join(where)}"
            " GROUP BY 1, 2, 3, 4, 5"
        )

        def read(connection: sqlite3.Connection) -> list[RollupRow]:
            rows = connection.execute(sql, [*values, *parameters]).fetchall()
            return [
                RollupRow(
                    row["idx"],
                    row["channel"],
                    row["agent"],
                    Metric(row["metric"]),
                    row["bin"],
                    row["count"],
                )
                for row in rows
            ]

        return await self.database.read(read)

    async def waiting(
        self, before: datetime, limit: int, since: datetime | None = None
    ) -> list[ConversationState]:
        def read(connection: sqlite3.Connection) -> list[ConversationState]:
            rows = connection.execute(
                "SELECT * FROM dashboard_conversations WHERE wait_start IS NOT NULL"
                " AND wait_start >= ? AND wait_start < ? ORDER BY wait_start LIMIT ?",
                (_stamp(since) or "", format_timestamp(before), limit),
            ).fetchall()
            return [_state(row) for row in rows]

        return await self.database.read(read)

    async def clocks(self, since: datetime, before: datetime) -> list[Clock]:
        def read(connection: sqlite3.Connection) -> list[Clock]:
            rows = connection.execute(
                "SELECT wait_start, channel, assignee FROM dashboard_conversations"
                " WHERE wait_start >= ? AND wait_start < ?",
                (format_timestamp(since), format_timestamp(before)),
            ).fetchall()
            return [Clock(parse_timestamp(row[0]), row[1], row[2]) for row in rows]

        return await self.database.read(read)

    async def longest_waiting(self) -> ConversationState | None:
        def read(connection: sqlite3.Connection) -> ConversationState | None:
            row = connection.execute(
                "SELECT * FROM dashboard_conversations WHERE waiting_since IS NOT NULL"
                " ORDER BY waiting_since LIMIT 1"
            ).fetchone()
            return None if row is None else _state(row)

        return await self.database.read(read)

    async def queue(self, agents: Collection[str]) -> QueueCounts:
        def read(connection: sqlite3.Connection) -> QueueCounts:
            counts: dict[str, int] = {"open": 0, "pending": 0}
            unassigned, by_agent = 0, dict.fromkeys(agents, 0)
            rows = connection.execute(
                "SELECT status, assignee, count(*) AS n FROM dashboard_conversations"
                " WHERE status IN ('open', 'pending') GROUP BY status, assignee"
            ).fetchall()
            for row in rows:
                counts[row["status"]] += row["n"]
                if row["assignee"] is None:
                    unassigned += row["n"]
                elif row["assignee"] in by_agent:
                    by_agent[row["assignee"]] += row["n"]
            return QueueCounts(counts["open"], counts["pending"], unassigned, by_agent)

        return await self.database.read(read)

    async def days(self, first: date, last: date) -> list[DayRow]:
        def read(connection: sqlite3.Connection) -> list[DayRow]:
            rows = connection.execute(
                "SELECT * FROM dashboard_days WHERE day >= ? AND day <= ?",
                (first.isoformat(), last.isoformat()),
            ).fetchall()
            return [DayRow(date.fromisoformat(row["day"]), *_span(row)) for row in rows]

        return await self.database.read(read)

    async def hours(self, since: datetime, before: datetime, dimension: str) -> list[HourRow]:
        def read(connection: sqlite3.Connection) -> list[HourRow]:
            rows = connection.execute(
                "SELECT * FROM dashboard_hours WHERE dimension = ? AND hour >= ? AND hour < ?",
                (dimension, format_timestamp(since), format_timestamp(before)),
            ).fetchall()
            return [HourRow(parse_timestamp(row["hour"]), *_span(row)) for row in rows]

        return await self.database.read(read)

    async def zone(self) -> str | None:
        def read(connection: sqlite3.Connection) -> str | None:
            row = connection.execute(
                "SELECT value FROM dashboard_meta WHERE key = 'zone'"
            ).fetchone()
            return None if row is None else str(row["value"])

        return await self.database.read(read)

    async def clear(self, zone: str) -> None:
        def write(connection: sqlite3.Connection) -> None:
            tables = (
                "dashboard_conversations",
                "dashboard_rollups",
                "dashboard_counted",
                "dashboard_days",
                "dashboard_hours",
            )
            for table in tables:
                connection.execute(f"DELETE FROM {table}")  # noqa: S608 (names above)
            _set_zone(connection, zone)

        await self.database.write(write)

    async def counted_in(self, zone: str) -> None:
        await self.database.write(lambda connection: _set_zone(connection, zone))

    async def forget_keys(self, before: datetime) -> int:
        def write(connection: sqlite3.Connection) -> int:
            return connection.execute(
                "DELETE FROM dashboard_counted WHERE at < ?", (format_timestamp(before),)
            ).rowcount

        return await self.database.write(write)


def _set_zone(connection: sqlite3.Connection, zone: str | None) -> None:
    if zone is None:
        connection.execute("DELETE FROM dashboard_meta WHERE key = 'zone'")
        return
    connection.execute(
        "INSERT INTO dashboard_meta (key, value) VALUES ('zone', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (zone,),
    )

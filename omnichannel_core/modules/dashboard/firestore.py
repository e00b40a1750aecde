"""The dashboard's store on Firestore (imported only when the server runs on Firestore: it
needs Google's client).

``dashboard_conversations/{conversation_id}``
    A conversation's state as the figures see it: ``channel``, ``status``, ``assignee``,
    ``cycle_start``, ``wait_start``, ``responded``, ``waiting_since``, every field written
    (null until set). :meth:`~FirestoreDashboardStore.waiting` is a range on ``wait_start``
    and :meth:`~FirestoreDashboardStore.longest_waiting` the lowest ``waiting_since`` that
    is not null (single-field indexes).
``dashboard_rollups/{document_key(bucket, channel, agent, metric, bin)}``
    One row of the rollups: ``count``, and its key as fields (``bucket`` a timestamp,
    ``channel``, ``agent``, ``metric``, ``bin``). A report reads the rows of its period, a
    range on ``bucket`` with ``channel`` and ``agent`` equal to a value when asked (composite
    indexes in firestore.indexes.json: ``channel``, ``bucket``; ``agent``, ``bucket``;
    ``channel``, ``agent``, ``bucket``), and sums them per report bucket here: a document
    read per row.
``dashboard_days/{document_key(day, dimension, metric)}``
    A day of the business's zone for one dimension and metric: ``day`` (``YYYY-MM-DD``),
    ``dimension``, ``metric``, ``count``, and ``bins`` (a duration's histogram: a map of
    bin to count). A daily report reads the days of its period, a range on ``day``: a few
    thousand documents a month, whatever the volume.
``dashboard_hours/{document_key(hour, dimension, metric)}``
    A local hour of the business's zone (``hours.py`` defines them) for one dimension and
    metric: ``hour`` (its start, a timestamp), ``dimension``, ``metric``, ``count``,
    ``bins`` as in the days, and ``dimension_hour``: the dimension's ``document_key`` (64
    hex digits) then the hour's UTC timestamp text, so that a dimension's hours are one
    range of that field's single-field index. An hourly report reads the hours of its
    period of one dimension, one range on ``dimension_hour``: with no composite index, and
    a document per hour and metric that had a count.
``dashboard_meta/zone``
    ``value``: the zone the days and hours are counted in.
``dashboard_counted/{document_key(fact key)}``
    A fact counted: ``key`` and its time ``at`` (:meth:`~FirestoreDashboardStore.forget_keys`
    deletes by a range on ``at``).

:meth:`~FirestoreDashboardStore.apply` is a transaction that reads the facts' counted keys
and their conversations' states, folds the facts, reads the rows of the three tiers they
add to, and writes the states, the rows (their counts added up, so a batch writes each row
once) and the keys. Every apply of this process takes its turn (the rows are shared by every
conversation), so they do not abort each other.

One difference from SQLite, where one transaction cannot do it here: Firestore takes
:data:`WRITES` writes in a commit, so a batch of facts needing more is applied in several
transactions, in order, each holding as many facts as fit. Should one of them fail, those
before it stay counted: applying the batch again skips them when their keys were kept (facts
at or after ``keep_keys``), and counts again those whose keys were not.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import attrs
from google.cloud.firestore_v1 import (
    AsyncCollectionReference,
    AsyncDocumentReference,
    AsyncQuery,
    DocumentSnapshot,
    FieldFilter,
)

from omnichannel_core.module import ConversationStatus, format_timestamp
from omnichannel_core.module.firestore import (
    FirestoreDatabase,
    Transaction,
    document_key,
    exact_time,
    optional_time,
)
from omnichannel_core.modules.dashboard.fold import ACTIVE, fold
from omnichannel_core.modules.dashboard.records import (
    ConversationState,
    DayRow,
    Fact,
    HourRow,
    Metric,
)
from omnichannel_core.modules.dashboard.store import UTC_ZONE, Clock, QueueCounts, RollupRow
from omnichannel_core.modules.dashboard.tiers import (
    Additions,
    DayKey,
    HourKey,
    QuarterKey,
    rows_of,
)

CONVERSATIONS = "dashboard_conversations"
ROLLUPS = "dashboard_rollups"
COUNTED = "dashboard_counted"
DAYS = "dashboard_days"
HOURS = "dashboard_hours"
META = "dashboard_meta"
TURN = ("dashboard",)
"""The key this process's writers of the dashboard take turns on."""
WRITES = 500
"""Writes in one transaction (Firestore takes 500 in a commit): a batch of facts needing
more is applied in several. A fact needs at most thirty (its key, its conversation's
state, four rows of the quarter hours, twelve of the days, twelve of the hours), so every
transaction holds one at least."""
BATCH = 400
"""Documents deleted per commit by :meth:`FirestoreDashboardStore.clear` and
:meth:`FirestoreDashboardStore.forget_keys`."""
LONGEST_VALUE = 1500
"""Bytes of the longest string a query can compare a field with."""


def _state(snapshot: DocumentSnapshot) -> ConversationState:
    data = snapshot.to_dict() or {}
    return ConversationState(
        conversation_id=snapshot.id,
        channel=data["channel"],
        status=ConversationStatus(data["status"]),
        assignee=data.get("assignee"),
        cycle_start=optional_time(data.get("cycle_start")),
        wait_start=optional_time(data.get("wait_start")),
        responded=bool(data.get("responded")),
        waiting_since=optional_time(data.get("waiting_since")),
    )


def _state_fields(state: ConversationState) -> dict[str, Any]:
    return {
        "channel": state.channel,
        "status": str(state.status),
        "assignee": state.assignee,
        "cycle_start": state.cycle_start,
        "wait_start": state.wait_start,
        "responded": state.responded,
        "waiting_since": state.waiting_since,
    }


def _comparable(value: str | None) -> bool:
    return value is None or len(value.encode()) < LONGEST_VALUE


def _stored(snapshot: DocumentSnapshot) -> dict[str, Any]:
    """A document's fields ({} for one that does not exist)."""
    return (snapshot.to_dict() or {}) if snapshot.exists else {}


def _bins(stored: dict[str, Any], added: dict[int, int]) -> dict[str, int]:
    """A stored histogram (bin: count, its keys text) with ``added`` added."""
    bins = dict(stored.get("bins") or {})
    for index, count in added.items():
        bins[str(index)] = bins.get(str(index), 0) + count
    return bins


def _span(data: dict[str, Any]) -> tuple[str, Metric, int, dict[int, int]]:
    """A document of the days' or hours' tier: its dimension, metric, count and bins."""
    bins = {int(index): int(count) for index, count in (data.get("bins") or {}).items()}
    return data["dimension"], Metric(data["metric"]), int(data["count"]), bins


def _dimension_hour(dimension: str, hour: datetime) -> str:
    return document_key(dimension) + format_timestamp(hour)


@attrs.define
class _Folded:
    """What the facts of one transaction, folded so far, will write."""

    states: dict[str, ConversationState | None]
    counted_keys: set[str]
    """Keys counted before, or kept by a fact folded here."""
    added: Additions
    changed: dict[str, ConversationState] = attrs.Factory(dict)
    kept: dict[str, datetime] = attrs.Factory(dict)
    taken: int = 0
    """Facts taken in order: counted, or skipped as counted before."""
    counted: int = 0

    @property
    def writes(self) -> int:
        return len(self.changed) + self.added.rows + len(self.kept)

    def take(self, fact: Fact, sla: timedelta, keep_keys: datetime) -> bool:
        """Fold ``fact`` in, or skip it if its key was counted; False (and nothing changed)
        when folding it would make the writes exceed :data:`WRITES`."""
        if fact.key in self.counted_keys:
            self.taken += 1
            return True
        state, increments = fold(self.states[fact.conversation_id], fact, sla)
        kept = fact.at >= keep_keys
        more = (fact.conversation_id not in self.changed) + self.added.added_rows(increments)
        if self.writes + more + kept > WRITES:
            return False
        self.states[fact.conversation_id] = state
        self.changed[fact.conversation_id] = state
        self.added.add(increments)
        if kept:
            self.kept[fact.key] = fact.at
            self.counted_keys.add(fact.key)
        self.taken += 1
        self.counted += 1
        return True


async def forget_the_zone(database: FirestoreDatabase) -> None:
    """Forget which zone the figures are counted in, as if they never were: the subscriber
    then counts them all again (a rebuild: `rollups.Rollups.handle`) at its next event. The
    hours' tier came after the first stores' figures, which have none: this is how they get
    them (on SQLite, a migration step adds them up from the quarter hours)."""
    await database.collection(META).document("zone").delete()


class FirestoreDashboardStore:
    def __init__(self, database: FirestoreDatabase) -> None:
        self.database = database

    def _collection(self, name: str) -> AsyncCollectionReference:
        return self.database.collection(name)

    def _state_document(self, conversation_id: str) -> AsyncDocumentReference:
        return self._collection(CONVERSATIONS).document(conversation_id)

    def _counted_document(self, key: str) -> AsyncDocumentReference:
        return self._collection(COUNTED).document(document_key(key))

    def _row_document(self, key: QuarterKey) -> AsyncDocumentReference:
        bucket, channel, agent, metric, bin_index = key
        name = document_key(format_timestamp(bucket), channel, agent, str(metric), str(bin_index))
        return self._collection(ROLLUPS).document(name)

    def _day_document(self, key: DayKey) -> AsyncDocumentReference:
        day, dimension, metric = key
        name = document_key(day.isoformat(), dimension, str(metric))
        return self._collection(DAYS).document(name)

    def _hour_document(self, key: HourKey) -> AsyncDocumentReference:
        hour, dimension, metric = key
        name = document_key(format_timestamp(hour), dimension, str(metric))
        return self._collection(HOURS).document(name)

    async def apply(
        self,
        facts: Sequence[Fact],
        sla: timedelta,
        keep_keys: datetime,
        zone: ZoneInfo = UTC_ZONE,
    ) -> int:
        counted = taken = 0
        while taken < len(facts):
            window = facts[taken : taken + WRITES]

            async def body(transaction: Transaction, window: Sequence[Fact] = window) -> _Folded:
                return await self._apply(transaction, window, sla, keep_keys, zone)

            folded = await self.database.transact(TURN, body)
            if not folded.taken:  # never: WRITES holds the most a fact needs
                raise RuntimeError(f"a fact needs more than {WRITES} writes")
            taken += folded.taken
            counted += folded.counted
        return counted

    async def _apply(
        self,
        transaction: Transaction,
        facts: Sequence[Fact],
        sla: timedelta,
        keep_keys: datetime,
        zone: ZoneInfo,
    ) -> _Folded:
        """Fold as many of ``facts`` as one transaction can write, in order (one at least),
        and queue the writes."""
        conversation_ids = list(dict.fromkeys(fact.conversation_id for fact in facts))
        snapshots = await transaction.get(
            *(self._counted_document(fact.key) for fact in facts),
            *(self._state_document(each) for each in conversation_ids),
        )
        keys, states = snapshots[: len(facts)], snapshots[len(facts) :]
        folded = _Folded(
            states={
                conversation_id: _state(snapshot) if snapshot.exists else None
                for conversation_id, snapshot in zip(conversation_ids, states, strict=True)
            },
            counted_keys={
                fact.key for fact, snapshot in zip(facts, keys, strict=True) if snapshot.exists
            },
            added=Additions(zone),
        )
        for fact in facts:
            if not folded.take(fact, sla, keep_keys):
                break
        await self._add(transaction, folded.added)
        for conversation_id, state in folded.changed.items():
            transaction.set(self._state_document(conversation_id), _state_fields(state))
        for key, at in folded.kept.items():
            transaction.set(self._counted_document(key), {"key": key, "at": at})
        return folded

    async def _add(self, transaction: Transaction, added: Additions) -> None:
        """Read the rows of each tier that ``added`` adds to, and queue their new counts."""
        days, hours = rows_of(added.days), rows_of(added.hours)
        quarters = list(added.quarters)
        if not quarters:
            return  # then nothing was added to the days or hours either
        read = await transaction.get(
            *map(self._row_document, quarters),
            *map(self._day_document, days),
            *map(self._hour_document, hours),
        )
        quarters_read = read[: len(quarters)]
        days_read = read[len(quarters) : len(quarters) + len(days)]
        hours_read = read[len(quarters) + len(days) :]
        for key, snapshot in zip(quarters, quarters_read, strict=True):
            bucket, channel, agent, metric, bin_index = key
            transaction.set(
                snapshot.reference,
                {
                    "bucket": bucket,
                    "channel": channel,
                    "agent": agent,
                    "metric": str(metric),
                    "bin": bin_index,
                    "count": _stored(snapshot).get("count", 0) + added.quarters[key],
                },
            )
        for ((day, dimension, metric), (count, bins)), snapshot in zip(
            days.items(), days_read, strict=True
        ):
            stored = _stored(snapshot)
            transaction.set(
                snapshot.reference,
                {
                    "day": day.isoformat(),
                    "dimension": dimension,
                    "metric": str(metric),
                    "count": stored.get("count", 0) + count,
                    "bins": _bins(stored, bins),
                },
            )
        for ((hour, dimension, metric), (count, bins)), snapshot in zip(
            hours.items(), hours_read, strict=True
        ):
            stored = _stored(snapshot)
            transaction.set(
                snapshot.reference,
                {
                    "hour": hour,
                    "dimension": dimension,
                    "metric": str(metric),
                    "dimension_hour": _dimension_hour(dimension, hour),
                    "count": stored.get("count", 0) + count,
                    "bins": _bins(stored, bins),
                },
            )

    async def rollups(
        self,
        starts: Sequence[datetime],
        channel: str | None = None,
        agent: str | None = None,
        by_channel: bool = False,
        by_agent: bool = False,
        metrics: Collection[Metric] | None = None,
    ) -> list[RollupRow]:
        if len(starts) < 2 or not (_comparable(channel) and _comparable(agent)):
            return []
        edges = [start.astimezone(UTC) for start in starts]
        query: AsyncQuery = (
            self._collection(ROLLUPS)
            .where(filter=FieldFilter("bucket", ">=", edges[0]))
            .where(filter=FieldFilter("bucket", "<", edges[-1]))
        )
        if channel is not None:
            query = query.where(filter=FieldFilter("channel", "==", channel))
        if agent is not None:
            query = query.where(filter=FieldFilter("agent", "==", agent))
        if metrics is not None:
            query = query.where(filter=FieldFilter("metric", "in", [str(m) for m in metrics]))
        sums: Counter[tuple[int, str, str, str, int]] = Counter()
        async for snapshot in query.stream():
            data = snapshot.to_dict() or {}
            index = bisect.bisect_right(edges, exact_time(data["bucket"])) - 1
            kept_apart = (
                data["channel"] if by_channel else "",
                data["agent"] if by_agent else "",
            )
            sums[(index, *kept_apart, data["metric"], data["bin"])] += data["count"]
        return [
            RollupRow(index, row_channel, row_agent, Metric(metric), bin_index, count)
            for (index, row_channel, row_agent, metric, bin_index), count in sorted(sums.items())
        ]

    async def waiting(
        self, before: datetime, limit: int, since: datetime | None = None
    ) -> list[ConversationState]:
        query = self._collection(CONVERSATIONS).where(filter=FieldFilter("wait_start", "<", before))
        if since is not None:
            query = query.where(filter=FieldFilter("wait_start", ">=", since))
        ordered = query.order_by("wait_start").limit(limit)
        return [_state(snapshot) async for snapshot in ordered.stream()]

    async def clocks(self, since: datetime, before: datetime) -> list[Clock]:
        query = (
            self._collection(CONVERSATIONS)
            .where(filter=FieldFilter("wait_start", ">=", since))
            .where(filter=FieldFilter("wait_start", "<", before))
            .select(["wait_start", "channel", "assignee"])
        )
        found = []
        async for snapshot in query.stream():
            data = snapshot.to_dict() or {}
            found.append(
                Clock(exact_time(data["wait_start"]), data["channel"], data.get("assignee"))
            )
        return found

    async def longest_waiting(self) -> ConversationState | None:
        query = (
            self._collection(CONVERSATIONS)
            .where(filter=FieldFilter("waiting_since", "!=", None))
            .order_by("waiting_since")
            .limit(1)
        )
        async for snapshot in query.stream():
            return _state(snapshot)
        return None

    async def queue(self, agents: Collection[str]) -> QueueCounts:
        """A count query each (Firestore counts on its indexes, reading no document): open,
        pending, unassigned, and one per agent asked about."""
        states = self._collection(CONVERSATIONS)
        active = FieldFilter("status", "in", [str(s) for s in ACTIVE])

        async def count(query: AsyncQuery) -> int:
            counting: Any = query.count()  # the library types it as the class, not an instance
            (counted,) = await counting.get()
            return int(counted[0].value)

        queries = [
            states.where(filter=FieldFilter("status", "==", str(ConversationStatus.OPEN))),
            states.where(filter=FieldFilter("status", "==", str(ConversationStatus.PENDING))),
            states.where(filter=active).where(filter=FieldFilter("assignee", "==", None)),
            *(
                states.where(filter=active).where(filter=FieldFilter("assignee", "==", agent))
                for agent in agents
            ),
        ]
        opened, pending, unassigned, *mine = await asyncio.gather(*map(count, queries))
        return QueueCounts(opened, pending, unassigned, dict(zip(agents, mine, strict=True)))

    async def days(self, first: date, last: date) -> list[DayRow]:
        query = (
            self._collection(DAYS)
            .where(filter=FieldFilter("day", ">=", first.isoformat()))
            .where(filter=FieldFilter("day", "<=", last.isoformat()))
        )
        found = []
        async for snapshot in query.stream():
            data = snapshot.to_dict() or {}
            found.append(DayRow(date.fromisoformat(data["day"]), *_span(data)))
        return found

    async def hours(self, since: datetime, before: datetime, dimension: str) -> list[HourRow]:
        query = (
            self._collection(HOURS)
            .where(filter=FieldFilter("dimension_hour", ">=", _dimension_hour(dimension, since)))
            .where(filter=FieldFilter("dimension_hour", "<", _dimension_hour(dimension, before)))
        )
        found = []
        async for snapshot in query.stream():
            data = snapshot.to_dict() or {}
            found.append(HourRow(exact_time(data["hour"]), *_span(data)))
        return found

    async def zone(self) -> str | None:
        snapshot = await self._collection(META).document("zone").get()
        return str((snapshot.to_dict() or {})["value"]) if snapshot.exists else None

    async def clear(self, zone: str | None) -> None:
        # The zone goes first: a clear that dies half way leaves none, so it is done again.
        await self._collection(META).document("zone").delete()
        for name in (CONVERSATIONS, ROLLUPS, COUNTED, DAYS, HOURS):
            await self._delete(self._collection(name))
        if zone is not None:
            await self.counted_in(zone)

    async def counted_in(self, zone: str) -> None:
        await self._collection(META).document("zone").set({"value": zone})

    async def forget_keys(self, before: datetime) -> int:
        query = self._collection(COUNTED).where(filter=FieldFilter("at", "<", before))
        return await self._delete(query)

    async def _delete(self, query: AsyncQuery | AsyncCollectionReference) -> int:
        """Delete what ``query`` finds, :data:`BATCH` documents per commit; how many."""
        deleted = 0
        while True:
            found = [snapshot.reference async for snapshot in query.limit(BATCH).stream()]
            if found:
                batch = self.database.client.batch()
                for reference in found:
                    batch.delete(reference)
                await batch.commit()
                deleted += len(found)
            if len(found) < BATCH:
                return deleted

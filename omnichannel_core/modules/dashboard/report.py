"""A period's figures: the rollups summed into the report's buckets (hours or days of the
business's zone), with percentiles from the duration histograms and the waits breaching the
target now added to the bucket where each started."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import attrs

from omnichannel_core.modules.dashboard.durations import percentiles
from omnichannel_core.modules.dashboard.hours import hour_starts
from omnichannel_core.modules.dashboard.records import (
    AGENT,
    CHANNEL,
    HISTOGRAMS,
    NO_AGENT,
    NO_BIN,
    TOTAL,
    DayRow,
    HourRow,
    Interval,
    Metric,
)
from omnichannel_core.modules.dashboard.store import Clock, DashboardStore, RollupRow
from omnichannel_core.modules.dashboard.views import (
    AgentFigures,
    Bucket,
    ChannelFigures,
    Durations,
    Figures,
    Report,
)


def bucket_starts(first: date, last: date, interval: Interval, zone: ZoneInfo) -> list[datetime]:
    """The UTC starts of the report's buckets from ``first`` to ``last`` (local dates,
    both included), then the end: each local midnight, or each local hour (`hours`
    defines them: a day of a daylight-saving change has 23 or 25 of them)."""
    start = datetime.combine(first, time(), zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), zone).astimezone(UTC)
    if interval is Interval.HOUR:
        return [*hour_starts(start, end, zone), end]
    days = (last - first).days + 1
    return [
        datetime.combine(first + timedelta(days=n), time(), zone).astimezone(UTC)
        for n in range(days + 1)
    ]


@attrs.define
class Tally:
    """What a bucket (or a total) adds up to, as the rows are read."""

    counts: dict[Metric, int] = attrs.field(factory=lambda: defaultdict(int))
    histograms: dict[Metric, dict[int, int]] = attrs.field(
        factory=lambda: defaultdict(lambda: defaultdict(int))
    )

    def add(self, metric: Metric, bin_index: int, count: int) -> None:
        if metric in HISTOGRAMS:
            self.histograms[metric][bin_index] += count
        else:
            self.counts[metric] += count

    def add_tally(self, other: Tally) -> None:
        """Add another tally's counts and histograms (the buckets' to the total)."""
        for metric, count in other.counts.items():
            self.counts[metric] += count
        for metric, bins in other.histograms.items():
            histogram = self.histograms[metric]
            for bin_index, count in bins.items():
                histogram[bin_index] += count

    def add_span(self, row: DayRow | HourRow) -> None:
        """Add a day's or an hour's row: its count, or its histogram."""
        if row.metric in HISTOGRAMS:
            histogram = self.histograms[row.metric]
            for bin_index, count in row.bins.items():
                histogram[bin_index] += count
        else:
            self.counts[row.metric] += row.count

    def figures(self) -> Figures:
        return Figures(
            conversations_opened=self.counts[Metric.OPENED],
            conversations_resolved=self.counts[Metric.RESOLVED],
            messages_in=self.counts[Metric.MESSAGES_IN],
            messages_out=self.counts[Metric.MESSAGES_OUT],
            first_response=_durations(self.histograms[Metric.FIRST_RESPONSE]),
            resolution=_durations(self.histograms[Metric.RESOLUTION]),
            sla_breaches=self.counts[Metric.SLA_BREACHED],
        )


def _durations(bins: dict[int, int]) -> Durations:
    median, p90 = percentiles(bins, [0.5, 0.9])
    return Durations(sum(bins.values()), median, p90)


def _summed(rows: Iterable[RollupRow], size: int) -> tuple[list[Tally], Tally]:
    buckets = [Tally() for _ in range(size)]
    total = Tally()
    for row in rows:
        buckets[row.bucket].add(row.metric, row.bin, row.count)
        total.add(row.metric, row.bin, row.count)
    return buckets, total


def _grouped(rows: Iterable[RollupRow], key: str) -> dict[str, Tally]:
    groups: dict[str, Tally] = defaultdict(Tally)
    for row in rows:
        groups[getattr(row, key)].add(row.metric, row.bin, row.count)
    return groups


READ_ATTEMPTS = 5
"""How many times a report reads its figures when a wait starts or stops while it reads them.
The running waits and the rollups are separate reads, not one snapshot: a response folded
between them would count its wait twice (running, and answered past the target) or not at
all. So the running waits are read again after the rollups (each wait by its own start,
not its bucket: one answered and another starting in the same bucket meanwhile would look
alike), and the figures again if they differ; after this many tries the last reading
stands (the figures move faster than they can be read: any one of them is as good as a
moment later)."""


@attrs.frozen
class Period:
    """What a report covers: local days ``first`` to ``last``, in hours or days, of a
    channel or an agent, or of all."""

    first: date
    last: date
    interval: Interval
    channel: str | None = None
    agent: str | None = None


async def report(
    store: DashboardStore, query: Period, zone: ZoneInfo, sla: timedelta, now: datetime
) -> Report:
    """The report (docs/dashboard.md, "Over a period")."""
    starts = bucket_starts(query.first, query.last, query.interval, zone)
    for _ in range(READ_ATTEMPTS):
        running = await _running(store, starts, now - sla)
        late = _breaching(running, query, starts)
        if query.channel is not None and query.agent is not None:
            buckets, total, by_channel, by_agent = await _by_quarters(store, query, starts, late)
        else:
            buckets, total, by_channel, by_agent = await _by_spans(store, query, starts, late)
        if Counter(await _running(store, starts, now - sla)) == Counter(running):
            break
    return Report(
        timezone=zone.key,
        interval=query.interval,
        start=query.first.isoformat(),
        end=query.last.isoformat(),
        first_response_sla_minutes=int(sla.total_seconds() // 60),
        as_of=now,
        totals=total.figures(),
        buckets=tuple(
            Bucket(
                tally.figures(),
                start=start.astimezone(zone).isoformat(),
                end=end.astimezone(zone).isoformat(),
            )
            for start, end, tally in zip(starts, starts[1:], buckets, strict=False)
        ),
        channels=tuple(
            ChannelFigures(name, tally.figures()) for name, tally in sorted(by_channel.items())
        ),
        agents=tuple(
            AgentFigures(tally.figures(), user_id=name or None)
            for name, tally in sorted(by_agent.items())
        ),
    )


Summed = tuple[list[Tally], Tally, dict[str, Tally], dict[str, Tally]]
"""A report's sums: per bucket, in total, per channel, per agent."""


async def _by_quarters(
    store: DashboardStore, query: Period, starts: list[datetime], late: list[RollupRow]
) -> Summed:
    """A report of one channel's agent, from the quarter hours (the days and hours are
    kept per channel and per agent, not per both)."""
    channel, agent, period = query.channel, query.agent, [starts[0], starts[-1]]
    buckets, total = _summed([*await store.rollups(starts, channel, agent), *late], len(starts) - 1)
    by_channel = _grouped(
        [*await store.rollups(period, channel, agent, by_channel=True), *late], "channel"
    )
    by_agent = _grouped(
        [*await store.rollups(period, channel, agent, by_agent=True), *late], "agent"
    )
    return buckets, total, by_channel, by_agent


async def _by_spans(
    store: DashboardStore, query: Period, starts: list[datetime], late: list[RollupRow]
) -> Summed:
    """A report from the days' rows, or the hours' rows, of the total, or of the one channel
    or agent asked for; with the breakdown the days keep (per channel, per agent) for the
    whole period (its local days: the same as its local hours). The breakdown of one
    channel by agent (or of one agent by channel) is the quarter hours'."""
    focus = TOTAL
    if query.channel is not None:
        focus = CHANNEL + query.channel
    elif query.agent is not None:
        focus = AGENT + query.agent
    by_hours = query.interval is Interval.HOUR
    days = [] if by_hours and focus != TOTAL else await store.days(query.first, query.last)
    buckets = [Tally() for _ in starts[1:]]
    if by_hours:
        for hour in await store.hours(starts[0], starts[-1], focus):
            buckets[bisect_right(starts, hour.hour) - 1].add_span(hour)
    else:
        for day in days:
            if day.dimension == focus:
                buckets[(day.day - query.first).days].add_span(day)
    total = Tally()
    for tally in buckets:
        total.add_tally(tally)
    for each in late:
        buckets[each.bucket].add(each.metric, each.bin, each.count)
        total.add(each.metric, each.bin, each.count)

    def breakdown(prefix: str, key: str) -> dict[str, Tally]:
        groups: dict[str, Tally] = defaultdict(Tally)
        for row in days:
            if row.dimension.startswith(prefix):
                groups[row.dimension.removeprefix(prefix)].add_span(row)
        for each in late:
            groups[getattr(each, key)].add(each.metric, each.bin, each.count)
        return groups

    period = [starts[0], starts[-1]]
    if query.channel is not None:
        by_channel = {query.channel: total}
        by_agent = _grouped(
            [*await store.rollups(period, query.channel, by_agent=True), *late], "agent"
        )
    elif query.agent is not None:
        by_agent = {query.agent: total}
        by_channel = _grouped(
            [*await store.rollups(period, agent=query.agent, by_channel=True), *late], "channel"
        )
    else:
        by_channel, by_agent = breakdown(CHANNEL, "channel"), breakdown(AGENT, "agent")
    return buckets, total, by_channel, by_agent


async def _running(store: DashboardStore, starts: list[datetime], before: datetime) -> list[Clock]:
    """The waits running now that started in the report's period before ``before`` (past
    the target); each its own (its start, to the microsecond, tells it from another)."""
    if before <= starts[0]:
        return []
    return await store.clocks(starts[0], min(before, starts[-1]))


def _breaching(running: list[Clock], query: Period, starts: list[datetime]) -> list[RollupRow]:
    """The waits running past the target, as rows of the buckets they started in: a breach
    counts from the moment the target passes, not only once it is answered."""
    late: list[RollupRow] = []
    for clock in running:
        agent = clock.assignee or NO_AGENT
        if query.channel not in (None, clock.channel) or query.agent not in (None, agent):
            continue
        index = bisect_right(starts, clock.started) - 1
        if 0 <= index < len(starts) - 1:
            late.append(RollupRow(index, clock.channel, agent, Metric.SLA_BREACHED, NO_BIN, 1))
    return late

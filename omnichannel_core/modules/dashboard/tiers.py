"""What the facts folded in one transaction add to the rollups' three tiers, summed per row so
that the transaction writes each row once: the quarter hours (UTC) per channel, agent, metric
and bin; the local days and the local hours of the business's zone (`hours`) per dimension
(`records.dimensions_of`) and metric, a duration's bins inside the row."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

import attrs

from omnichannel_core.modules.dashboard.hours import hour_start
from omnichannel_core.modules.dashboard.records import Increment, Metric, dimensions_of

QuarterKey = tuple[datetime, str, str, Metric, int]
"""A quarter hour's row: its start (UTC), channel, agent, metric, bin."""
DayKey = tuple[date, str, Metric]
"""A day's row: the local day, the dimension, the metric."""
HourKey = tuple[datetime, str, Metric]
"""An hour's row: the local hour's start (UTC), the dimension, the metric."""


Row = TypeVar("Row", DayKey, HourKey)
"""A day's or an hour's row key."""


@attrs.define
class Additions:
    """The counts to add, per row of each tier (``zone``: the one the days and hours are
    counted in)."""

    zone: ZoneInfo
    quarters: Counter[QuarterKey] = attrs.Factory(Counter)
    days: Counter[tuple[DayKey, int]] = attrs.Factory(Counter)
    """Per day's row and bin (`records.NO_BIN` for a plain count)."""
    hours: Counter[tuple[HourKey, int]] = attrs.Factory(Counter)
    """Per hour's row and bin."""
    day_rows: set[DayKey] = attrs.Factory(set)
    hour_rows: set[HourKey] = attrs.Factory(set)
    """The days' and hours' rows, each once (what the writes count)."""

    @property
    def rows(self) -> int:
        """The rows to write."""
        return len(self.quarters) + len(self.day_rows) + len(self.hour_rows)

    def added_rows(self, increments: Iterable[Increment]) -> int:
        """How many rows more adding ``increments`` would write."""
        quarters, days, hours = set(), set(), set()
        for each in increments:
            day, hour = _place(each.bucket, self.zone)
            quarters.add((each.bucket, each.channel, each.agent, each.metric, each.bin))
            for dimension in _dimensions(each.channel, each.agent):
                days.add((day, dimension, each.metric))
                hours.add((hour, dimension, each.metric))
        return (
            len(quarters - self.quarters.keys())
            + len(days - self.day_rows)
            + len(hours - self.hour_rows)
        )

    def add(self, increments: Iterable[Increment], times: int = 1) -> None:
        """Add each of ``increments`` (``times`` over)."""
        for each in increments:
            day, hour = _place(each.bucket, self.zone)
            metric, bin_index = each.metric, each.bin
            self.quarters[each.bucket, each.channel, each.agent, metric, bin_index] += times
            for dimension in _dimensions(each.channel, each.agent):
                day_row, hour_row = (day, dimension, metric), (hour, dimension, metric)
                self.days[day_row, bin_index] += times
                self.hours[hour_row, bin_index] += times
                self.day_rows.add(day_row)
                self.hour_rows.add(hour_row)


@functools.lru_cache(maxsize=4096)
def _place(quarter: datetime, zone: ZoneInfo) -> tuple[date, datetime]:
    """The local day and the start of the local hour of a quarter hour (kept: the facts
    of a while share a few quarter hours)."""
    return quarter.astimezone(zone).date(), hour_start(quarter, zone)


_dimensions = functools.lru_cache(maxsize=4096)(dimensions_of)
"""`records.dimensions_of`, kept: there are a few channels and agents."""


def rows_of(counts: Counter[tuple[Row, int]]) -> dict[Row, tuple[int, dict[int, int]]]:
    """Per row of the days' or the hours' tier (counts per row and bin): the count to add,
    and the bins (none for a plain count)."""
    rows: dict[Row, tuple[int, dict[int, int]]] = {}
    for (row, bin_index), count in counts.items():
        total, bins = rows.get(row, (0, {}))
        if bin_index >= 0:
            bins[bin_index] = count
        rows[row] = (total + count, bins)
    return rows

"""What the dashboard keeps (store ``dashboard``): each conversation's state as the figures
see it, the rollups (counts per quarter hour, channel, agent and metric, durations per bin;
and per local hour and local day of the business's zone, per dimension and metric), and
which facts were counted, so a fact handed over twice (an event redelivered, or met by
both a rebuild and the subscriber) is counted once."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import attrs

from omnichannel_core.module import StoreSpec, lazy
from omnichannel_core.modules.dashboard.records import (
    ConversationState,
    DayRow,
    Fact,
    HourRow,
    Metric,
)

UTC_ZONE = ZoneInfo("UTC")


@attrs.frozen
class Clock:
    """A first response clock still running: when it started, where, and whose."""

    started: datetime
    channel: str
    assignee: str | None


@attrs.frozen
class RollupRow:
    """A count summed over the rows of one bucket of a report (see
    :meth:`DashboardStore.rollups`)."""

    bucket: int
    """The index of the report's bucket (its position in the starts it was asked for)."""
    channel: str
    agent: str
    metric: Metric
    bin: int
    count: int


@attrs.frozen
class QueueCounts:
    """The conversations not resolved: open, pending, assigned to nobody, and assigned to
    each agent asked about."""

    open: int
    pending: int
    unassigned: int
    by_agent: dict[str, int]


class DashboardStore(Protocol):
    """Three tiers of rollups. Per quarter hour (UTC), channel, agent, metric and bin: what
    the queue now reads (the last hour's messages), reports of a channel and an agent
    together, and the breakdown of one channel by agent (or of one agent by channel). Per
    day, and per hour, of the business's zone (`hours` defines its hours), dimension
    (total, a channel, an agent) and metric, with the histogram in the row: what daily and
    hourly reports read, a few thousand day rows a month and at most about 24 times as many
    hour rows, whatever the volume. The same transaction adds a fact to all three."""

    async def apply(
        self, facts: Sequence[Fact], sla: timedelta, keep_keys: datetime, zone: ZoneInfo = UTC_ZONE
    ) -> int:
        """Fold ``facts`` (in order; of any conversations) into the states and rollups, in
        one transaction, each at most once: a fact whose key was counted before is skipped.
        The key of a fact at or after ``keep_keys`` is kept (an older one can never be
        handed over again: the event log no longer has it). Days and hours are ``zone``'s
        (the one :meth:`clear` named). Returns how many were counted."""

    async def days(self, first: date, last: date) -> list[DayRow]:
        """Every day row from ``first`` to ``last`` (both included)."""

    async def hours(self, since: datetime, before: datetime, dimension: str) -> list[HourRow]:
        """The hour rows of ``dimension`` (`records.TOTAL`, a channel's, an agent's) whose
        hour starts from ``since`` to before ``before``."""

    async def zone(self) -> str | None:
        """The zone the days and hours are counted in (None: the figures are not whole:
        before a first rebuild, or while one runs, or after one that did not finish)."""

    async def rollups(
        self,
        starts: Sequence[datetime],
        channel: str | None = None,
        agent: str | None = None,
        by_channel: bool = False,
        by_agent: bool = False,
        metrics: Collection[Metric] | None = None,
    ) -> list[RollupRow]:
        """The rollups summed per report bucket (``starts``: the UTC starts of consecutive
        buckets, the last one the end) and metric and bin, filtered by channel and agent,
        and kept apart per channel or agent when asked (otherwise those fields are ""); only
        ``metrics`` when given (with no channel or agent filter)."""

    async def waiting(
        self, before: datetime, limit: int, since: datetime | None = None
    ) -> list[ConversationState]:
        """Conversations in a cycle whose first response clock started before ``before``
        (and at or after ``since``) and is still running, oldest first (those breaching the
        SLA now)."""

    async def clocks(self, since: datetime, before: datetime) -> list[Clock]:
        """The first response clocks still running that started from ``since`` to before
        ``before``: each one's start, channel and assignee (a report's breaches now)."""

    async def longest_waiting(self) -> ConversationState | None:
        """The conversation whose customer has waited longest for an answer (oldest
        ``waiting_since``, not resolved); None when nobody waits."""

    async def queue(self, agents: Collection[str]) -> QueueCounts:
        """How many conversations are open and pending, unassigned (open or pending), and
        assigned to each of ``agents`` (open or pending)."""

    async def clear(self, zone: str | None) -> None:
        """Forget every state, rollup (of every tier) and counted key (a rebuild starts from
        nothing), and count days and hours in ``zone`` from now on; None forgets the zone
        first (a rebuild under way: one that dies before :meth:`counted_in` is done again)."""

    async def counted_in(self, zone: str) -> None:
        """Say the figures are whole, their days and hours ``zone``'s (a rebuild's end)."""

    async def forget_keys(self, before: datetime) -> int:
        """Drop the counted keys of facts before ``before``; how many were dropped."""


def dashboard_store_spec() -> StoreSpec:
    from omnichannel_core.modules.dashboard.firestore_steps import FIRESTORE_MIGRATIONS
    from omnichannel_core.modules.dashboard.sqlite import MIGRATIONS

    return StoreSpec(
        "dashboard",
        DashboardStore,
        sqlite=lazy("omnichannel_core.modules.dashboard.sqlite", "SqliteDashboardStore"),
        firestore=lazy("omnichannel_core.modules.dashboard.firestore", "FirestoreDashboardStore"),
        sqlite_migrations=MIGRATIONS,
        firestore_migrations=FIRESTORE_MIGRATIONS,
    )

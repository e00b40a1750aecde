"""What the dashboard's routes take and answer, declared as body classes so the OpenAPI
document describes them (docs/dashboard.md defines every figure)."""

from __future__ import annotations

from datetime import datetime

import attrs

from omnichannel_core.module import field
from omnichannel_core.modules.dashboard.records import Interval

DATE = r"^\d{4}-\d{2}-\d{2}$"


@attrs.frozen
class ReportQuery:
    start: str | None = field(
        default=None,
        pattern=DATE,
        description="The first day (YYYY-MM-DD, the business's zone); default: 6 days"
        " before `end`.",
    )
    end: str | None = field(
        default=None,
        pattern=DATE,
        description="The last day, included (YYYY-MM-DD); default: today.",
    )
    interval: Interval = field(default=Interval.DAY, description="hour or day buckets")
    channel: str | None = field(default=None, max_length=64, description="only this channel")
    agent: str | None = field(
        default=None, max_length=64, description="only this user's figures (a user id)"
    )


@attrs.frozen
class Durations:
    """Durations (seconds) counted in a period: how many, their median and 90th
    percentile (null when none); exact to the second up to 10 minutes, within 1% above."""

    __schema_name__ = "DashboardDurations"

    count: int
    median_seconds: int | None
    p90_seconds: int | None


@attrs.frozen
class Figures:
    """A period's figures (docs/dashboard.md, "Over a period")."""

    __schema_name__ = "DashboardFigures"

    conversations_opened: int
    conversations_resolved: int
    messages_in: int
    messages_out: int
    first_response: Durations
    resolution: Durations
    sla_breaches: int


@attrs.frozen
class Bucket:
    """One hour or day of the report, in the business's zone."""

    __schema_name__ = "DashboardBucket"

    figures: Figures
    start: str = field(description="ISO 8601, with the zone's offset at that time")
    end: str = field(description="the next bucket's start")


@attrs.frozen
class AgentFigures:
    __schema_name__ = "DashboardAgentFigures"

    figures: Figures
    user_id: str | None = field(
        description="null: figures that are no user's (unassigned conversations, programs'"
        " messages)"
    )


@attrs.frozen
class ChannelFigures:
    __schema_name__ = "DashboardChannelFigures"

    channel: str
    figures: Figures


@attrs.frozen
class Report:
    """The figures of a period, per bucket, in total, per channel and per agent."""

    __schema_name__ = "DashboardReport"

    timezone: str
    interval: Interval
    start: str
    end: str
    first_response_sla_minutes: int
    as_of: datetime
    totals: Figures
    buckets: tuple[Bucket, ...]
    channels: tuple[ChannelFigures, ...]
    agents: tuple[AgentFigures, ...]


@attrs.frozen
class QueueView:
    __schema_name__ = "DashboardQueue"

    open: int
    pending: int
    unassigned: int = field(description="open or pending, assigned to nobody")


@attrs.frozen
class Waiting:
    """The conversation whose customer has waited longest for an answer."""

    __schema_name__ = "DashboardWaiting"

    conversation_id: str
    channel: str
    assignee: str | None
    waiting_since: datetime
    wait_seconds: int


@attrs.frozen
class AgentNow:
    __schema_name__ = "DashboardAgent"

    user_id: str
    name: str | None
    connected_since: datetime
    status: str = field(description="online (connected, available) or away (connected, away)")
    open_conversations: int = field(description="open or pending, assigned to them")


@attrs.frozen
class ChannelMessages:
    __schema_name__ = "DashboardChannelMessages"

    channel: str
    inbound: int
    outbound: int


@attrs.frozen
class Backlog:
    __schema_name__ = "DashboardBacklog"

    channel: str
    waiting: int = field(description="messages due to be sent now, waiting for their turn")


@attrs.frozen
class CampaignNow:
    __schema_name__ = "DashboardCampaign"

    id: str
    name: str
    channel: str
    status: str


@attrs.frozen
class Now:
    """The queue as it is now (docs/dashboard.md, "Now")."""

    __schema_name__ = "DashboardNow"

    as_of: datetime
    conversations: QueueView
    longest_waiting: Waiting | None
    agents: tuple[AgentNow, ...]
    messages: tuple[ChannelMessages, ...]
    outbox: tuple[Backlog, ...]
    refresh_seconds: int = field(description="poll again after this long (the contract)")
    messages_since: datetime = field(description="the start of `messages`' window")
    campaigns: tuple[CampaignNow, ...] = field(description="running or paused")

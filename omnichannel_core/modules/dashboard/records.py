"""The dashboard's records: the facts its figures are made of, each conversation's state as
the figures see it, and what one fact adds to the rollups."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta

import attrs

from omnichannel_core.module import AuthorKind, ConversationStatus

BUCKET = timedelta(minutes=15)
"""The rollups' finest bucket: every time zone's offset is a whole number of quarter hours,
so a business's hours and days are whole numbers of buckets, whatever its zone."""

NO_AGENT = ""
"""The agent of a figure that is no one's (a conversation nobody was assigned)."""
NO_BIN = -1
"""The bin of a plain count (histograms count per bin: `durations`)."""


class Metric(enum.StrEnum):
    """What a rollup row counts (docs/dashboard.md defines each)."""

    OPENED = "opened"
    RESOLVED = "resolved"
    MESSAGES_IN = "messages_in"
    MESSAGES_OUT = "messages_out"
    FIRST_RESPONSE = "first_response"
    """A histogram of first response times, in the bucket of the message that started the
    wait."""
    RESOLUTION = "resolution"
    """A histogram of resolution times, in the bucket of the resolution."""
    SLA_BREACHED = "sla_breached"
    """Waits answered (or resolved unanswered) after the SLA, in the bucket the wait
    started."""


class Interval(enum.StrEnum):
    """A report's buckets: the business's hours, or its days."""

    HOUR = "hour"
    DAY = "day"


HISTOGRAMS = frozenset({Metric.FIRST_RESPONSE, Metric.RESOLUTION})


def bucket_of(at: datetime) -> datetime:
    """The start of the quarter hour ``at`` falls in, in UTC."""
    at = at.astimezone(UTC)
    return at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)


@attrs.frozen
class MessageFact:
    """A message was stored (``message.created``, or a rebuild's read of the store)."""

    message_id: str
    conversation_id: str
    channel: str
    at: datetime
    inbound: bool
    author_kind: AuthorKind | None = None
    """Who sent an outbound message; None for one stored before authors were recorded
    (counted as a program's: it answers a waiting customer, opens no conversation)."""
    author_id: str | None = None
    automated: bool = False
    """An inbound message the customer's side sent on its own (an auto-reply)."""

    @property
    def key(self) -> str:
        return f"m:{self.message_id}"


@attrs.frozen
class ChangeFact:
    """A conversation's status or assignee changed (``conversation.updated`` with a
    ``change_id``, or a rebuild's read of the history)."""

    change_id: str
    conversation_id: str
    channel: str
    at: datetime
    status: ConversationStatus
    previous_status: ConversationStatus
    assignee: str | None

    @property
    def key(self) -> str:
        return f"c:{self.change_id}"


Fact = MessageFact | ChangeFact


@attrs.frozen
class ConversationState:
    """A conversation as the figures see it.

    :param cycle_start: when its current spell of being open began (None: resolved, or
        never opened: nothing the dashboard counts).
    :param wait_start: when the customer's first message of the cycle not yet answered by
        a person or program came (the first response clock); None once answered.
    :param responded: a first response was made in this cycle.
    :param waiting_since: the customer's oldest message not yet answered, in any cycle
        (what "waiting longest" reads); None when the last word was the business's.
    """

    conversation_id: str
    channel: str
    status: ConversationStatus = ConversationStatus.OPEN
    assignee: str | None = None
    cycle_start: datetime | None = None
    wait_start: datetime | None = None
    responded: bool = False
    waiting_since: datetime | None = None


@attrs.frozen
class Increment:
    """One count added to a rollup row."""

    bucket: datetime
    channel: str
    agent: str
    metric: Metric
    bin: int = NO_BIN

    def dimensions(self) -> tuple[str, str, str]:
        """The days' and hours' rows it adds to (`dimensions_of`)."""
        return dimensions_of(self.channel, self.agent)


TOTAL = ""
CHANNEL = "channel:"
AGENT = "agent:"
"""The days' and the hours' rows are kept per dimension, not per channel and agent together:
a month of a busy business is a few thousand days' rows (`DayRow`), and about 24 times as
many hours' (`HourRow`) at most (an agent off work has no rows for those hours)."""


def dimensions_of(channel: str, agent: str) -> tuple[str, str, str]:
    """The days' and hours' rows a count of ``channel`` and ``agent`` adds to: the total,
    the channel's, the agent's (``agent:`` for no one's)."""
    return (TOTAL, f"{CHANNEL}{channel}", f"{AGENT}{agent}")


@attrs.frozen
class DayRow:
    """A day of the business's zone, for one dimension (the total, a channel, an agent) and
    metric: its count, and for a duration its histogram (bin: count)."""

    day: date
    dimension: str
    metric: Metric
    count: int
    bins: dict[int, int] = attrs.field(factory=dict)


@attrs.frozen
class HourRow:
    """A local hour of the business's zone (``hours.py`` defines them), for one dimension
    and metric: its count, and for a duration its histogram (bin: count)."""

    hour: datetime
    """Its start, in UTC."""
    dimension: str
    metric: Metric
    count: int
    bins: dict[int, int] = attrs.field(factory=dict)

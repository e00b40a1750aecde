"""The campaigns' records, as their API shows them: a campaign (its audience, message,
schedule and rate), its recipients, and what became of them (:class:`Counts`)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import attrs

from omnichannel_core.module import Media, field, utcnow

CAMPAIGN_PREFIX = "cmp"
DEFAULT_REPLY_WINDOW_HOURS = 72.0


class CampaignStatus(enum.StrEnum):
    """Where a campaign is in its life (docs/campaigns.md, "Lifecycle")."""

    DRAFT = "draft"
    """Being written: everything may change; nothing is sent."""
    SCHEDULED = "scheduled"
    """Launched, to start at ``schedule.at``."""
    RUNNING = "running"
    """Its audience is frozen into recipients, who are being sent to."""
    PAUSED = "paused"
    """Sending stopped until resumed (messages already queued still go)."""
    COMPLETED = "completed"
    """Every recipient was sent to or skipped; outcomes still come in."""
    CANCELLED = "cancelled"
    """Stopped for good: recipients not yet sent to never will be."""


EDITABLE = frozenset({CampaignStatus.DRAFT})
"""The statuses in which a campaign's audience and message may change."""
LIVE = frozenset({CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED})
"""The statuses a campaign may be cancelled from."""


class AudienceKind(enum.StrEnum):
    SEGMENT = "segment"
    """The CRM segment's members when the campaign starts."""
    CONTACTS = "contacts"
    """Contacts named by id."""
    LIST = "list"
    """An uploaded list of addresses on the campaign's channel: each is the contact reached
    there, made when none is."""


@attrs.frozen
class Audience:
    """Who a campaign goes to; frozen into its recipients when it starts."""

    __schema_name__ = "CampaignAudience"

    kind: AudienceKind
    segment_id: str | None = None
    contact_ids: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()


@attrs.frozen
class Template:
    """A WhatsApp template (Twilio's Content API): its Content SID and variables, each a
    text with ``{{variables}}`` of its own."""

    __schema_name__ = "CampaignTemplate"

    content_sid: str
    variables: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class CampaignMessage:
    """What each recipient is sent, rendered for them (docs/campaigns.md, "Variables")."""

    text: str | None = None
    subject: str | None = field(default=None, description="An email's subject (a template).")
    media: tuple[Media, ...] = ()
    template: Template | None = field(
        default=None,
        description="Sent instead of the text outside the channel's messaging window (and"
        " always when there is no text).",
    )
    defaults: dict[str, str] = field(
        factory=dict, description="A value for each variable a contact has none of."
    )


@attrs.frozen
class QuietHours:
    """Hours, in each recipient's own time zone, when nothing is sent to them: sending
    waits for ``end``. ``start`` after ``end`` spans midnight (``21:00``-``08:00``)."""

    __schema_name__ = "CampaignQuietHours"

    start: str
    end: str


@attrs.frozen
class Schedule:
    """When a campaign starts, and when its recipients may be sent to."""

    __schema_name__ = "CampaignSchedule"

    at: datetime | None = field(default=None, description="When it starts; null: at launch.")
    timezone: str = field(
        default="UTC",
        description="The IANA zone quiet hours are read in for a recipient without one of"
        " their own.",
    )
    quiet_hours: QuietHours | None = None


@attrs.frozen
class Campaign:
    """A mass message to an audience, on one channel."""

    id: str
    name: str
    channel: str
    sender: str = attrs.field(
        metadata={
            "description": "How the channel reaches recipients (its reach: ``sms`` or"
            " ``whatsapp`` on Twilio)."
        }
    )
    audience: Audience
    message: CampaignMessage
    schedule: Schedule = attrs.field(factory=Schedule)
    rate: float | None = field(
        default=None,
        description="Messages per second at most; null: the channel's rate for the sender.",
    )
    reply_window_hours: float = field(
        default=DEFAULT_REPLY_WINDOW_HOURS,
        description="An inbound message within this many hours of a send counts as a reply.",
    )
    status: CampaignStatus = CampaignStatus.DRAFT
    created_by: str | None = None
    created_at: datetime = attrs.field(factory=utcnow)
    updated_at: datetime = attrs.field(factory=utcnow)
    launched_at: datetime | None = None
    started_at: datetime | None = field(
        default=None, description="When its audience was frozen and sending began."
    )
    finished_at: datetime | None = None
    frozen: bool = field(default=False, description="Its recipients are listed.")


class RecipientState(enum.StrEnum):
    PENDING = "pending"
    """Not sent to yet (perhaps waiting for the end of their quiet hours)."""
    SKIPPED = "skipped"
    """Not sent to, for ``skip_reason``."""
    QUEUED = "queued"
    """A message was queued for them (``message_id``); ``status`` follows it."""


class SkipReason(enum.StrEnum):
    OPTED_OUT = "opted_out"
    """They opted out on the channel (SMS ``STOP``)."""
    NO_ADDRESS = "no_address"
    """They have no identity on the channel."""
    WINDOW_CLOSED = "window_closed"
    """Outside the channel's messaging window, and the campaign has no template."""
    MISSING_VARIABLE = "missing_variable"
    """The message names a variable they have no value for, without a default."""
    CONTACT_GONE = "contact_gone"
    """The contact was erased before their turn."""
    TOO_LONG = "too_long"
    """The text, with their values filled in, is longer than 4,096 characters."""
    REFUSED = "refused"
    """The inbox refused the message (an attachment no longer kept...)."""
    CANCELLED = "cancelled"
    """The campaign was cancelled before their turn."""


@attrs.frozen
class Recipient:
    """One contact of a campaign's frozen audience, and what became of their message."""

    __schema_name__ = "CampaignRecipient"

    campaign_id: str
    contact_id: str
    seq: int = attrs.field(metadata={"description": "Their place in the sending order."})
    channel: str
    state: RecipientState = RecipientState.PENDING
    skip_reason: SkipReason | None = None
    not_before: datetime | None = field(
        default=None, description="Waiting for the end of their quiet hours."
    )
    message_id: str | None = None
    status: str | None = field(default=None, description="Their message's delivery status.")
    in_doubt: bool = False
    error_code: str | None = None
    queued_at: datetime | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    failed_at: datetime | None = None
    replied_at: datetime | None = None
    opted_out_at: datetime | None = field(
        default=None, description="When they opted out on the channel after the send."
    )


@attrs.frozen
class Counts:
    """What became of a campaign's recipients (docs/campaigns.md, "Analytics")."""

    __schema_name__ = "CampaignCounts"

    targeted: int = 0
    pending: int = 0
    skipped: dict[str, int] = field(factory=dict, description="By reason.")
    queued: int = field(default=0, description="Queued or being sent, not in doubt.")
    in_doubt: int = 0
    sent: int = field(default=0, description="Taken by the provider (and perhaps beyond).")
    delivered: int = 0
    undelivered: int = 0
    read: int = 0
    failed: dict[str, int] = field(factory=dict, description="By error code.")
    cancelled: int = 0
    replied: int = 0
    opted_out: int = field(default=0, description="Opted out on the channel after the send.")


@attrs.frozen
class Minute:
    """Sends and deliveries of one minute (UTC)."""

    __schema_name__ = "CampaignMinute"

    minute: datetime
    sent: int = 0
    delivered: int = 0


@attrs.frozen
class Report:
    """A campaign's figures: its counts and a timeline by minute."""

    __schema_name__ = "CampaignReport"

    campaign: Campaign
    counts: Counts
    timeline: tuple[Minute, ...] = ()


def counted(rows: list[dict[str, Any]]) -> Counts:
    """The counts of recipients given as rows of ``state``, ``skip_reason``, ``status``,
    ``in_doubt``, ``error_code`` and the ``*_at`` times that matter, with ``n`` (how many
    recipients share them): the one arithmetic every backend's report uses."""
    totals: dict[str, int] = {}
    skipped: dict[str, int] = {}
    failed: dict[str, int] = {}

    def add(name: str, n: int) -> None:
        totals[name] = totals.get(name, 0) + n

    for row in rows:
        n = int(row["n"])
        add("targeted", n)
        state = row["state"]
        if state == RecipientState.PENDING:
            add("pending", n)
            continue
        if state == RecipientState.SKIPPED:
            reason = row["skip_reason"] or "unknown"
            skipped[reason] = skipped.get(reason, 0) + n
            continue
        status = row["status"]
        if row["in_doubt"]:
            add("in_doubt", n)
        elif status in ("queued", "sending"):
            add("queued", n)
        if row["sent"]:
            add("sent", n)
        if row["delivered"]:
            add("delivered", n)
        if row["read"]:
            add("read", n)
        if status == "undelivered":
            add("undelivered", n)
        if status == "failed":
            code = row["error_code"] or "unknown"
            failed[code] = failed.get(code, 0) + n
        if status == "cancelled":
            add("cancelled", n)
        if row["replied"]:
            add("replied", n)
        if row["opted_out"]:
            add("opted_out", n)
    return Counts(skipped=skipped, failed=failed, **totals)

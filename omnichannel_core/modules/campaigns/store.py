"""What the campaigns module needs from storage (store ``campaigns``): the campaigns, and
each one's recipients with what became of them. Every write is one transaction; the
conditional ones (a status change, a recipient leaving ``pending``) are what keep two runners
from both winning."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from omnichannel_core.module import (
    AuditEntry,
    Conflict,
    InvalidInput,
    Page,
    StoreSpec,
    decode_cursor,
    encode_cursor,
    lazy,
)
from omnichannel_core.modules.campaigns.records import (
    Campaign,
    CampaignStatus,
    Counts,
    Minute,
    Recipient,
    RecipientState,
    SkipReason,
)

CAMPAIGN_UPDATED = "campaign.updated"
"""The event logged when a campaign changes (its status, its message...) and, while it
runs, as its counts move (docs/campaigns.md, "Live progress")."""

TIMES = (
    "not_before",
    "queued_at",
    "sent_at",
    "delivered_at",
    "read_at",
    "failed_at",
    "replied_at",
    "opted_out_at",
)
"""A recipient's times, as every backend stores them."""
STAMPED = frozenset({"replied_at", "opted_out_at"})
"""The times :meth:`CampaignStore.stamp` sets."""
OUTCOME_TIMES = {
    "sent": "sent_at",
    "delivered": "delivered_at",
    "read": "read_at",
    "failed": "failed_at",
    "undelivered": "failed_at",
}
"""The time each delivery status stamps on a recipient (the first time it is seen)."""
STATUS_LEVELS = {"sent": 1, "delivered": 2, "read": 3}
"""A status implies those below it: a ``read`` message was sent and delivered."""


def reached(status: str) -> tuple[str, ...]:
    """The time fields a message in ``status`` has reached (``read``: sent, delivered and
    read)."""
    level = STATUS_LEVELS.get(status)
    if level is None:
        own = OUTCOME_TIMES.get(status)
        return (own,) if own else ()
    return tuple(OUTCOME_TIMES[name] for name, each in STATUS_LEVELS.items() if each <= level)


def require_status(campaign: Campaign, when: Collection[CampaignStatus]) -> None:
    """Conflict (naming its status) unless the campaign's status is one of ``when``."""
    if campaign.status not in when:
        raise Conflict(
            f"campaign {campaign.id!r} is {campaign.status.value}", status=campaign.status.value
        )


def seq_cursor(seq: int) -> str:
    """The cursor of a recipients page that ended at ``seq``."""
    return encode_cursor(str(seq))


def seq_of_cursor(cursor: str) -> int:
    """The ``seq`` a recipients cursor holds; InvalidInput for one no page gave."""
    (text,) = decode_cursor(cursor, 1)
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise InvalidInput("cursor is not valid", parameter="cursor")
    return int(text)


class CampaignStore(Protocol):
    async def create(self, campaign: Campaign) -> Campaign:
        """Store a new campaign."""

    async def get(self, campaign_id: str) -> Campaign:
        """The campaign; NotFound for an unknown id."""

    async def list_campaigns(
        self, status: CampaignStatus | None, cursor: str | None, limit: int
    ) -> Page:
        """Campaigns, newest first (with ``status``: only those)."""

    async def change(
        self,
        campaign_id: str,
        changes: Mapping[str, Any],
        when: Collection[CampaignStatus],
        audit: AuditEntry | None = None,
    ) -> Campaign:
        """Set ``changes`` (fields of :class:`Campaign` by name, values as the record holds
        them) and ``updated_at``, only while the campaign's status is one of ``when``;
        log ``campaign.updated`` and append ``audit`` in the same write. The campaign as
        stored after. Conflict (naming its status) when it is in another status, NotFound
        for an unknown id."""

    async def delete(self, campaign_id: str, when: Collection[CampaignStatus]) -> None:
        """Delete the campaign (a draft) while its status is one of ``when``; Conflict
        otherwise, NotFound for an unknown id."""

    async def due(self, now: datetime) -> list[Campaign]:
        """The campaigns a runner has work for: scheduled ones whose time has come (or
        came: ``schedule.at`` at or before ``now``, or none), and running ones."""

    async def recently_finished(self, since: datetime) -> list[Campaign]:
        """Completed or cancelled campaigns finished at or after ``since`` (their outcomes
        still come in)."""

    async def add_recipients(
        self, campaign_id: str, channel: str, contact_ids: Sequence[str], first_seq: int
    ) -> int:
        """Add these contacts as ``pending`` recipients, numbered from ``first_seq`` in their
        order; a contact already a recipient is left as it is (a freeze resumed after a
        crash adds nobody twice). How many were added."""

    async def next_seq(self, campaign_id: str) -> int:
        """The ``seq`` after the campaign's highest (0 when it has no recipient): where a
        freeze, perhaps resumed, numbers from."""

    async def pending(self, campaign_id: str, now: datetime, limit: int) -> list[Recipient]:
        """Up to ``limit`` ``pending`` recipients whose ``not_before`` is unset or past, in
        ``seq`` order."""

    async def has_pending(self, campaign_id: str) -> bool:
        """Whether any recipient is still ``pending`` (waiting for quiet hours included)."""

    async def settle(self, recipient: Recipient) -> bool:
        """Write ``recipient``'s state, skip reason, ``not_before``, message id and
        ``queued_at`` while the stored one is still ``pending``; False when it no longer is
        (another runner settled it). What became of the message is :meth:`record_outcome`'s,
        which may have run before (the subscriber follows the message from when it is
        queued)."""

    async def skip_pending(self, campaign_id: str, reason: SkipReason, limit: int) -> int:
        """Skip up to ``limit`` ``pending`` recipients for ``reason``; how many."""

    async def record_outcome(
        self,
        campaign_id: str,
        contact_id: str,
        status: str,
        in_doubt: bool,
        error_code: str | None,
        at: datetime,
    ) -> None:
        """Mirror the recipient's message as it is now: its ``status``, ``in_doubt`` and
        ``error_code``, and stamp each time its status has reached (:func:`reached`) that
        is not stamped yet, with ``at``. Safe to repeat."""

    async def of_contact(self, contact_id: str, channel: str) -> list[Recipient]:
        """The contact's ``queued`` recipients on ``channel``, every campaign's (at most
        the 100 most recently queued)."""

    async def stamp(self, campaign_id: str, contact_id: str, name: str, at: datetime) -> bool:
        """Set ``replied_at`` or ``opted_out_at`` (``name``) when unset; whether it was."""

    async def counts(self, campaign_id: str) -> Counts:
        """What became of the campaign's recipients."""

    async def timeline(self, campaign_id: str) -> list[Minute]:
        """Sends and deliveries per minute, oldest first (minutes with neither left out)."""

    async def recipients(
        self,
        campaign_id: str,
        state: RecipientState | None,
        cursor: str | None,
        limit: int,
    ) -> Page:
        """The campaign's recipients in ``seq`` order, a page at a time (with ``state``:
        only those)."""

    async def log_progress(self, campaign_id: str) -> None:
        """Log ``campaign.updated`` for the campaign, changing nothing (its counts moved)."""


def campaign_store_spec() -> StoreSpec:
    from omnichannel_core.modules.campaigns.sqlite import MIGRATIONS

    return StoreSpec(
        "campaigns",
        CampaignStore,
        sqlite=lazy("omnichannel_core.modules.campaigns.sqlite", "SqliteCampaignStore"),
        firestore=lazy("omnichannel_core.modules.campaigns.firestore", "FirestoreCampaignStore"),
        sqlite_migrations=MIGRATIONS,
    )

"""The outbox's part of the inbox store: what is still to be sent, and the shared pace.

Every outbound message is stored with an outbox entry in the same transaction
(:meth:`InboxStore.create_outbound`), and its entry goes, in the transaction that moves the
message to ``sent`` or beyond, or to a terminal status (``advance_message`` and the
others), so the outbox holds exactly the messages not yet settled. An entry is:

- ``queued``: waiting until ``due_at`` (its ``send_at``, or a retry's backoff), then claimed;
- ``sending``: claimed by a runner, with a lease; once the runner has marked the entry
  ``attempted`` (:meth:`OutboxStore.begin_attempt`, just before it calls the channel) the
  send may be under way; until then it provably is not;
- ``in_doubt``: the send's outcome is unknown (its answer was lost, or its runner died
  mid-send); the message waits for the provider's callback or echo until ``doubt_until``.

`omnichannel_core.modules.inbox.delivery` is the job that moves entries along; the states,
and what each crash leaves, are in docs/delivery.md.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Protocol

import attrs

from omnichannel_core.module import AuditEntry, Message

REPLY = 0
"""The priority of a message someone sent (a reply, an API call): before bulk ones."""
BULK = 1
"""The priority of a mass send (a campaign): it yields to replies on the same channel."""
NOT_CONFIRMED = "not_confirmed"
NOT_CONFIRMED_TEXT = "not confirmed by the provider"
"""The error of a message in doubt that no callback or echo settled before its deadline."""


class OutboxState(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    IN_DOUBT = "in_doubt"


@attrs.frozen
class OutboxEntry:
    """One message still to be settled.

    :param due_at: when it may be claimed next (its ``send_at``, or after a backoff).
    :param first_due_at: when it was first due (how long it has waited).
    :param failing_since: when its first failed attempt was: retries stop ``retry_for``
        after it.
    :param resend: in doubt, on a channel whose provider dedupes on the message id: it is
        sent again (same id) at ``due_at``.
    :param attempted: False only while the runner that claimed it has not yet called the
        channel's ``send`` (a claim clears it, ``begin_attempt`` sets it): a runner that dies
        then leaves a message provably not sent, queued again when its lease ends. Any
        other entry counts as attempted, entries stored before the mark existed too.
    """

    message_id: str
    channel: str
    address: str
    """The recipient's address (the conversation's): which sender, so which pace."""
    state: OutboxState
    priority: int
    due_at: datetime
    first_due_at: datetime
    failing_since: datetime | None = None
    attempts: int = 0
    lease_holder: str | None = None
    lease_until: datetime | None = None
    doubt_until: datetime | None = None
    resend: bool = False
    last_error: str | None = None
    attempted: bool = True


@attrs.frozen
class Failure:
    """How an attempt failed, as its message keeps it: ``error_code``, ``error_message`` and
    ``error_details`` (the channel's details, and ``retryable``)."""

    code: str
    text: str
    details: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Claimed:
    """An entry a runner now holds, with what the channel's ``send`` needs, and the channels
    its contact opted out on (as the claim read them)."""

    entry: OutboxEntry
    message: Message
    address: str
    last_inbound_at: datetime | None
    opted_out: tuple[str, ...] = ()


@attrs.frozen
class ChannelBacklog:
    """What a channel's outbox holds: due (``queued``), ``scheduled`` for later (by
    ``send_at``), waiting to be ``retrying``, being sent (``sending``) and ``in_doubt``; and
    when the longest-waiting entry was first due."""

    queued: int = 0
    scheduled: int = 0
    retrying: int = 0
    sending: int = 0
    in_doubt: int = 0
    oldest_due_at: datetime | None = None


class OutboxStore(Protocol):
    """The outbox's methods of the inbox store. Each write is one transaction, conditional on
    the entry's state so that two runners, or a runner and a status callback, cannot both
    win. All methods are coroutines."""

    async def due_outbound(
        self, now: datetime, limit: int, channel: str | None = None
    ) -> list[OutboxEntry]:
        """Queued entries due at ``now`` (of ``channel`` only, when given): replies first,
        then by ``due_at``."""

    async def next_due_at(self) -> datetime | None:
        """The earliest ``due_at`` of a queued entry, None when none is queued."""

    async def claim_outbound(
        self, message_id: str, holder: str, lease_until: datetime, now: datetime
    ) -> Claimed | None:
        """Take a queued, due entry for ``holder`` until ``lease_until`` (state ``sending``,
        not ``attempted`` yet); None when it is not queued and due (another runner took it,
        a callback settled it, it was cancelled)."""

    async def begin_attempt(self, message_id: str, holder: str, now: datetime) -> bool:
        """Mark durably, in one conditional write, that ``holder`` is about to call the
        channel's ``send`` for an entry it holds with a lease still running at ``now``: the
        entry becomes ``attempted``, with one more attempt on it and its message. False
        when ``holder`` no longer holds it, or its lease ended: the runner must not send."""

    async def extend_lease(self, message_id: str, holder: str, lease_until: datetime) -> bool:
        """Keep an entry ``holder`` is sending until ``lease_until`` (a long send); False
        when it no longer holds it."""

    async def retry_outbound(
        self, message_id: str, holder: str, due_at: datetime, failure: Failure
    ) -> bool:
        """Queue again, due at ``due_at``, an entry ``holder`` is sending (a retryable
        failure: ``failing_since`` set on the first), its message keeping the error (still
        ``queued``) and logging ``message.attempt_failed``; False when ``holder`` no longer
        holds it."""

    async def fail_outbound(self, message_id: str, holder: str, failure: Failure) -> Message | None:
        """Fail a message its channel could not send (``failed``, settled), with the
        failure's code, text and details, while ``holder`` holds its entry; None when it no
        longer does (its lease ended, and it went in doubt or was sent again meanwhile)."""

    async def doubt_outbound(
        self,
        message_id: str,
        holder: str | None,
        doubt_until: datetime,
        resend_at: datetime | None,
        error: str,
        now: datetime,
    ) -> Message | None:
        """Put in doubt an entry being sent: by ``holder`` (its send's answer was lost), or,
        with ``holder`` None, any whose lease expired before ``now`` (its runner died, maybe
        mid-send: ``requeue_unattempted`` first takes those it had not begun). The
        message becomes ``sending`` with ``in_doubt``. With ``resend_at``, it is queued
        again then (same id: the provider dedupes on it). None when the entry was not in
        that state."""

    async def requeue_unattempted(self, message_id: str, now: datetime) -> bool:
        """Queue again, due at ``now``, an entry whose lease ended before ``now`` and that
        its holder never marked ``attempted`` (its runner died before calling the channel:
        the message was not sent). The message is left as it was (``queued``, or in doubt
        from an earlier attempt, to be resent), and its attempts count unchanged. False when
        the entry is not in that state (marked, still leased, settled)."""

    async def expired_leases(self, now: datetime, limit: int) -> list[OutboxEntry]:
        """Entries ``sending`` whose lease ended before ``now``."""

    async def lapsed_doubts(self, now: datetime, limit: int) -> list[OutboxEntry]:
        """Entries in doubt (or queued again in doubt) past ``doubt_until``."""

    async def expire_doubt(self, message_id: str, now: datetime) -> Message | None:
        """Fail (``not_confirmed``) a message still in doubt past its ``doubt_until``; None
        when it was settled meanwhile."""

    async def retry_failed(self, message_id: str, audit: AuditEntry, now: datetime) -> Message:
        """Queue a ``failed`` outbound message again (same id), due now, with its error and
        provider id cleared; Conflict for any other status, NotFound for an unknown id."""

    async def cancel_outbound(self, message_id: str, audit: AuditEntry) -> Message:
        """Cancel a message not yet claimed (status ``cancelled``); Conflict once it is being
        sent or settled."""

    async def outbox_backlog(self, now: datetime) -> dict[str, ChannelBacklog]:
        """Per channel with anything in it: the counts and the oldest due entry."""

    async def reserve_pace(
        self, key: str, interval: float, count: int, now: float
    ) -> tuple[float, float]:
        """Reserve ``count`` send slots on the pace ``key``, shared by every runner: the
        first slot's time (epoch seconds, never before ``now``) and the spacing of the
        others (``interval``, stretched while the pace is slowed: `inbox.pace.reserved`)."""

    async def slow_pace(self, key: str, until: float, now: float) -> None:
        """The provider throttled ``key``: halve its pace (down to a floor), and make no slot
        before ``until``; the pace recovers gradually afterwards."""

"""What the kernel keeps in the store for everyone, as protocols each backend implements:

- :class:`EventLog`: the event log's reads and its pruning (writes append to it inside
  their own transaction: on SQLite `omnichannel_core.store.sqlite.events.append_event`, on
  Firestore `omnichannel_core.store.firestore.events.log_event`);
- :class:`AuditLog`: the audit log, append-only (in a write's own transaction:
  `omnichannel_core.store.sqlite.audit.append_audit`,
  `omnichannel_core.store.firestore.audit.queue_audit`);
- :class:`JobStore`: the job runner's leases and the subscribers' cursors.

A **lease** makes a singleton job run in one runner at a time across every server that
shares the store: a runner takes it for a while (``ttl``), renews it while it works, and
hands it back when it stops. One that dies loses it when it expires; another then takes it.
A **subscriber's cursor** is where it is in the event log, with its failures and whether
the log's retention overtook it. ``/health`` reads them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

import attrs

from omnichannel_core.audit import AuditEntry
from omnichannel_core.events.records import Event
from omnichannel_core.paging import Page


class EventLog(Protocol):
    """The log's reads and its pruning. All methods are coroutines."""

    async def after(self, cursor: str | None, limit: int) -> list[Event]:
        """At most ``limit`` events logged after ``cursor`` (an ``Event.cursor`` of this
        store; None: from the oldest kept), in log order.

        Gapless: once an event has been returned, no event that is returned later sorts
        before it, so a reader that goes on from the last cursor it got misses nothing.
        Raise EventsExpired when events after ``cursor`` have been pruned, or when
        ``cursor`` is ahead of the log (after the newest event ever logged, as when the store
        was reset or restored from a backup since: reading on would skip events until the
        log caught up); the newest event's cursor itself is not ahead, and reads ``[]``.
        Raise InvalidInput for a cursor this store could not have made."""

    async def latest(self) -> str | None:
        """The cursor of the newest event, or None when the log is empty: where a reader
        that asks for no history starts."""

    async def prune(self, before: datetime, keep_after: Sequence[str] = ()) -> int:
        """Delete the events logged before ``before``, except those after any cursor of
        ``keep_after`` (where subscribers are: what they have yet to read stays); returns
        how many. Afterwards :meth:`after` raises EventsExpired for a cursor that a deleted
        event follows (the cursor of the newest deleted event still reads on, missing
        nothing)."""


class AuditLog(Protocol):
    """Append-only. All methods are coroutines."""

    async def append(self, entry: AuditEntry) -> None:
        """Keep ``entry`` for good; Conflict when its id is taken (the stored one stays)."""

    async def list(self, action: str | None, cursor: str | None, limit: int) -> Page:
        """Entries, newest first, optionally only those of one action."""


@attrs.frozen
class Lease:
    """Who runs a singleton job, until when, and when it last finished a run."""

    name: str
    holder: str
    expires_at: datetime
    last_run_at: datetime | None = None


@attrs.frozen
class SubscriberState:
    """A subscriber's place in the event log.

    :param cursor: the last event it handled (None: none yet, it starts where its
        ``start`` says).
    :param failures: how many times in a row its handler raised on the next event.
    :param last_error: what the handler raised last (its type and message).
    :param behind: retention pruned events it had not read; it resynchronises next.
    :param resync_asked: how many resyncs were ever asked for (a subscriber that starts
        with one, or a module's ``ModuleContext.resync``): a counter, not a time, so the
        clocks of the asking process and the runner never matter; only ``ask_resync`` and
        ``start_subscriber`` write it, so a feed saving its cursor never drops a request.
    :param resynced: the ``resync_asked`` the last resync began at (the feed writes it).
    """

    name: str
    cursor: str | None
    updated_at: datetime
    failures: int = 0
    last_error: str | None = None
    behind: bool = False
    resync_asked: int = 0
    resynced: int = 0

    @property
    def resync(self) -> bool:
        """A resync was asked for since the last one began: it resynchronises next (and
        nothing is wrong, unlike ``behind``)."""
        return self.resync_asked > self.resynced


class JobStore(Protocol):
    """Leases and cursors. All methods are coroutines."""

    async def take_lease(
        self, name: str, holder: str, ttl: timedelta, now: datetime
    ) -> Lease | None:
        """Take or renew the lease of ``name`` for ``holder`` until ``now + ttl``, atomically,
        when nobody holds it, its holder's time has run out, or ``holder`` holds it already;
        the lease as stored then, else None (someone else holds it)."""

    async def release_lease(self, name: str, holder: str) -> None:
        """Hand the lease back if ``holder`` holds it, keeping when it last ran."""

    async def record_run(self, name: str, holder: str, at: datetime) -> None:
        """Note that ``holder`` finished a run of ``name`` at ``at`` (while holding it)."""

    async def leases(self) -> list[Lease]:
        """Every lease, held or not, by name."""

    async def subscriber(self, name: str) -> SubscriberState | None:
        """The subscriber's state, None before it was ever started."""

    async def start_subscriber(self, state: SubscriberState) -> SubscriberState:
        """Store ``state`` unless the subscriber has one already, atomically (two servers
        starting at once keep the first); the state stored afterwards."""

    async def save_subscriber(self, state: SubscriberState) -> None:
        """Store the state (a new cursor, a failure counted, a failure cleared)."""

    async def mark_behind(self, name: str) -> None:
        """Note that retention pruned events the subscriber had not read."""

    async def ask_resync(self, name: str) -> int:
        """Count one more resync asked of the subscriber; its ``resync_asked`` now (0, and
        nothing done, when it has no state yet)."""

    async def subscribers(self) -> list[SubscriberState]:
        """Every subscriber's state, by name."""

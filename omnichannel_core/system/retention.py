"""Keeps the event log to ``OMNICHANNEL_EVENT_RETENTION_HOURS``, as the job
``events.prune``: a singleton, every ``OMNICHANNEL_EVENT_PRUNE_SECONDS`` (an hour by default),
run by the job runner (never by the web processes).

Events a subscriber has not read yet are kept, however old, up to
``OMNICHANNEL_EVENT_RETENTION_MAX_HOURS``: a subscriber lagging further than that (its
handler failing for days, its module's runner stopped) is marked behind (``/health`` shows
it), no longer holds the log back, and resynchronises when it runs again. A stream that
resumes from before the horizon is told so (``event: expired``).
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from omnichannel_core.errors import EventsExpired
from omnichannel_core.jobs.specs import Job, JobControl
from omnichannel_core.store.protocols import EventLog, JobStore
from omnichannel_core.timestamps import utcnow

log = structlog.get_logger("omnichannel.events")


class EventRetention:
    """The pruning of the event log.

    :param subscribers: the names of the subscribers registered now (a cursor left by a
        module that is gone holds nothing back).
    :param every: how often it runs.
    """

    def __init__(
        self,
        log_store: EventLog,
        jobs: JobStore,
        subscribers: list[str],
        keep: timedelta,
        at_most: timedelta,
        every: timedelta,
    ) -> None:
        self.log_store = log_store
        self.jobs = jobs
        self.subscribers = set(subscribers)
        self.keep = keep
        self.at_most = max(at_most, keep)
        self.every = every

    async def prune(self) -> int:
        now = utcnow()
        bound = now - self.at_most
        keep_after: list[str] = []
        keep_all = False
        for state in await self.jobs.subscribers():
            if state.name not in self.subscribers or state.behind:
                continue
            try:
                unread = await self.log_store.after(state.cursor, 1)
            except EventsExpired:
                await self.jobs.mark_behind(state.name)
                continue
            if unread and unread[0].at < bound:
                log.warning("subscriber_fell_behind_retention", subscriber=state.name)
                await self.jobs.mark_behind(state.name)
                continue
            if state.cursor is None:
                # It has handled nothing yet: every event kept is one it has yet to read.
                keep_all = keep_all or bool(unread)
                continue
            keep_after.append(state.cursor)
        if keep_all:
            return 0
        pruned = await self.log_store.prune(now - self.keep, keep_after)
        if pruned:
            log.info("events_pruned", count=pruned)
        return pruned

    def job(self) -> Job:
        async def run(control: JobControl) -> None:
            await self.prune()

        return Job(
            "events.prune",
            run,
            every=self.every,
            description="keep the event log to its retention, and no shorter than its"
            " subscribers need",
        )

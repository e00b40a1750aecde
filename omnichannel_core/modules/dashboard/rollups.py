"""The rollups, kept by the subscriber ``dashboard.rollups`` from the event log and rebuilt
from the store (its resync: `omnichannel dashboard rebuild`, retention having pruned events
it had not read, or its first start)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import attrs
import structlog

from omnichannel_core.module import (
    BusinessSettings,
    Event,
    EventReader,
    InboxHistory,
    InboxReader,
    Job,
    JobControl,
    NotFound,
    Subscriber,
    parse_timestamp,
    utcnow,
)
from omnichannel_core.modules.dashboard.facts import EVENT_TYPES, fact_of, facts_of
from omnichannel_core.modules.dashboard.records import ChangeFact, Fact
from omnichannel_core.modules.dashboard.store import UTC_ZONE, DashboardStore

log = structlog.get_logger("omnichannel.dashboard")

SUBSCRIBER = "dashboard.rollups"
REBUILD_PAGE = 100
"""Conversations read, and counted in one transaction, per step of a rebuild."""
OLDEST_READ = 100
"""Events read from the start of the log to tell how old the oldest kept is."""
KEY_MARGIN = timedelta(hours=1)
"""How much earlier than the oldest event kept a rebuild still keeps facts' keys (the
writers' clocks may differ that much from the log's)."""
ALWAYS = datetime(1970, 1, 1, tzinfo=UTC)
"""The subscriber keeps every fact's key: the log may hand its event over again."""
DEFAULT_SLA = timedelta(minutes=15)


class Rollups:
    """Counts facts into the dashboard's store, once each."""

    def __init__(
        self,
        store: DashboardStore,
        events: EventReader,
        reader: Callable[[], InboxReader],
        history: Callable[[], InboxHistory],
        business: Callable[[], BusinessSettings | None],
        key_days: Callable[[], float],
    ) -> None:
        self.store = store
        self.events = events
        self.reader = reader
        self.history = history
        self.business = business
        self.key_days = key_days
        self._zone: str | None = None
        """The zone the store counts days in, as this process last read or set it."""

    async def targets(self) -> tuple[timedelta, ZoneInfo]:
        """The first response target in force and the business's zone (the settings', else
        15 minutes and UTC)."""
        settings = self.business()
        if settings is None:
            return DEFAULT_SLA, UTC_ZONE
        business = await settings.business()
        return timedelta(minutes=business.first_response_sla_minutes), business.zone

    async def handle(self, events: Sequence[Event]) -> None:
        """Count the facts of a batch of events in one transaction."""
        facts: list[Fact] = []
        for event in events:
            fact = fact_of(event)
            if isinstance(fact, ChangeFact) and not fact.channel:  # logged by an older version
                fact = await self._with_channel(fact)
            if fact is not None:
                facts.append(fact)
        if not facts:
            return
        sla, zone = await self.targets()
        if zone.key != await self._counted_zone():
            # The days are the business's: a new zone makes them other days. Count them
            # again (these events with them: they are in the store).
            log.info("dashboard_zone_changed", zone=zone.key)
            await self.rebuild()
            return
        await self.store.apply(facts, sla, ALWAYS, zone)

    async def _counted_zone(self) -> str | None:
        if self._zone is None:
            self._zone = await self.store.zone()
        return self._zone

    async def _with_channel(self, fact: ChangeFact) -> Fact | None:
        try:
            conversation = await self.reader().get_conversation(fact.conversation_id)
        except NotFound:  # erased meanwhile
            return None
        return attrs.evolve(fact, channel=conversation.channel)

    async def rebuild(self) -> None:
        """Count everything again from the store: the conversations' messages and history."""
        started = utcnow()
        sla, zone = await self.targets()
        await self.store.clear(None)  # no zone until the end: a rebuild that dies is redone
        self._zone = None
        keep_keys = await self._oldest_event_time() - KEY_MARGIN
        cursor, conversations, counted = None, 0, 0
        while True:
            records, cursor = await self.history().scan(cursor, REBUILD_PAGE)
            facts = [fact for record in records for fact in facts_of(record)]
            counted += await self.store.apply(facts, sla, keep_keys, zone)
            conversations += len(records)
            if cursor is None:
                break
        await self.store.counted_in(zone.key)
        self._zone = zone.key
        log.info(
            "dashboard_rebuilt",
            conversations=conversations,
            facts=counted,
            seconds=round((utcnow() - started).total_seconds(), 1),
        )

    async def _oldest_event_time(self) -> datetime:
        """The earliest time of the oldest events kept, by the log's clock or by the
        writers' (``data.at``, on which facts are timed): a rebuild keeps the key of every
        fact the log could still hand over, whichever clock is behind."""
        oldest = await self.events.after(None, OLDEST_READ)
        times = [event.at for event in oldest[:1]]
        times += [
            parse_timestamp(e.data["at"]) for e in oldest if isinstance(e.data.get("at"), str)
        ]
        return min(times, default=utcnow())

    def subscriber(self) -> Subscriber:
        return Subscriber(
            SUBSCRIBER,
            handle_batch=self.handle,
            types=EVENT_TYPES,
            start="rebuild",
            resync=self.rebuild,
            description="counts messages and conversation changes into the dashboard's rollups",
        )

    def prune_job(self) -> Job:
        async def prune(control: JobControl) -> None:
            before = utcnow() - timedelta(days=self.key_days())
            dropped = await self.store.forget_keys(before)
            if dropped:
                log.info("dashboard_keys_forgotten", keys=dropped)

        return Job(
            "dashboard.forget_keys",
            prune,
            every=timedelta(hours=1),
            description="forgets which facts were counted once the event log can no longer"
            " hand them over again",
        )

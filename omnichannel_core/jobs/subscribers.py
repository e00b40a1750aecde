"""One event subscriber's feed: the event log, in order, from the subscriber's own cursor,
handed to its handler one event at a time (or each read's events at once, to a
``handle_batch``), at least once.

The cursor (and the handler's failures) is kept in the store
(`omnichannel_core.store.protocols.SubscriberState`): after each batch, and whenever a
failure is counted. A handler that raises gets the same event again after a pause that
doubles from :data:`FIRST_RETRY_SECONDS` up to :data:`LAST_RETRY_SECONDS`; nothing after
it is handed over meanwhile, and the other subscribers, each in a feed of its own, go on.

When events it had not read were pruned (it lagged further than the log keeps, or retention
marked it behind), the subscriber's ``resync`` is called, and it goes on from the oldest
event kept. A handler that keeps failing is no exception: each failure first checks whether
retention marked the subscriber behind meanwhile (the event it is retrying may be gone from
the log), and resyncs rather than retry it.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import time
from collections.abc import Awaitable, Callable, Sequence

import structlog

from omnichannel_core.bus.news import OVERDUE_SECONDS, News
from omnichannel_core.errors import EventsExpired
from omnichannel_core.events.records import Event
from omnichannel_core.jobs.specs import START_LATEST, START_REBUILD, JobControl, Subscriber
from omnichannel_core.store.protocols import EventLog, JobStore, SubscriberState
from omnichannel_core.tasks import cancel_and_wait
from omnichannel_core.timestamps import utcnow

log = structlog.get_logger("omnichannel.jobs")

BATCH = 100
BEHIND_CHECK_SECONDS = 5.0
"""How often a feed reads whether it was marked behind meanwhile (retention, or a resync
asked for: ``ModuleContext.resync``), so it resyncs within seconds."""
FIRST_RETRY_SECONDS = 1.0
LAST_RETRY_SECONDS = 300.0
MAX_ERROR_TEXT = 300


async def start_subscriber(
    subscriber: Subscriber, store: JobStore, events: EventLog
) -> SubscriberState:
    """The subscriber's state; for a new subscriber, its first cursor (the log's newest
    event, or None to read from the oldest kept: ``start``), stored unless another process
    stored one first. Every process does this as it starts, so a subscriber misses nothing
    logged after the first server that knew it started, even before a runner runs it."""
    state = await store.subscriber(subscriber.name)
    if state is not None:
        return state
    start = await events.latest() if subscriber.start == START_LATEST else None
    rebuild = subscriber.start == START_REBUILD  # its resync runs first
    state = await store.start_subscriber(
        SubscriberState(subscriber.name, start, utcnow(), resync_asked=int(rebuild))
    )
    log.info("subscriber_started", subscriber=subscriber.name, cursor=state.cursor)
    return state


class _Outcome(enum.Enum):
    HANDLED = "handled"
    STOPPING = "stopping"
    """The runner is stopping: the event is handed over again next time."""
    BEHIND = "behind"
    """Retention marked the subscriber behind while its handler failed: it resyncs."""


class SubscriberFeed:
    def __init__(
        self, subscriber: Subscriber, store: JobStore, events: EventLog, news: News
    ) -> None:
        self.subscriber = subscriber
        self.store = store
        self.events = events
        self.news = news
        self.state: SubscriberState | None = None

    @property
    def name(self) -> str:
        return self.subscriber.name

    async def run(self, control: JobControl) -> None:
        """Feed the handler until ``control.stopping``."""
        self.state = await self._start()
        checked = time.monotonic()
        with self.news.listening():
            while not control.stopping:
                if time.monotonic() - checked >= BEHIND_CHECK_SECONDS:
                    checked = time.monotonic()
                    if await self._marked_behind():
                        await self._resync()
                        continue
                signal = self.news.signal()
                try:
                    events = await self.events.after(self.state.cursor, BATCH)
                except EventsExpired:
                    await self._resync(expired=True)
                    continue
                if not events:
                    await _first(self.news.wait(signal, OVERDUE_SECONDS), control.sleep(3600))
                    continue
                await self._feed(events, control)

    async def _start(self) -> SubscriberState:
        state = await start_subscriber(self.subscriber, self.store, self.events)
        if state.behind or state.resync:
            self.state = state
            await self._resync()
            assert self.state is not None
            return self.state
        return state

    async def _feed(self, events: list[Event], control: JobControl) -> None:
        assert self.state is not None
        if self.subscriber.handle_batch is not None:
            await self._feed_batch(self.subscriber.handle_batch, events, control)
            return
        assert self.subscriber.handle is not None
        cursor = self.state.cursor
        for event in events:
            if control.stopping:
                break  # keep what was handled; the rest is handed over next time
            if self.subscriber.wants(event):
                deliver = functools.partial(self.subscriber.handle, event)
                outcome = await self._handle(deliver, [event], control, cursor)
                if outcome is _Outcome.STOPPING:
                    break
                if outcome is _Outcome.BEHIND:
                    await self._resync()
                    return
            cursor = event.cursor
        if cursor != self.state.cursor:
            await self._save(cursor, failures=0, error=None)

    async def _feed_batch(
        self,
        handle_batch: Callable[[Sequence[Event]], Awaitable[None]],
        events: list[Event],
        control: JobControl,
    ) -> None:
        assert self.state is not None
        wanted = [event for event in events if self.subscriber.wants(event)]
        if wanted and not control.stopping:
            deliver = functools.partial(handle_batch, tuple(wanted))  # the same on each try
            outcome = await self._handle(deliver, wanted, control, self.state.cursor)
            if outcome is _Outcome.STOPPING:
                return
            if outcome is _Outcome.BEHIND:
                await self._resync()
                return
        elif control.stopping:
            return
        await self._save(events[-1].cursor, failures=0, error=None)

    async def _handle(
        self,
        deliver: Callable[[], Awaitable[None]],
        events: list[Event],
        control: JobControl,
        cursor: str | None,
    ) -> _Outcome:
        """Hand ``events`` over (``deliver``) until they are handled, the runner stops, or
        retention marks the subscriber behind; ``cursor`` is the one before them."""
        pause = FIRST_RETRY_SECONDS
        failures = 0
        while True:
            try:
                await deliver()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                log.exception(
                    "subscriber_failed",
                    subscriber=self.name,
                    event_type=events[0].type,
                    cursor=events[0].cursor,
                    events=len(events),
                    failures=failures,
                )
                if await self._marked_behind():
                    return _Outcome.BEHIND
                text = f"{type(error).__name__}: {error}"[:MAX_ERROR_TEXT]
                await self._save(cursor, failures=failures, error=text)
                if not await control.sleep(pause):
                    return _Outcome.STOPPING
                pause = min(pause * 2, LAST_RETRY_SECONDS)
                continue
            if failures:
                await self._save(events[-1].cursor, failures=0, error=None)
            return _Outcome.HANDLED

    async def _marked_behind(self) -> bool:
        """Whether retention marked the subscriber behind, or a resync was asked, since it
        last saved its state (saving a failure would clear the mark)."""
        state = await self.store.subscriber(self.name)
        return state is not None and (state.behind or state.resync)

    async def _save(self, cursor: str | None, *, failures: int, error: str | None) -> None:
        assert self.state is not None
        resynced = self.state.resynced
        self.state = SubscriberState(
            self.name, cursor, utcnow(), failures, error, behind=False, resynced=resynced
        )
        await self.store.save_subscriber(self.state)

    async def _resync(self, expired: bool = False) -> None:
        """Call the subscriber's resync and go on from the oldest event kept; ``expired``:
        the log no longer has events it had not read (else the state says why: retention's
        mark, or a resync asked for)."""
        stored = await self.store.subscriber(self.name)
        asked = 0 if stored is None else stored.resync_asked  # a request after it: once more
        if expired or (stored is not None and stored.behind):  # unread events were pruned
            log.warning("subscriber_resyncing", subscriber=self.name, reason="behind")
        else:  # asked for (its start, a command): nothing is wrong
            log.info("subscriber_resyncing", subscriber=self.name, reason="asked")
        if self.subscriber.resync is not None:
            await self.subscriber.resync()
        self.state = SubscriberState(self.name, None, utcnow(), resynced=asked)
        await self.store.save_subscriber(self.state)


async def _first(*waits: Awaitable[object]) -> None:
    """Wait until the first of ``waits`` (coroutines) finishes; cancel the others."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(*tasks)

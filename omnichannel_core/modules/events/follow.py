"""Following some conversations through the process's hub: the :class:`LiveEvents`
service behind ``ChannelInbox.follow`` (a visitor's socket waiting for an agent's reply).

A feed is read the way a stream is (`stream`): it keeps its own cursor, takes what follows
it from the hub's buffer when the buffer holds it, and reads the log itself when it does
not (it resumed from further back, or fell behind). So a feed starts no task of its own and
holds at most one batch: a slow reader costs reads, never memory, and holds nobody back.
It keeps only the events of its conversations that a loaded plugin declares.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import AsyncIterator, Callable, Collection
from datetime import timedelta

from omnichannel_core.module import ConversationEvent, EventsExpired, utcnow
from omnichannel_core.modules.events.hub import Delivery, EventHub

WAIT_SECONDS = 15.0
"""The longest a feed waits for the hub's news before it looks again."""


class HubEvents:
    """:class:`omnichannel_core.services.LiveEvents`, drawn from the process's hub
    (``hub()``: built once every plugin declared its event types)."""

    def __init__(self, hub: Callable[[], EventHub]) -> None:
        self._hub = hub

    @contextlib.asynccontextmanager
    async def follow(
        self,
        conversation_ids: Collection[str],
        after: str | None = None,
        max_behind: timedelta | None = None,
    ) -> AsyncIterator[Feed]:
        hub = self._hub()
        wanted = frozenset(conversation_ids)
        await hub.ensure_running()
        with hub.subscribe():  # the hub reads the log while a feed is open
            if after is None:
                # From the log's head; read from where the hub has read to while it reads
                # (served from its buffer: a thousand sockets opening never read the log
                # each), skipping what comes before the head.
                read_from = hub.cursor  # taken first: never past the head read next
                head = await hub.head()
                cursor = head if read_from is None else read_from
                yield Feed(hub, wanted, cursor, head, from_now=True)
            else:
                following = await hub.log.after(after, 1)  # EventsExpired or InvalidInput now
                if max_behind is not None and following:
                    behind = utcnow() - following[0].at
                    if behind > max_behind:  # replaying would read the whole log since
                        raise EventsExpired(
                            f"the cursor is {behind.total_seconds():.0f} s behind: read the"
                            " history instead",
                            cursor=after,
                        )
                yield Feed(hub, wanted, after)


class Feed:
    """:class:`omnichannel_core.services.ConversationFeed`: the events of ``wanted``
    after ``cursor``, or after ``skip_through`` when given: the feed reads from ``cursor``
    (a point the hub's buffer holds) and drops what comes up to that one (the log's head
    when it was opened), so it is told nothing twice that a history read at opening
    already had."""

    def __init__(
        self,
        hub: EventHub,
        wanted: frozenset[str],
        cursor: str | None,
        skip_through: str | None = None,
        from_now: bool = False,
    ) -> None:
        self._hub = hub
        self._wanted = wanted
        self._read_to = cursor
        self._skip_through = skip_through if skip_through != cursor else None
        self._cursor = skip_through if skip_through is not None else cursor
        self._pending: collections.deque[ConversationEvent] = collections.deque()
        self._restart: tuple[str | None] | None = (skip_through,) if from_now else None
        """For a feed opened from now, until it reads past the head it was opened at: that
        head, to read from instead when the log was pruned past the hub's cursor."""

    @property
    def cursor(self) -> str | None:
        return self._cursor

    def __aiter__(self) -> Feed:
        return self

    async def __anext__(self) -> ConversationEvent:
        while not self._pending:
            if not self._hub.running:
                raise StopAsyncIteration
            signal = self._hub.signal()  # before looking: news meanwhile is not missed
            batch = self._hub.buffered_after(self._read_to)
            if batch is None:
                batch = await self._read_log()
            if not batch:
                await self._hub.wait(signal, WAIT_SECONDS)
                continue
            self._read_to = batch[-1].event.cursor
            batch = self._after_skipped(batch)
            if self._skip_through is None:
                self._restart = None  # past the head: what expires now was not skipped
            self._pending.extend(event for event in map(self._event_of, batch) if event is not None)
            if not self._pending and self._skip_through is None:
                self._cursor = self._read_to  # none of ours: a new follow may start after
        event = self._pending.popleft()
        self._cursor = event.cursor if self._pending else self._read_to
        return event

    async def _read_log(self) -> list[Delivery]:
        """What follows the feed's cursor, read from the log itself. A feed opened from
        now starts from where the hub had read to; when the log was pruned past that point
        before the feed caught up with the head, it starts from the head instead: what it
        lost is what it would have skipped."""
        try:
            return await self._hub.read_log(self._read_to, only=self._wanted)
        except EventsExpired:
            if self._restart is None:
                raise
            (self._read_to,), self._skip_through, self._restart = self._restart, None, None
            return await self._hub.read_log(self._read_to, only=self._wanted)

    def _after_skipped(self, batch: list[Delivery]) -> list[Delivery]:
        """``batch`` without what comes up to ``skip_through`` (all of it until that one
        is reached)."""
        if self._skip_through is None:
            return batch
        for position, delivery in enumerate(batch):
            if delivery.event.cursor == self._skip_through:
                self._skip_through = None
                return batch[position + 1 :]
        return []

    def _event_of(self, delivery: Delivery) -> ConversationEvent | None:
        """The delivery as a feed tells it; None when it is not one of the feed's
        conversations, or of a type no loaded plugin declares."""
        event, kind = delivery.event, delivery.kind
        if kind is None or event.conversation_id not in self._wanted:
            return None
        return ConversationEvent(
            cursor=event.cursor,
            type=event.type,
            at=event.at,
            conversation_id=event.conversation_id,
            record_name=kind.record,
            record=delivery.record,
            data=event.data,
        )

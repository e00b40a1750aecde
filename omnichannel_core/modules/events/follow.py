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
                # where the hub has read to when it reads (served from its buffer: a
                # thousand sockets opening never read the log each), else the log's head
                start = hub.cursor if hub.reading else await hub.head()
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
                start = after
            yield Feed(hub, wanted, start)


class Feed:
    """:class:`omnichannel_core.services.ConversationFeed`: the events of ``wanted``
    after ``cursor``."""

    def __init__(self, hub: EventHub, wanted: frozenset[str], cursor: str | None) -> None:
        self._hub = hub
        self._wanted = wanted
        self._read_to = cursor
        self._cursor = cursor
        self._pending: collections.deque[ConversationEvent] = collections.deque()

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
                batch = await self._hub.read_log(self._read_to, only=self._wanted)
            if not batch:
                await self._hub.wait(signal, WAIT_SECONDS)
                continue
            self._pending.extend(event for event in map(self._event_of, batch) if event is not None)
            self._read_to = batch[-1].event.cursor
            if not self._pending:  # none of ours: a new follow may start after them
                self._cursor = self._read_to
        event = self._pending.popleft()
        self._cursor = event.cursor if self._pending else self._read_to
        return event

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

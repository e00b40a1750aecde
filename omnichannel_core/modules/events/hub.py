"""One reader of the event log per server process, handing what it reads to every stream
open in that process.

The hub reads the log's new tail when the bus rings (or when a ring is overdue), loads the
record each event names once (with the loader its type declared), and keeps the last
``buffer_size`` of them. A stream that is
at or near the head takes its events from that buffer; one resuming from further back reads
the log itself until it catches up. So a process reads each event once however many agents
are connected, and a stream never depends on the bus for correctness: it always goes on
from its own cursor.

The hub reads only while a stream is open in its process (:meth:`EventHub.subscribe`). When
the last one closes it forgets its buffer and waits; the next stream wakes it, and it goes
on from the log's head, not from where it stopped: nobody was listening meanwhile, and a
stream that resumes from further back reads the log itself.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
from collections.abc import Collection, Iterator
from typing import Any

import attrs
import structlog

from omnichannel_core.module import (
    Conversation,
    Event,
    EventReader,
    EventsExpired,
    EventTypeSpec,
    InboxReader,
    News,
    NotFound,
    cancel_and_wait,
    to_json,
    wait_until,
)

log = structlog.get_logger("omnichannel.events")

READ_BATCH = 256
OVERDUE_SECONDS = 5.0
"""The longest the hub waits for news before it reads the log anyway."""
MIN_READ_SECONDS = 0.1
"""The shortest time between two reads of the log by one hub."""
RETRY_SECONDS = 1.0
"""After a failed read of the log (the store unreachable), the pause before the next."""


@attrs.frozen
class Delivery:
    """An event, its type (None: no loaded plugin declares it), the record it names as it is
    now (None if it can no longer be read, or its conversation is gone), and who its
    conversation is assigned to now (None: nobody, or no conversation): an agent is told only
    of what is theirs or nobody's *now*, as the REST API checks (`views.event_view`)."""

    event: Event
    record: Any
    assignee_now: str | None = None
    kind: EventTypeSpec | None = None
    audience: frozenset[str | None] | None = None
    """For an event about no conversation whose type declares an audience: what it
    answered (None: it failed, and no agent is told)."""
    gone: bool = False
    """For an event about no conversation: its record is gone (the loader answered None,
    not failed), as a contact's once it was erased."""


class EventHub:
    """The process's reader of the log for the streams.

    :param log: reads the event log.
    :param news: wakes the hub when the log may have grown.
    :param types: the declared event types, by name.
    :param inbox: reads conversations (who each is assigned to now).
    """

    def __init__(
        self,
        log: EventReader,
        news: News,
        types: dict[str, EventTypeSpec],
        inbox: InboxReader,
        buffer_size: int = 1024,
    ) -> None:
        self.log = log
        self.news = news
        self.types = types
        self.inbox = inbox
        self._buffer: collections.deque[Delivery] = collections.deque(maxlen=buffer_size)
        self._cursor: str | None = None
        self._base: str | None = None  # the cursor just before the buffer's first delivery
        self._live = False
        self._told = asyncio.Event()
        self._subscribers = 0
        self._wanted = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def reading(self) -> bool:
        """Whether the hub follows the log: a stream is open and the hub has caught up with
        the log's head since the last one closed."""
        return self._live

    async def head(self) -> str | None:
        """The cursor a stream that asks for nothing older starts after: the log's newest
        event (None: the log is empty). Not the hub's own cursor, which may lag the log by
        a poll: a stream opened just after an event would be told of it."""
        return await self.log.latest()

    async def ensure_running(self) -> None:
        """Start the reader on first use (the first stream opened); the bus is started with
        the server."""
        if self._pump is None:
            self._pump = asyncio.create_task(self._read_forever(), name="event-hub")

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[None]:
        """Keep the hub reading while the calling stream is open; with no stream open, the
        hub reads nothing."""
        self._subscribers += 1
        self._wanted.set()
        try:
            with self.news.listening():
                yield
        finally:
            self._subscribers -= 1
            if self._subscribers == 0:
                self._wanted.clear()

    async def close(self) -> None:
        if self._pump is not None:
            await cancel_and_wait(self._pump)
            self._pump = None
        self._forget()
        self._told.set()  # wake the streams, which see the hub closed

    @property
    def running(self) -> bool:
        """Whether streams should go on: False once the server is stopping."""
        return self._pump is not None and not self._stopping

    def stop_streams(self) -> None:
        """End every open stream at its next step (the server is stopping; clients
        reconnect elsewhere and resume from their last id)."""
        self._stopping = True
        self._told.set()

    def signal(self) -> asyncio.Event:
        """Set when the hub reads news after this call; take it *before* looking for events,
        so that news arriving meanwhile is not missed."""
        return self._told

    async def wait(self, signal: asyncio.Event, at_most: float) -> bool:
        """Wait for ``signal`` (from :meth:`signal`); False when ``at_most`` seconds passed
        first."""
        return await wait_until(signal, at_most)

    @property
    def cursor(self) -> str | None:
        """Where the hub has read the log to, while it is :attr:`reading`: a feed starting
        here is served from the buffer (unless it falls more than the buffer behind)."""
        return self._cursor if self._live else None

    def buffered_after(self, cursor: str | None) -> list[Delivery] | None:
        """The buffered deliveries after ``cursor``; None when the buffer does not hold it
        (it is older, or newer than the hub has read, or the hub is not reading), so the
        caller reads the log. Costs the deliveries newer than ``cursor``, not the buffer:
        every feed of the process asks at every read."""
        if cursor is None or not self._live:
            return None
        if cursor == self._cursor:
            return []
        newer: list[Delivery] = []
        for delivery in reversed(self._buffer):
            if delivery.event.cursor == cursor:
                newer.reverse()
                return newer
            newer.append(delivery)
        if cursor == self._base:  # where the hub caught up, or the last one pushed out
            newer.reverse()
            return newer
        return None

    async def read_log(
        self, cursor: str | None, limit: int = READ_BATCH, only: Collection[str] | None = None
    ) -> list[Delivery]:
        """Deliveries after ``cursor`` read from the log itself (raises EventsExpired).
        Each conversation the events name is read once. With ``only``, the events of
        other conversations come unloaded, as of no type (no record, nobody is told):
        only their cursors count."""
        events = await self.log.after(cursor, limit)
        conversations: dict[str, Conversation | None] = {}
        deliveries = []
        for event in events:
            kind = self.types.get(event.type)
            if only is not None and event.conversation_id not in only:
                kind = None
            if kind is None:  # logged by a plugin that is gone: nobody is told
                deliveries.append(Delivery(event, None))
                continue
            if event.conversation_id is None:
                record, read = await self._read_record(kind, event)
                audience = await self._audience(kind, event)
                gone = read and record is None
                delivery = Delivery(event, record, kind=kind, audience=audience, gone=gone)
                deliveries.append(delivery)
                continue
            if event.conversation_id not in conversations:
                conversations[event.conversation_id] = await self._conversation(
                    event.conversation_id
                )
            conversation = conversations[event.conversation_id]
            if conversation is None:  # gone: nothing left to show
                deliveries.append(Delivery(event, None, kind=kind))
            elif is_about_conversation(kind, event):
                record = to_json(conversation)
                deliveries.append(Delivery(event, record, conversation.assignee, kind))
            else:
                record, _ = await self._read_record(kind, event)
                deliveries.append(Delivery(event, record, conversation.assignee, kind))
        return deliveries

    async def _read_record(self, kind: EventTypeSpec, event: Event) -> tuple[Any, bool]:
        """The event's record as its type loads it (None when it is gone), and whether the
        loader answered: when it fails, the event still goes out with no record (as for a
        record that is gone) rather than stopping every stream at it."""
        try:
            return await kind.load(event.record_id), True
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("event_record_load_failed", type=event.type, record_id=event.record_id)
            return None, False

    async def _audience(self, kind: EventTypeSpec, event: Event) -> frozenset[str | None] | None:
        """Who among agents may be told of an event about no conversation, as its type
        says; None when its type says nothing (everyone with the permission is told) or
        when saying fails (no agent is: a contact not shown is safer than one shown)."""
        if kind.audience is None:
            return None
        try:
            return await kind.audience(event.record_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("event_audience_load_failed", type=event.type, record_id=event.record_id)
            return None

    async def _read_forever(self) -> None:
        loop = asyncio.get_running_loop()
        last_read = 0.0
        while True:
            try:
                if not self._wanted.is_set():
                    self._forget()
                    await self._wanted.wait()
                if not self._live:
                    await self._catch_up()
                news = self.news.signal()
                await self.news.wait(news, OVERDUE_SECONDS)
                # Rings coming faster than this are read together: under a burst of writes
                # the log is read at most 1/MIN_READ_SECONDS times a second per process.
                await asyncio.sleep(max(0.0, last_read + MIN_READ_SECONDS - loop.time()))
                last_read = loop.time()
                await self._read_news()
            except asyncio.CancelledError:
                raise
            except EventsExpired:
                log.warning("event_hub_fell_behind_pruning")
                self._forget()
            except Exception:
                log.exception("event_hub_read_failed")
                await asyncio.sleep(RETRY_SECONDS)

    def _forget(self) -> None:
        """Stop answering from the buffer: nobody listens (or the log was pruned past the
        hub), so what it holds would go stale; :meth:`_catch_up` starts again."""
        self._live = False
        self._buffer.clear()
        self._base = None

    async def _catch_up(self) -> None:
        """Follow the log again from its head, and wake the streams, which look again (the
        ones opened meanwhile read what they missed from the log itself)."""
        self._cursor = await self.log.latest()
        self._base = self._cursor
        self._live = True
        self._tell_streams()

    def _tell_streams(self) -> None:
        news, self._told = self._told, asyncio.Event()
        news.set()

    async def _read_news(self) -> None:
        while True:
            deliveries = await self.read_log(self._cursor)
            if not deliveries:
                return
            self._refresh_buffered(deliveries)
            await self._refresh_audiences(deliveries)
            overflow = len(self._buffer) + len(deliveries) - (self._buffer.maxlen or 0)
            if overflow > 0:  # the oldest are pushed out: the base moves to the last of them
                pushed = [*itertools.islice(self._buffer, overflow), *deliveries][:overflow]
                self._base = pushed[-1].event.cursor
            self._buffer.extend(deliveries)
            self._cursor = deliveries[-1].event.cursor
            self._tell_streams()
            if len(deliveries) < READ_BATCH:
                return

    def _refresh_buffered(self, deliveries: list[Delivery]) -> None:
        """Bring the buffer up to date with the conversation changes just read (who each is
        assigned to, and the conversation record), so a stream replaying from the buffer is
        told what one reading the log would be."""
        latest = {
            delivery.event.conversation_id: delivery
            for delivery in deliveries
            if delivery.kind is not None and is_about_conversation(delivery.kind, delivery.event)
        }
        if not latest:
            return
        for position, delivery in enumerate(self._buffer):
            now = latest.get(delivery.event.conversation_id)
            if now is None:
                continue
            if now.record is None:  # the conversation is gone
                self._buffer[position] = attrs.evolve(delivery, record=None, assignee_now=None)
            elif delivery.kind is not None and is_about_conversation(delivery.kind, delivery.event):
                self._buffer[position] = attrs.evolve(
                    delivery, record=now.record, assignee_now=now.assignee_now
                )
            else:
                self._buffer[position] = attrs.evolve(delivery, assignee_now=now.assignee_now)

    async def _refresh_audiences(self, deliveries: list[Delivery]) -> None:
        """Bring the buffered events about no conversation (a contact's) up to date with
        those just read: when a newer event names the same record, or a conversation of
        that contact changed, their audience is read again (and their record taken from
        the newer event), as a stream reading the log would be told. When the newer one
        finds the record gone (a contact erased), the buffered records naming it (the
        contact's messages and conversations, those of this read included) go too: a replay
        from the buffer shows nothing of it."""
        contacts: dict[str, Delivery | None] = {}
        for delivery in deliveries:
            if delivery.kind is None:
                continue
            if delivery.kind.audience is not None:
                contacts[delivery.event.record_id] = delivery
            elif isinstance(delivery.record, dict) and delivery.event.conversation_id:
                contact_id = delivery.record.get("contact_id")
                if isinstance(contact_id, str):
                    contacts.setdefault(contact_id, None)
        if not contacts:
            return
        gone = {record_id for record_id, now in contacts.items() if now is not None and now.gone}
        for position, delivery in enumerate(deliveries):  # this read's, as the buffer's below
            record = delivery.record
            if isinstance(record, dict) and record.get("contact_id") in gone:
                deliveries[position] = attrs.evolve(delivery, record=None)
        audiences: dict[str, frozenset[str | None] | None] = {}
        for position, delivery in enumerate(self._buffer):
            kind, record = delivery.kind, delivery.record
            if isinstance(record, dict) and record.get("contact_id") in gone:
                self._buffer[position] = attrs.evolve(delivery, record=None)
                continue
            if kind is None or kind.audience is None:
                continue
            record_id = delivery.event.record_id
            if record_id not in contacts:
                continue
            if record_id not in audiences:
                audiences[record_id] = await self._audience(kind, delivery.event)
            newer = contacts[record_id]
            self._buffer[position] = attrs.evolve(
                delivery,
                record=delivery.record if newer is None else newer.record,
                audience=audiences[record_id],
            )

    async def _conversation(self, conversation_id: str) -> Conversation | None:
        try:
            return await self.inbox.get_conversation(conversation_id)
        except NotFound:
            return None


def is_about_conversation(kind: EventTypeSpec, event: Event) -> bool:
    """Whether the event's record is its conversation itself (``conversation.updated``)."""
    return kind.record == "conversation" and event.record_id == event.conversation_id

"""The event log on Firestore (`omnichannel_core.store.protocols`): one document per event,
created in the transaction of the write it logs (:func:`log_event`).

Log order is commit order. An event's place is its document's ``create_time`` (the commit
time of the transaction that wrote it, kept by Firestore to the microsecond or finer), then
its id; the cursor encodes both. Gaplessness follows from Firestore's strong consistency:
a read happens at a read time ``R`` and sees exactly the commits at or before ``R``. It
returns only visible events, whose commit times are ``<= R``; an event it did not see
commits after ``R``, so it sorts after every event returned, and a reader going on from its
last cursor misses nothing. All the reads of one call (each page of a scan, and the prune
horizon) happen at one read time, so the argument holds across them.

Firestore cannot query by ``create_time``, so each event also stores ``at``, a server
timestamp, indexed, and ``at`` is not the commit time. The API defines it as the time the
server took the request, to the millisecond; the emulator sets it before the commit waits
for its locks: milliseconds earlier without contention, up to its two-second lock timeout
earlier with it (measured). Ordering by ``at`` would therefore not be gapless: an event with
an earlier ``at`` can become visible after a later one was read, and be skipped. So ``at``
only finds candidates. Assuming an event commits within ``window`` (:data:`COMMIT_WINDOW`)
of its ``at``, the events after a cursor committed at ``C`` are among those with
``at >= C - window``: the scan reads those in ``at`` order, drops the ones whose commit
time does not sort after the cursor (already returned), and stops once no unread document
(``at`` at least that of the last one read) can commit before the ``limit``-th kept one.
This is the "re-read an overlap window and drop what was returned" of a reader, with an
exact test for "returned". Its price: each read of the log's tail re-reads the events
logged within the window before the cursor.

The assumption is watched from both sides: a commit that logged events and took more than
half the window after its ``at`` is logged as ``event_commit_slow`` by the writer, and a
document read with ``at`` and commit time further apart than the window as
``event_commit_outside_window`` by the reader (a stream may have missed that event).

Pruning deletes in log order: it finds the newest event committed before the horizon,
records its place in ``meta/events`` (before deleting anything), then deletes every event
up to it, in batches. A cursor older than the recorded place raises EventsExpired.

So does a well-formed cursor ahead of the log (after the newest event logged, from a project
that was reset or restored since): nothing follows it, and it names neither a kept event
nor the recorded place. A cursor this store handed out is never ahead, whatever the window:
it names an event that was logged, so the newest event's place is at or after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
import structlog
from google.cloud.firestore_v1 import (
    SERVER_TIMESTAMP,
    AsyncCollectionReference,
    DocumentSnapshot,
    FieldFilter,
)
from google.cloud.firestore_v1.base_query import BaseQuery

from omnichannel_core.errors import EventsExpired, InvalidInput
from omnichannel_core.events.records import Event
from omnichannel_core.ids import new_id
from omnichannel_core.paging import decode_cursor, encode_cursor, is_record_id
from omnichannel_core.store.firestore.documents import exact_time
from omnichannel_core.store.firestore.transaction import Transaction, transact

if TYPE_CHECKING:
    from omnichannel_core.store.firestore.database import FirestoreDatabase

log = structlog.get_logger("omnichannel.store")

COMMIT_WINDOW = timedelta(seconds=5)
"""How far an event's ``at`` may be from its commit time: above the emulator's lock timeout
(2 s), with room. What it costs is the events of that span re-read on each read of the
log's tail; a database with a busy log and fast commits may narrow it
(``FirestoreDatabase(event_commit_window=...)``)."""
SCAN_MORE = 32
"""Documents read per page of a scan beyond ``limit``, for the window's extra events."""
DELETE_BATCH = 400
"""Events deleted per commit by a prune (Firestore takes at most 500 writes per commit)."""
HORIZON = "events"
"""The ``meta`` document recording the newest pruned event."""

Position = tuple[int, str]
"""An event's place in the log: commit time in nanoseconds since the epoch, document id."""


EVENTS = "events"
META = "meta"


def log_event(
    transaction: Transaction,
    database: FirestoreDatabase,
    type: str,
    record_id: str,
    conversation_id: str | None = None,
    assignees: tuple[str | None, ...] = (),
    data: Mapping[str, Any] | None = None,
) -> None:
    """Queue an event in ``transaction``: it is logged if, and when, the change commits,
    and the event bus is told then. The arguments are those of
    `omnichannel_core.store.sqlite.events.append_event`."""
    fields: dict[str, Any] = {
        "type": str(type),
        "record_id": record_id,
        "conversation_id": conversation_id,
        "assignees": list(assignees),
        "at": SERVER_TIMESTAMP,
    }
    if data:
        fields["data"] = dict(data)
    transaction.create(database.collection(EVENTS).document(new_id("ev")), fields)
    transaction.logged_events = True


def check_commit(transaction: Transaction, window: timedelta) -> None:
    """Warn when a commit that logged events took more than half the window after the
    server stamped them: the window assumption is wearing thin (lock waits under
    contention), and readers may soon miss events."""
    stamped, committed = transaction.server_time, transaction.commit_time
    if stamped is not None and committed is not None and committed - stamped > window / 2:
        log.warning(
            "event_commit_slow",
            seconds=round((committed - stamped).total_seconds(), 3),
            window_seconds=window.total_seconds(),
        )


def _nanoseconds(value: Any) -> int:
    stamp = value.timestamp_pb()
    return stamp.seconds * 1_000_000_000 + stamp.nanos


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time(nanoseconds: int) -> datetime:
    return _EPOCH + timedelta(microseconds=nanoseconds // 1000)


def _position(snapshot: DocumentSnapshot) -> Position:
    return _nanoseconds(snapshot.create_time), snapshot.id


def encode_position(position: Position) -> str:
    return encode_cursor(str(position[0]), position[1])


def decode_position(cursor: str) -> Position:
    """The place an event cursor names; InvalidInput for one this store did not make."""
    try:
        nanoseconds, event_id = decode_cursor(cursor, 2)
    except InvalidInput:
        raise InvalidInput("not an event cursor of this server", field="cursor") from None
    valid = nanoseconds.isascii() and nanoseconds.isdigit() and len(nanoseconds) <= 20
    if not valid or not is_record_id(event_id, "ev"):
        raise InvalidInput("not an event cursor of this server", field="cursor")
    return int(nanoseconds), event_id


def _event(snapshot: DocumentSnapshot) -> Event:
    data = snapshot.to_dict() or {}
    return Event(
        cursor=encode_position(_position(snapshot)),
        type=data["type"],
        record_id=data["record_id"],
        conversation_id=data["conversation_id"],
        assignees=tuple(data["assignees"]),
        at=exact_time(snapshot.create_time),
        data=data.get("data") or {},
    )


def _checked(snapshot: DocumentSnapshot, window: timedelta) -> DocumentSnapshot:
    at = snapshot.get("at")
    if at is not None and abs(snapshot.create_time - at) > window:
        log.warning(
            "event_commit_outside_window",
            event_id=snapshot.id,
            at=at.isoformat(),
            committed=snapshot.create_time.isoformat(),
        )
    return snapshot


@attrs.define
class _Scan:
    """Reads the events in ``at`` order, page by page, all at one read time."""

    events: AsyncCollectionReference
    window: timedelta
    descending: bool = False
    since: datetime | None = None
    until: datetime | None = None
    read_time: datetime | None = None
    pinned: bool = True
    """Read every page at the first page's read time (not for a prune, which may outlast
    the hour a read time stays readable, and needs no snapshot)."""
    exhausted: bool = False
    _last: DocumentSnapshot | None = None

    async def next_page(self, size: int) -> list[DocumentSnapshot]:
        direction = BaseQuery.DESCENDING if self.descending else BaseQuery.ASCENDING
        query = self.events.order_by("at", direction=direction).order_by(
            "__name__", direction=direction
        )
        if self.since is not None:
            query = query.where(filter=FieldFilter("at", ">=", self.since))
        if self.until is not None:
            query = query.where(filter=FieldFilter("at", "<", self.until))
        query = query.limit(size)
        if self._last is not None:
            query = query.start_after(self._last)
        page = [
            _checked(document, self.window)
            async for document in query.stream(read_time=self.read_time)
        ]
        if page:
            if self.pinned and self.read_time is None:
                self.read_time = page[0].read_time
            self._last = page[-1]
        self.exhausted = len(page) < size
        return page

    @property
    def last_at(self) -> datetime:
        assert self._last is not None
        return self._last.get("at")


async def _horizon(database: FirestoreDatabase) -> tuple[Position | None, datetime]:
    """The newest pruned event's place (None: nothing pruned), and the read time."""
    snapshot = await database.collection(META).document(HORIZON).get()
    data = snapshot.to_dict() if snapshot.exists else None
    horizon = None
    if data:
        horizon = (data["pruned_through_ns"], data["pruned_through_id"])
    return horizon, snapshot.read_time


async def events_after(database: FirestoreDatabase, cursor: str | None, limit: int) -> list[Event]:
    window = database.event_commit_window
    after = None if cursor is None else decode_position(cursor)
    scan = _Scan(database.collection(EVENTS), window)
    horizon: Position | None = None
    if after is not None:
        horizon, scan.read_time = await _horizon(database)
        if horizon is not None and after < horizon:
            raise EventsExpired(
                "events after this cursor are no longer kept; reload and open a new stream",
                cursor=cursor,
            )
        scan.since = _time(after[0]) - window
    found: list[tuple[Position, DocumentSnapshot]] = []
    reached = False
    while not scan.exhausted:
        for document in await scan.next_page(limit + SCAN_MORE):
            position = _position(document)
            reached = reached or position == after
            if after is None or position > after:
                found.append((position, document))
        found.sort(key=lambda item: item[0])
        # Unread events have ``at`` >= the last one read, so commit after it - window.
        full = len(found) >= limit and not scan.exhausted
        if full and _time(found[limit - 1][0][0]) < scan.last_at - window:
            break
    if (
        after is not None
        and not found
        and not reached
        and after != horizon
        and not await _is_logged(database, after, scan.read_time)
    ):
        raise EventsExpired(
            "this cursor is ahead of the event log (the store was reset or restored?);"
            " reload and open a new stream",
            cursor=cursor,
        )
    return [_event(document) for _, document in found[:limit]]


async def _is_logged(
    database: FirestoreDatabase, position: Position, read_time: datetime | None
) -> bool:
    """Whether the event at ``position`` is in the log, read at the scan's read time.

    Asked only when no event follows a cursor and the scan did not meet the cursor's own
    event (which it does whenever that event is kept and within the window, so a stream
    waiting at the tail never asks). Nothing follows the cursor, so every event logged sorts
    at or before it; a cursor this store made names an event that is kept, or is the pruned
    horizon. One naming neither sorts after the newest event logged: it is ahead of the
    log, and reading on from it would skip every event until the log caught up."""
    snapshot = await database.collection(EVENTS).document(position[1]).get(read_time=read_time)
    return snapshot.exists and _position(snapshot) == position


async def latest_event_cursor(database: FirestoreDatabase) -> str | None:
    window = database.event_commit_window
    scan = _Scan(database.collection(EVENTS), window, descending=True)
    newest: Position | None = None
    while not scan.exhausted:
        for document in await scan.next_page(SCAN_MORE):
            newest = max(newest or _position(document), _position(document))
        # Unread events have ``at`` <= the last one read, so commit before it + window.
        if newest is not None and scan.last_at + window < _time(newest[0]):
            break
    return None if newest is None else encode_position(newest)


async def _newest_before(
    events: AsyncCollectionReference, before: datetime, window: timedelta
) -> Position | None:
    scan = _Scan(events, window, descending=True, until=before + window)
    newest: Position | None = None
    cutoff = _nanoseconds_of(before)
    while not scan.exhausted:
        for document in await scan.next_page(SCAN_MORE):
            position = _position(document)
            if position[0] < cutoff and (newest is None or position > newest):
                newest = position
        if newest is not None and scan.last_at + window < _time(newest[0]):
            break
    return newest


def _nanoseconds_of(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1) * 1000


async def _record_horizon(database: FirestoreDatabase, newest: Position) -> None:
    """Keep the newest pruned event's place, never moving it back (two prunes at once)."""
    reference = database.collection(META).document(HORIZON)

    async def write(transaction: Transaction) -> None:
        [snapshot] = await transaction.get(reference)
        data = snapshot.to_dict() if snapshot.exists else None
        if data and (data["pruned_through_ns"], data["pruned_through_id"]) >= newest:
            return
        transaction.set(reference, {"pruned_through_ns": newest[0], "pruned_through_id": newest[1]})

    await transact(database.client, write)


async def prune_events(
    database: FirestoreDatabase, before: datetime, keep_after: Sequence[str] = ()
) -> int:
    """Delete the events committed before ``before``: up to the newest of them, in log
    order, so a clock that went back cannot leave a hole; but nothing after a cursor of
    ``keep_after``."""
    window = database.event_commit_window
    events = database.collection(EVENTS)
    newest = await _newest_before(events, before, window)
    if newest is not None and keep_after:
        newest = min(newest, *(decode_position(cursor) for cursor in keep_after))
    if newest is None:
        return 0
    await _record_horizon(database, newest)
    scan = _Scan(events, window, until=_time(newest[0]) + window, pinned=False)
    deleted = 0
    while not scan.exhausted:
        doomed = [d for d in await scan.next_page(DELETE_BATCH) if _position(d) <= newest]
        if doomed:
            batch = database.client.batch()
            for document in doomed:
                batch.delete(document.reference)
            await batch.commit()
            deleted += len(doomed)
    return deleted


class FirestoreEventLog:
    """:class:`omnichannel_core.store.protocols.EventLog` on the Firestore database."""

    def __init__(self, database: FirestoreDatabase) -> None:
        self.database = database

    async def after(self, cursor: str | None, limit: int) -> list[Event]:
        return await events_after(self.database, cursor, limit)

    async def latest(self) -> str | None:
        return await latest_event_cursor(self.database)

    async def prune(self, before: datetime, keep_after: Sequence[str] = ()) -> int:
        return await prune_events(self.database, before, keep_after)

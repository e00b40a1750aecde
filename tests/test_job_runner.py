"""The job runner keeping a singleton's lease, on the real SQLite job store: a store that
fails or hangs while the runner renews must not let the work outlive its lease (it is
cancelled, even when it never looks at ``control.stopping``), and a passing failure must
not stop work whose lease still holds.

The store is the real one; only its renewals are held up or failed, on purpose, by a
wrapper that lets the first take through."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from omnichannel_core.bus.bus import PollingBus
from omnichannel_core.bus.news import News
from omnichannel_core.jobs.runner import JobRunner
from omnichannel_core.jobs.specs import Job, JobControl, Subscriber
from omnichannel_core.jobs.subscribers import SubscriberFeed
from omnichannel_core.store.protocols import JobStore
from omnichannel_core.store.sqlite.database import SqliteDatabase
from omnichannel_core.store.sqlite.events import append_event
from tests.support.stores import Stores, open_stores

LEASE = timedelta(seconds=1.5)
"""Short, so the tests are quick; long enough that a renewal retried after a failure still
has about half a second for its write on a loaded machine (two thirds of it in a fresh
clone's run, where other servers keep the disk busy, were not always enough)."""


class FaultyRenewals:
    """The real job store, whose renewals (every take after the first) hang or fail."""

    def __init__(self, store: JobStore, fault: str, failures: int = 1_000) -> None:
        self.store = store
        self.fault = fault
        self.failures = failures
        self.takes = 0

    async def take_lease(self, *args: Any) -> Any:
        self.takes += 1
        if self.takes > 1 and self.failures > 0:
            self.failures -= 1
            if self.fault == "hang":
                await asyncio.Event().wait()
            raise OSError("the store is unreachable")
        return await self.store.take_lease(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def run_continuous_job(stores: Stores, renewals: FaultyRenewals, seconds: float) -> float:
    """Run one continuous singleton job for at most ``seconds``; how long it ran before it
    was told to stop (``seconds`` if it never was)."""
    loop = asyncio.get_running_loop()
    ran: list[float] = []

    async def work(control: JobControl) -> None:
        started = loop.time()
        try:  # a job that never looks at control.stopping: the runner must cancel it
            await asyncio.sleep(seconds)
        finally:
            ran.append(loop.time() - started)
        await asyncio.Event().wait()  # the runner is stopped below, which cancels this

    runner = JobRunner(
        [Job("test.forever", work)],
        [],
        renewals,
        stores.events,
        News(PollingBus(0.05)),
        lease_ttl=LEASE,
        grace=0.1,
        restart_seconds=60,
    )
    task = asyncio.create_task(runner.run())
    deadline = loop.time() + seconds + 1
    while not ran and not task.done() and loop.time() < deadline:
        await asyncio.sleep(0.02)
    runner.stop()
    await task
    return ran[0]


def test_a_renewal_that_hangs_stops_the_work_when_the_lease_expires(tmp_path):
    """A renewal that never answers is given only the time the lease has left: the work is
    told to stop by then, not left running while another runner may take the job."""

    async def scenario() -> float:
        stores = await open_stores(SqliteDatabase(tmp_path / "store.db"))
        try:
            return await run_continuous_job(stores, FaultyRenewals(stores.jobs, "hang"), 5.0)
        finally:
            await stores.close()

    assert asyncio.run(scenario()) < LEASE.total_seconds() + 2  # well before the 5 s it would run


def test_renewals_that_keep_failing_stop_the_work_when_the_lease_expires(tmp_path):
    """A store that keeps failing: the work stops once the lease has expired unrenewed."""

    async def scenario() -> float:
        stores = await open_stores(SqliteDatabase(tmp_path / "store.db"))
        try:
            return await run_continuous_job(stores, FaultyRenewals(stores.jobs, "fail"), 5.0)
        finally:
            await stores.close()

    assert asyncio.run(scenario()) < LEASE.total_seconds() + 2  # well before the 5 s it would run


@pytest.mark.alone  # a renewal retried within a 1.5 s lease
def test_one_failed_renewal_does_not_stop_work_whose_lease_holds(tmp_path):
    """One renewal failing while the lease still has time left is tried again; the next
    succeeds and the work goes on."""

    async def scenario() -> float:
        stores = await open_stores(SqliteDatabase(tmp_path / "store.db"))
        try:
            renewals = FaultyRenewals(stores.jobs, "fail", failures=1)
            return await run_continuous_job(stores, renewals, 4.0)
        finally:
            await stores.close()

    assert asyncio.run(scenario()) >= 4.0  # past two lease times: renewed after the failure


def test_a_feed_told_to_stop_mid_batch_keeps_what_it_handled(tmp_path):
    """A subscriber handed a batch stops between two events when the runner stops: the
    cursor kept is the last event it handled, so the next runner hands over only the rest."""

    async def scenario() -> tuple[list[str], str | None, list[str]]:
        stores = await open_stores(SqliteDatabase(tmp_path / "store.db"))
        try:
            for number in range(5):
                await stores.database.write(
                    lambda c, n=number: append_event(c, "message.created", f"msg_{n}")
                )
            control = JobControl()
            handled: list[str] = []

            async def handle(event: Any) -> None:
                handled.append(event.record_id)
                if len(handled) == 2:
                    control.stop()

            subscriber = Subscriber("test.stopper", handle, start="oldest")
            feed = SubscriberFeed(subscriber, stores.jobs, stores.events, News(PollingBus(0.05)))
            await feed.run(control)
            state = await stores.jobs.subscriber("test.stopper")
            assert state is not None
            rest = [event.record_id for event in await stores.events.after(state.cursor, 10)]
            return handled, state.cursor, rest
        finally:
            await stores.close()

    handled, cursor, rest = asyncio.run(scenario())
    assert handled == ["msg_0", "msg_1"]
    assert cursor is not None
    assert rest == ["msg_2", "msg_3", "msg_4"]


def test_a_batch_handler_gets_each_read_whole_and_again_after_a_failure(tmp_path):
    """A subscriber with ``handle_batch`` is handed the wanted events of a read at once, in
    order; one that raises gets the same batch again, the cursor held before it meanwhile,
    and moved past the whole read (the unwanted events after the last wanted one too) once
    it is handled. A read with no wanted event moves the cursor past it, handing nothing."""

    async def scenario() -> tuple[list[list[str]], list[tuple[str | None, int]], bool]:
        stores = await open_stores(SqliteDatabase(tmp_path / "store.db"))
        try:

            async def log(kinds: list[str], first: int) -> None:
                for number, kind in enumerate(kinds, start=first):
                    await stores.database.write(
                        lambda c, n=number, k=kind: append_event(c, k, f"rec_{n}")
                    )

            wanted, other = "message.created", "conversation.updated"
            await log([wanted, other, wanted, other, wanted, other], 0)
            control = JobControl()
            batches: list[list[str]] = []
            states: list[tuple[str | None, int]] = []

            async def handle_batch(events: Any) -> None:
                batches.append([event.record_id for event in events])
                state = await stores.jobs.subscriber("test.batches")
                assert state is not None
                states.append((state.cursor, state.failures))
                if len(batches) == 1:
                    raise RuntimeError("the first try fails")

            subscriber = Subscriber(
                "test.batches", handle_batch=handle_batch, types={wanted}, start="oldest"
            )
            bus = PollingBus(0.05)
            await bus.start()
            feed = SubscriberFeed(subscriber, stores.jobs, stores.events, News(bus))
            runner = asyncio.create_task(feed.run(control))
            last = (await stores.events.after(None, 10))[-1].cursor

            async def cursor_is(cursor: str | None) -> bool:
                for _ in range(200):
                    state = await stores.jobs.subscriber("test.batches")
                    if state is not None and state.cursor == cursor and not state.failures:
                        return True
                    await asyncio.sleep(0.02)
                return False

            moved = await cursor_is(last)
            await log([other, other], 6)  # a read with nothing wanted
            latest = (await stores.events.after(last, 10))[-1].cursor
            moved = moved and await cursor_is(latest)
            control.stop()
            await runner
            return batches, states, moved
        finally:
            await stores.close()

    batches, states, moved = asyncio.run(scenario())
    assert batches == [["rec_0", "rec_2", "rec_4"]] * 2  # the same batch again, nothing else
    assert states == [(None, 0), (None, 1)]  # the cursor held while it failed
    assert moved  # past rec_5 (unwanted, after the batch), then past the read of none wanted


def test_a_subscriber_takes_one_handler_kind():
    """``handle`` or ``handle_batch``: neither, or both, is a mistake said at once."""

    async def handle(event: Any) -> None: ...

    with pytest.raises(ValueError, match="give one of handle and handle_batch"):
        Subscriber("test.none")
    with pytest.raises(ValueError, match="give one of handle and handle_batch"):
        Subscriber("test.both", handle, handle_batch=handle)

"""The job runner: runs every registered job and event subscriber in one process until told
to stop (`omnichannel worker`, or the one `omnichannel serve` starts).

A **singleton** (every subscriber, and jobs unless they say otherwise) runs in one runner at
a time across all the servers that share the store: the runner takes its lease
(:class:`~omnichannel_core.store.protocols.JobStore`), renews it every third of its time to
live while it works, and hands it back when it stops. If a renewal finds the lease taken (the
runner stalled past its time), the work is told to stop and the runner tries again later. A
runner that dies loses its leases when they expire; another takes them over then.

A **periodic** job runs every ``every``, counted from its last finished run (kept with the
lease, so a takeover does not run it again at once). A **continuous** job runs until the
runner stops; if it returns or fails sooner, it is started again after a pause.

Stopping (:meth:`JobRunner.stop`, on SIGTERM) tells every job (``control.stopping``), waits
up to ``grace`` seconds for them to finish, cancels what is left, and releases the leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any

import structlog

from omnichannel_core.bus.news import News
from omnichannel_core.jobs.specs import Job, JobControl, Subscriber
from omnichannel_core.jobs.subscribers import SubscriberFeed
from omnichannel_core.store.protocols import EventLog, JobStore, Lease
from omnichannel_core.tasks import cancel_and_wait, wait_until
from omnichannel_core.timestamps import utcnow

log = structlog.get_logger("omnichannel.jobs")

GRACE_SECONDS = 10.0
RESTART_SECONDS = 5.0
"""The pause before a continuous job that returned or failed is started again, and before a
runner asks again for a lease someone else holds."""

Work = Callable[[JobControl, Lease | None], Coroutine[Any, Any, None]]


def runner_id() -> str:
    """Who holds a lease: this host and process, and a random part (a restarted process
    with the same pid is another holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class JobRunner:
    """Runs ``jobs`` and ``subscribers`` until :meth:`stop`.

    :param lease_ttl: how long a lease lasts without renewal (a dead runner's jobs wait that
        long for another): ``OMNICHANNEL_JOB_LEASE_SECONDS``.
    :param grace: how long stopping waits for running work before cancelling it.
    """

    def __init__(
        self,
        jobs: Sequence[Job],
        subscribers: Sequence[Subscriber],
        store: JobStore,
        events: EventLog,
        news: News,
        *,
        lease_ttl: timedelta,
        holder: str | None = None,
        grace: float = GRACE_SECONDS,
        restart_seconds: float = RESTART_SECONDS,
    ) -> None:
        self.jobs = list(jobs)
        self.subscribers = list(subscribers)
        self.store = store
        self.events = events
        self.news = news
        self.holder = holder or runner_id()
        self.lease_ttl = lease_ttl
        self.grace = grace
        self.restart_seconds = restart_seconds
        self._stopping = asyncio.Event()
        self._controls: set[JobControl] = set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Tell every job to stop (safe to call from a signal handler on the loop)."""
        self._stopping.set()
        for control in list(self._controls):
            control.stop()

    async def run(self) -> None:
        """Run everything until :meth:`stop`, then wait for the work to finish (cancelling
        it after the grace period) and release the leases."""
        tasks = [
            asyncio.create_task(self._supervise(job.name, self._job_work(job), job.singleton))
            for job in self.jobs
        ]
        tasks += [
            asyncio.create_task(self._supervise(subscriber.name, self._feed(subscriber), True))
            for subscriber in self.subscribers
        ]
        log.info(
            "job_runner_started",
            holder=self.holder,
            jobs=[job.name for job in self.jobs],
            subscribers=[subscriber.name for subscriber in self.subscribers],
        )
        await self._stopping.wait()
        _, pending = await asyncio.wait(tasks, timeout=self.grace) if tasks else ((), set())
        await cancel_and_wait(*pending)
        log.info("job_runner_stopped", holder=self.holder, cancelled=len(pending))

    # one unit of work, with or without its lease ------------------------------------------

    async def _supervise(self, name: str, work: Work, singleton: bool) -> None:
        while not self.stopping:
            if not singleton:
                await self._run_work(name, work, None)
                continue
            lease = await self._take(name)
            if lease is None:
                await self._pause(self.restart_seconds)
                continue
            try:
                await self._run_work(name, work, lease)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.store.release_lease(name, self.holder))

    async def _run_work(self, name: str, work: Work, lease: Lease | None) -> None:
        control = JobControl(self.holder)
        self._controls.add(control)
        if self.stopping:
            control.stop()
        running = asyncio.create_task(work(control, lease), name=f"job:{name}")
        keeper = (
            asyncio.create_task(self._keep(name, control, running)) if lease is not None else None
        )
        try:
            await running
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # the runner is cancelled
                running.cancel()
                raise
            # else the work was cancelled because its lease was lost: ask for it again
        except Exception:
            log.exception("job_failed", job=name)
            await self._pause(self.restart_seconds)
        finally:
            self._controls.discard(control)
            if keeper is not None:
                await cancel_and_wait(keeper)

    async def _take(self, name: str) -> Lease | None:
        try:
            return await self.store.take_lease(name, self.holder, self.lease_ttl, utcnow())
        except Exception:
            log.exception("job_lease_failed", job=name)
            return None

    async def _keep(self, name: str, control: JobControl, running: asyncio.Task[None]) -> None:
        """Renew the lease every third of its time to live. It is lost when another runner
        holds it, or when no renewal succeeded before it expired (a store that fails, or
        hangs: a renewal is given only the time the lease has left); then another runner
        may run the job, so the work is cancelled at once."""
        ttl = self.lease_ttl.total_seconds()
        expires = time.monotonic() + ttl
        while not control.stopping:
            await asyncio.sleep(max(0.0, min(ttl / 3, expires - time.monotonic())))
            started = time.monotonic()
            try:
                async with asyncio.timeout(max(expires - started, 0.001)):
                    lease = await self.store.take_lease(name, self.holder, self.lease_ttl, utcnow())
            except TimeoutError:
                lease = None
            except Exception:
                log.exception("job_lease_failed", job=name)
                if time.monotonic() < expires:
                    continue  # the lease holds a while yet: try again
                lease = None
            if lease is None:
                log.warning("job_lease_lost", job=name, holder=self.holder)
                control.lose_lease()
                running.cancel()
                return
            expires = started + ttl

    async def _pause(self, seconds: float) -> None:
        await wait_until(self._stopping, seconds)

    # what a job's work is ---------------------------------------------------------------

    def _job_work(self, job: Job) -> Work:
        if job.every is None:
            return self._continuous(job)
        return self._periodic(job)

    def _continuous(self, job: Job) -> Work:
        async def work(control: JobControl, lease: Lease | None) -> None:
            await job.run(control)
            if not control.stopping:
                log.warning("job_returned", job=job.name)
                await control.sleep(self.restart_seconds)

        return work

    def _periodic(self, job: Job) -> Work:
        every = job.every
        assert every is not None

        async def work(control: JobControl, lease: Lease | None) -> None:
            last = lease.last_run_at if lease is not None else None
            while not control.stopping:
                due = 0.0 if last is None else (last + every - utcnow()).total_seconds()
                if due > 0 and not await control.sleep(due):
                    return
                try:
                    await job.run(control)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("job_failed", job=job.name)
                last = utcnow()
                if lease is not None:
                    await self.store.record_run(job.name, self.holder, last)
                log.debug("job_ran", job=job.name)

        return work

    def _feed(self, subscriber: Subscriber) -> Work:
        feed = SubscriberFeed(subscriber, self.store, self.events, self.news)

        async def work(control: JobControl, lease: Lease | None) -> None:
            await feed.run(control)

        return work

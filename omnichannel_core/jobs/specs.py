"""What a module declares for background work: :class:`Job` and :class:`Subscriber`.

The job runner (`omnichannel_core.jobs.runner`) runs them. A singleton (the default) runs in
one runner at a time across every server sharing the store, which holds a lease for it; a
runner that dies loses its leases when they expire, and another takes over.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

import attrs

from omnichannel_core.events.records import Event
from omnichannel_core.tasks import wait_until

JOB_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}(\.[a-z0-9_-]{1,64})+$")
"""``<module>.<job>``, e.g. ``greeter.count_messages``: named after the module that runs it."""


def _name(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not JOB_NAME.match(value):
        raise ValueError(
            f"{attribute.name} must look like 'module.job' (lower case), not {value!r}"
        )


class JobControl:
    """What a running job is given: whether the runner is stopping, and a sleep that ends
    early when it is. A continuous job loops until :attr:`stopping`; a periodic one may
    ignore it (it is waited for, up to the runner's grace period). A singleton whose lease
    the runner lost is cancelled at once: another runner may be running it."""

    def __init__(self, holder: str = "") -> None:
        self.holder = holder
        """The runner running the job, as its leases name it (unique per process)."""
        self._stop = asyncio.Event()
        self.lease_lost = False
        """The runner lost the job's lease (another runner may hold it): the work was
        cancelled."""

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def lose_lease(self) -> None:
        self.lease_lost = True
        self.stop()

    async def sleep(self, seconds: float) -> bool:
        """Sleep ``seconds``; False (early) when the runner is stopping."""
        return not await wait_until(self._stop, seconds)


@attrs.frozen
class JobReport:
    """What a job says of its work in ``/health`` (its ``health`` function): ``ok`` False
    degrades the server's status; ``figures`` are the job's own (JSON values)."""

    ok: bool
    detail: str = ""
    figures: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Job:
    """Background work a module runs.

    :param name: ``module.job``, unique.
    :param run: ``async def run(control: JobControl) -> None``.
    :param every: run it this often (periodic); None: run it once and keep it running
        (continuous: it returns only when ``control.stopping``, and is started again if it
        returns or fails otherwise).
    :param singleton: one runner at a time across every server (a lease in the store);
        False: every runner process runs its own.
    :param health: ``async def health() -> JobReport``: its report in ``/health``, asked
        by the web server (it reads the store, not the runner's memory).
    """

    name: str = attrs.field(validator=_name)
    run: Callable[[JobControl], Awaitable[None]]
    every: timedelta | None = None
    singleton: bool = True
    description: str = ""
    health: Callable[[], Awaitable[JobReport]] | None = None

    def __attrs_post_init__(self) -> None:
        if self.every is not None and self.every <= timedelta(0):
            raise ValueError(f"job {self.name}: every must be positive")


def _event_types(types: Iterable[str] | None) -> frozenset[str] | None:
    """A subscriber's ``types`` as given (a set, a list...), kept as a frozenset."""
    return None if types is None else frozenset(types)


START_LATEST = "latest"
START_OLDEST = "oldest"
START_REBUILD = "rebuild"


@attrs.frozen
class Subscriber:
    """A module's reader of the event log: each event, in log order, at least once.

    Its cursor is kept in the store, so a restart, or another server taking over, goes on
    where it stopped. A handler that raises gets the same event again, after a pause that
    doubles (1 s up to 5 minutes), and no later one meanwhile (until retention gives up
    keeping the log for it: then it resyncs); the other subscribers are not held up. Its lag
    is in ``/health``.

    :param name: ``module.subscriber``, unique; its cursor is kept under this name.
    :param handle: ``async def handle(event: Event) -> None``; it may be called again for an
        event it already handled (after a crash): make it idempotent.
    :param handle_batch: instead of ``handle``: ``async def handle_batch(events:
        Sequence[Event]) -> None``, given the wanted events of each read of the log (up to
        100, in order) at once, for a handler that writes them in one transaction. A batch
        that raises is handed over again whole; the same idempotence is asked of it.
    :param types: the event types it wants (others are skipped, not handed to it); None: all.
    :param start: where a subscriber with no cursor yet starts: ``"latest"`` (what happens
        from now on), ``"oldest"`` (every event the log still keeps), or ``"rebuild"`` (its
        ``resync`` first, then every event kept: for what is derived from the whole store,
        not only from the events still logged).
    :param resync: called when events it had not read were pruned (it fell further behind
        than the log keeps), or when asked (``ModuleContext.resync``): rebuild what it
        derives from the store; it then goes on from the oldest kept event, so its handler
        must tell an event the rebuild already counted.
    """

    name: str = attrs.field(validator=_name)
    handle: Callable[[Event], Awaitable[None]] | None = None
    types: frozenset[str] | None = attrs.field(default=None, converter=_event_types)
    start: str = attrs.field(
        default=START_LATEST,
        validator=attrs.validators.in_((START_LATEST, START_OLDEST, START_REBUILD)),
    )
    resync: Callable[[], Awaitable[None]] | None = None
    description: str = ""
    handle_batch: Callable[[Sequence[Event]], Awaitable[None]] | None = None

    def __attrs_post_init__(self) -> None:
        if (self.handle is None) == (self.handle_batch is None):
            raise ValueError(f"subscriber {self.name!r}: give one of handle and handle_batch")
        if self.start == START_REBUILD and self.resync is None:
            raise ValueError(f"subscriber {self.name!r} starts with a rebuild: give resync")

    def wants(self, event: Event) -> bool:
        return self.types is None or event.type in self.types

"""How each server process learns that the event log has grown.

The log in the store is the truth; a bus only rings a bell, so a lost or late ring delays a
stream, never loses an event (the hub of the ``events`` module also reads the
log when a ring is overdue). Two kinds:

- :class:`PollingBus`, the default: no bell at all, every ``OMNICHANNEL_EVENT_POLL_MS`` it
  asks SQLite whether anything was committed since (``PRAGMA data_version``, one statement)
  and wakes the readers only then. It needs no other service and works across gunicorn's
  worker processes on one machine, which share the SQLite file.
- ``PubSubBus`` (`omnichannel_core.bus.pubsub`), for many machines: Google Cloud Pub/Sub
  carries the bell from the process that wrote to every other process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from omnichannel_core.config import Config
from omnichannel_core.tasks import wait_until


class EventBus(Protocol):
    """A bell shared by every server process. Methods are called on the event loop."""

    async def start(self) -> None:
        """Connect (once per process, before the first ``wait``)."""

    async def close(self) -> None: ...

    def ring(self) -> None:
        """Tell every process (this one too) that the log has grown. Quick: it may only
        schedule the work, and never raises."""

    async def wait(self, at_most: float) -> None:
        """Return when a ring may have arrived since the last ``wait`` returned, or after
        ``at_most`` seconds at the latest."""


class PollingBus:
    """No bell: the hub reads the log at the pace of ``interval``; a ring from this process
    ends the wait at once. With ``data_version`` (the database's, `Database.data_version`),
    each poll first asks it, and ends the wait only when it moved (something was committed
    since the last poll, by any process): an idle process reads nothing, but once every
    ``at_most``."""

    def __init__(
        self, interval: float, data_version: Callable[[], Awaitable[int | None]] | None = None
    ) -> None:
        self.interval = interval
        self.data_version = data_version
        self._rung: asyncio.Event | None = None
        self._seen: int | None = None

    async def start(self) -> None:
        self._rung = asyncio.Event()
        self._seen = None  # a database opened again counts afresh

    async def close(self) -> None:
        pass

    def ring(self) -> None:
        if self._rung is not None:
            self._rung.set()

    async def wait(self, at_most: float) -> None:
        assert self._rung is not None, "start() the bus first"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + at_most
        while True:
            left = deadline - loop.time()
            rung = await wait_until(self._rung, max(0.0, min(left, self.interval)))
            self._rung.clear()
            if rung or left <= self.interval or await self._moved():
                return

    async def _moved(self) -> bool:
        """Whether the database changed since the last poll (True when it cannot tell)."""
        if self.data_version is None:
            return True
        try:
            seen = await self.data_version()
        except Exception:  # the database is closing, or failing: the readers find out
            return True
        moved = seen is None or seen != self._seen
        self._seen = seen
        return moved


def create_bus(
    config: Config, data_version: Callable[[], Awaitable[int | None]] | None = None
) -> EventBus:
    """The bus ``OMNICHANNEL_EVENT_BUS`` names: ``poll`` or ``pubsub://PROJECT/TOPIC``
    (ConfigError, naming the variable, when its credentials cannot be found). A polling bus
    asks ``data_version`` (the database's) before each wake-up."""
    if config.event_bus.startswith("pubsub://"):
        from omnichannel_core.bus.pubsub import PubSubBus  # Google's client: only if used

        project, _, topic = config.event_bus.removeprefix("pubsub://").partition("/")
        return PubSubBus(project, topic, config)
    return PollingBus(config.event_poll_ms / 1000, data_version)

"""How each server process learns that the event log has grown.

The log in the store is the truth; a bus only rings a bell, so a lost or late ring delays a
stream, never loses an event (the hub of the ``events`` module also reads the
log when a ring is overdue). Two kinds:

- :class:`PollingBus`, the default: no bell at all, the hub reads the log every
  ``OMNICHANNEL_EVENT_POLL_MS``. It needs no other service and works across gunicorn's worker
  processes on one machine, which share the SQLite file; a read of an empty tail is one
  indexed query.
- ``PubSubBus`` (`omnichannel_core.bus.pubsub`), for many machines: Google Cloud Pub/Sub
  carries the bell from the process that wrote to every other process.
"""

from __future__ import annotations

import asyncio
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
    """No bell: every ``wait`` lasts ``interval`` seconds, so the hub reads the log at that
    pace; a ring from this process ends the wait at once."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._rung: asyncio.Event | None = None

    async def start(self) -> None:
        self._rung = asyncio.Event()

    async def close(self) -> None:
        pass

    def ring(self) -> None:
        if self._rung is not None:
            self._rung.set()

    async def wait(self, at_most: float) -> None:
        assert self._rung is not None, "start() the bus first"
        await wait_until(self._rung, min(at_most, self.interval))
        self._rung.clear()


def create_bus(config: Config) -> EventBus:
    """The bus ``OMNICHANNEL_EVENT_BUS`` names: ``poll`` or ``pubsub://PROJECT/TOPIC``
    (ConfigError, naming the variable, when its credentials cannot be found)."""
    if config.event_bus.startswith("pubsub://"):
        from omnichannel_core.bus.pubsub import PubSubBus  # Google's client: only if used

        project, _, topic = config.event_bus.removeprefix("pubsub://").partition("/")
        return PubSubBus(project, topic, config)
    return PollingBus(config.event_poll_ms / 1000)

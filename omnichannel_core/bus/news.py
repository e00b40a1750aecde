"""Every reader of the event log in a process, woken by one waiter on the bus.

The bus's ``wait`` has one waiter; a process has several readers (the realtime stream's hub,
each event subscriber of the job runner). :class:`News` waits on the bus for all of them
while at least one listens, and sets a signal each time the bus says the log may have grown
(a ring, or a poll that found the database changed, or :data:`OVERDUE_SECONDS` without
either). Readers take the
signal *before* they read the log, then wait on it: news arriving while they read is not
missed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import structlog

from omnichannel_core.bus.bus import EventBus
from omnichannel_core.tasks import cancel_and_wait, wait_until

log = structlog.get_logger("omnichannel.events")

OVERDUE_SECONDS = 5.0
"""The longest a reader waits for a ring before it reads the log anyway."""


class News:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._signal = asyncio.Event()
        self._listeners = 0
        self._wanted = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        """Keep waiting on the bus while the caller reads; with nobody listening, the
        process waits on nothing (and a polling bus polls nothing)."""
        if self._pump is None:
            self._pump = asyncio.create_task(self._wait_forever(), name="event-news")
        self._listeners += 1
        self._wanted.set()
        try:
            yield
        finally:
            self._listeners -= 1
            if self._listeners == 0:
                self._wanted.clear()

    def signal(self) -> asyncio.Event:
        """Set when news arrives after this call."""
        return self._signal

    async def wait(self, signal: asyncio.Event, at_most: float) -> bool:
        """Wait for ``signal`` (from :meth:`signal`); False when ``at_most`` seconds passed
        first."""
        return await wait_until(signal, at_most)

    def tell(self) -> None:
        """Wake every reader (news, or the process is stopping)."""
        signal, self._signal = self._signal, asyncio.Event()
        signal.set()

    async def _wait_forever(self) -> None:
        while True:
            try:
                await self._wanted.wait()
                await self.bus.wait(OVERDUE_SECONDS)
                self.tell()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event_bus_wait_failed")
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._pump is not None:
            await cancel_and_wait(self._pump)
            self._pump = None
        self.tell()

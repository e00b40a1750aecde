"""Keeps the event log to ``OMNICHANNEL_EVENT_RETENTION_HOURS``: each server process prunes
it when it starts and every hour after (several processes pruning at once is harmless). A
stream that resumes from before the horizon is told so (``event: expired``)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog

from omnichannel_core.models import utcnow
from omnichannel_core.store import Store

log = structlog.get_logger("omnichannel.events")

PRUNE_EVERY_SECONDS = 3600.0


class EventRetention:
    def __init__(self, store: Store, keep: timedelta) -> None:
        self.store = store
        self.keep = keep
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._prune_forever(), name="event-retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def prune(self) -> int:
        pruned = await self.store.prune_events(utcnow() - self.keep)
        if pruned:
            log.info("events_pruned", count=pruned)
        return pruned

    async def _prune_forever(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:
                log.exception("events_prune_failed")
            await asyncio.sleep(PRUNE_EVERY_SECONDS)

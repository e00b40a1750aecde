"""An open event stream's record in the store, kept while it is open: what makes its user
connected.

A user's stream records itself when it opens (before its ``ready`` event, so a client that
got ``ready`` is connected), refreshes its ``seen_at`` while it stays open, and removes
itself when it closes. It refreshes at the first send (an event or a keepalive) once
:attr:`~PresenceTiming.refresh_seconds` have passed since the last refresh, and sends its
keepalive at least twice in that time (`stream`): a refresh comes at most 1.5 refresh
periods (half the timeout) after the one before, and only while the client is there (a
client that left is noticed at a send, and the stream is not resumed). A process killed
with its streams open removes nothing: its streams stop being refreshed, and count as gone
once the timeout passes. The store failing never stops a stream: the failure is logged, and
the next refresh writes the record whole again.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import attrs
import structlog

from omnichannel_core.module import Principal, new_id, utcnow
from omnichannel_core.modules.events.presence.records import OpenStream
from omnichannel_core.modules.events.presence.store import PresenceStore
from omnichannel_core.modules.events.presence.timing import PresenceTiming

log = structlog.get_logger("omnichannel.events")

STREAM_PREFIX = "pst"


def process_name() -> str:
    """This process, as the streams it holds name it: ``host:pid`` (read at each stream:
    gunicorn's workers are forked after import)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class StreamPresence:
    """One open stream of a user, kept in the store while it is open."""

    def __init__(
        self,
        store: PresenceStore,
        timing: PresenceTiming,
        user_id: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.timing = timing
        self.clock = clock
        now = clock()
        self.stream = OpenStream(new_id(STREAM_PREFIX), user_id, process_name(), now, now)
        self._kept_at = time.monotonic()

    @property
    def refresh_seconds(self) -> float:
        return self.timing.refresh_seconds

    def due_in(self) -> float:
        """Seconds until the next refresh is due (0 or less: due now)."""
        return self._kept_at + self.refresh_seconds - time.monotonic()

    async def open(self) -> None:
        await self._keep("presence_open_failed")

    async def refresh(self) -> None:
        """Write ``seen_at`` anew if a refresh is due; nothing otherwise."""
        if self.due_in() <= 0:
            self.stream = attrs.evolve(self.stream, seen_at=self.clock())
            await self._keep("presence_refresh_failed")

    async def close(self) -> None:
        try:
            await self.store.drop_stream(self.stream.stream_id)
        except Exception:
            log.exception("presence_close_failed", stream_id=self.stream.stream_id)

    async def _keep(self, failure: str) -> None:
        self._kept_at = time.monotonic()  # a failure waits for the next refresh, too
        try:
            await self.store.keep_stream(self.stream)
        except Exception:
            log.exception(failure, stream_id=self.stream.stream_id)


class PresenceTracker:
    """Hands each stream its :class:`StreamPresence`: users' streams only (an API key has
    no presence)."""

    def __init__(self, store: PresenceStore, timing: PresenceTiming) -> None:
        self.store = store
        self.timing = timing

    @contextlib.asynccontextmanager
    async def track(self, principal: Principal) -> AsyncIterator[StreamPresence | None]:
        """The stream's presence, recorded on entry and removed on exit; None for a caller
        that is not a user."""
        if principal.kind != "user":
            yield None
            return
        presence = StreamPresence(self.store, self.timing, principal.id)
        await presence.open()
        try:
            yield presence
        finally:
            await presence.close()

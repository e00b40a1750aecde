"""Presence read from the store: :class:`StoredPresence`, the ``Presence`` service (who is
connected, for the dashboard) and what ``GET``/``PUT /api/presence`` answer.

A user is *connected* while a stream of theirs seen within the timeout is in the store;
their *status* is what they set (``available`` until they set one). *Online* is connected
and available, *away* connected and away, *offline* anything else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime

from omnichannel_core.module import PresentUser, utcnow
from omnichannel_core.modules.events.presence.records import (
    OpenStream,
    OwnPresence,
    State,
    Status,
    UserStatus,
)
from omnichannel_core.modules.events.presence.store import PresenceStore
from omnichannel_core.modules.events.presence.timing import PresenceTiming


def state_of(connected: bool, status: Status) -> State:
    """A user's presence, from whether they are connected and their status."""
    if not connected:
        return State.OFFLINE
    return State.AWAY if status is Status.AWAY else State.ONLINE


class StoredPresence:
    """:class:`omnichannel_core.services.Presence`, and the caller's own presence."""

    def __init__(
        self,
        store: PresenceStore,
        timing: PresenceTiming,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.timing = timing
        self.clock = clock

    def _seen_since(self) -> datetime:
        """The oldest ``seen_at`` a stream may have and still count as open."""
        return self.clock() - self.timing.timeout

    async def present(self) -> list[PresentUser]:
        """Every connected user, longest connected first (ties by user id)."""
        by_user = _by_user(await self.store.streams(self._seen_since()))
        statuses = await self.store.statuses(by_user)
        present = [
            PresentUser(
                user_id=user_id,
                status=_status(statuses.get(user_id)).value,
                connected_since=min(stream.opened_at for stream in streams),
                streams=len(streams),
            )
            for user_id, streams in by_user.items()
        ]
        return sorted(present, key=lambda user: (user.connected_since, user.user_id))

    async def of_user(self, user_id: str) -> OwnPresence:
        """``user_id``'s presence now."""
        streams = await self.store.streams(self._seen_since(), user_id)
        status = _status((await self.store.statuses([user_id])).get(user_id))
        return OwnPresence(
            user_id=user_id,
            status=status,
            presence=state_of(bool(streams), status),
            streams=len(streams),
            connected_since=min((stream.opened_at for stream in streams), default=None),
        )

    async def set_status(self, user_id: str, status: Status) -> OwnPresence:
        """Keep ``status`` as ``user_id``'s (across their reconnects); their presence after."""
        await self.store.set_status(UserStatus(user_id, status, self.clock()))
        return await self.of_user(user_id)

    async def prune(self) -> int:
        """Delete the streams not seen within the timeout (their process died without
        closing them); how many."""
        return await self.store.prune_streams(self._seen_since())


def _status(stored: UserStatus | None) -> Status:
    return Status.AVAILABLE if stored is None else stored.status


def _by_user(streams: Iterable[OpenStream]) -> dict[str, list[OpenStream]]:
    grouped: dict[str, list[OpenStream]] = defaultdict(list)
    for stream in streams:
        grouped[stream.user_id].append(stream)
    return grouped

"""What presence needs from storage (store ``presence``): the open event streams of users,
and the status each user set. `presence.sqlite` and `presence.firestore` implement it;
tests/test_presence_store.py holds both to it."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from omnichannel_core.module import StoreSpec, lazy
from omnichannel_core.modules.events.presence.records import OpenStream, UserStatus


class PresenceStore(Protocol):
    async def keep_stream(self, stream: OpenStream) -> None:
        """Record ``stream``, or write it again over the one with its id (a refresh: a new
        ``seen_at``). A stream pruned while its process stalled comes back."""

    async def drop_stream(self, stream_id: str) -> None:
        """Forget the stream (it closed); nothing when it is not there."""

    async def streams(self, seen_since: datetime, user_id: str | None = None) -> list[OpenStream]:
        """The streams seen at or after ``seen_since`` (with ``user_id``: that user's
        only), in no particular order."""

    async def prune_streams(self, seen_before: datetime) -> int:
        """Delete the streams last seen before ``seen_before``; how many."""

    async def set_status(self, status: UserStatus) -> None:
        """Keep ``status`` as its user's, in place of the one before."""

    async def statuses(self, user_ids: Collection[str]) -> dict[str, UserStatus]:
        """The statuses these users set, by user id (a user who never set one is absent)."""


def presence_store_spec() -> StoreSpec:
    from omnichannel_core.modules.events.presence.sqlite import MIGRATIONS

    return StoreSpec(
        "presence",
        PresenceStore,
        sqlite=lazy("omnichannel_core.modules.events.presence.sqlite", "SqlitePresenceStore"),
        firestore=lazy(
            "omnichannel_core.modules.events.presence.firestore", "FirestorePresenceStore"
        ),
        sqlite_migrations=MIGRATIONS,
    )

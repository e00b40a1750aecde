"""The media module's store: what each media id names, which messages hold it, and the
provider's media the ``media.fetch`` job has to fetch. `sqlite` and `firestore` implement it;
tests/test_media_store.py holds both to it. The bytes themselves are not here but in the
blob store (`omnichannel_core.modules.media.blobs`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from omnichannel_core.modules.media.records import PendingFetch, StoredMedia


class MediaStore(Protocol):
    async def add_media(self, media: StoredMedia) -> None:
        """Record ``media`` (its bytes are in the blob store already)."""

    async def get_media(self, media_id: str) -> StoredMedia:
        """What ``media_id`` names; NotFound for an id the store does not know."""

    async def add_holders(self, message_id: str, media_ids: Sequence[str]) -> None:
        """Record that message ``message_id`` holds each of ``media_ids`` (recorded already:
        a no-op)."""

    async def holders(self, media_id: str, limit: int) -> list[str]:
        """The ids of at most ``limit`` messages that hold ``media_id``, the newest first."""

    async def expect_fetch(self, fetch: PendingFetch) -> bool:
        """Record a fetch to do, unless one for the same (message, index) is recorded
        (whatever its state): True when it was recorded."""

    async def get_fetch(self, message_id: str, index: int) -> PendingFetch | None:
        """The fetch of item ``index`` of the message, if one was ever asked."""

    async def save_fetch(self, fetch: PendingFetch) -> None:
        """Write ``fetch`` as it now is (the job's one runner changes it)."""

    async def due_fetches(self, now: datetime, limit: int) -> list[PendingFetch]:
        """At most ``limit`` pending fetches due at ``now`` or before, the earliest due
        first."""

    async def next_due_at(self) -> datetime | None:
        """When the earliest pending fetch is due; None when none is pending."""

    async def count_pending(self) -> int:
        """How many fetches are pending."""

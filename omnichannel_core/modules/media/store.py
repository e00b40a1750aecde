"""The media module's store: what each media id names, which messages hold it, and the
provider's media the ``media.fetch`` job has to fetch. `sqlite` and `firestore` implement it;
tests/test_media_store.py and tests/test_media_forget.py hold both to it. The bytes
themselves are not here but in the blob store (`omnichannel_core.modules.media.blobs`).

An **erasure claim** (``media_erasures``) names bytes (a SHA-256) that a forget may be
deleting: while one is held, no item naming those bytes is recorded (:meth:`add_media`).
Claims are what make deleting shared bytes safe against an upload of the same bytes (the
order is in `omnichannel_core.modules.media.keeper`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from omnichannel_core.modules.media.records import ForgottenItems, PendingFetch, StoredMedia


class MediaStore(Protocol):
    async def add_media(self, media: StoredMedia) -> datetime | None:
        """Record ``media`` (its bytes are in the blob store already) and answer None,
        unless an erasure claim is held on its ``sha256``: then record nothing and answer
        when the newest such claim was made. The claim is read in the transaction that
        writes the item, so an item is recorded either before a claim or after its
        release."""

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
        """Write ``fetch`` as it now is (the job's one runner changes it), if it is still
        recorded: one forgotten meanwhile (:meth:`forget_fetches`) stays forgotten."""

    async def due_fetches(self, now: datetime, limit: int) -> list[PendingFetch]:
        """At most ``limit`` pending fetches due at ``now`` or before, the earliest due
        first."""

    async def next_due_at(self) -> datetime | None:
        """When the earliest pending fetch is due; None when none is pending."""

    async def count_pending(self) -> int:
        """How many fetches are pending."""

    async def forget_media(
        self, media_ids: Collection[str], claim: str, now: datetime
    ) -> ForgottenItems:
        """Delete the items ``media_ids`` name (an unknown id, or one no record can have, is
        skipped), with their holders and the fetches that kept them (``media_id``); in the
        transaction that deletes the items, take the erasure claim ``claim`` (made at
        ``now``) on the bytes each named, whatever else names them. Holders and fetches may
        go in writes of their own before it (so a retry finishes them)."""

    async def forget_fetches(self, message_ids: Collection[str]) -> int:
        """Delete every fetch recorded for the messages ``message_ids`` (pending, done or
        failed: each holds the provider's URL and the file's name); how many there were."""

    async def sha256_in_use(self, sha256: str) -> bool:
        """Whether any item names the bytes ``sha256`` (read now, not in a transaction)."""

    async def release_erasure(self, sha256: str, claim: str) -> None:
        """Drop the erasure claim ``claim`` on ``sha256`` (others on it stay); dropped
        already: a no-op."""

    async def take_over_erasures(self, before: datetime, claim: str, now: datetime) -> list[str]:
        """Claims abandoned by a forget that died: for each SHA-256 whose newest claim was
        made before ``before``, replace its claims with ``claim`` (made at ``now``), in a
        transaction; the SHA-256s taken over."""

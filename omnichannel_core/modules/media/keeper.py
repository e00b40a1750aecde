"""The media store as other modules use it (:class:`~omnichannel_core.module.MediaKeeper`):
check what bytes are, keep them (blob first, then the record naming them), read them back,
describe them for a caller who attaches them (`omnichannel_core.modules.media.access`),
note which messages hold them, queue a provider's media for the ``media.fetch`` job, and
forget items (erasing a contact).

Forgetting shares bytes with uploading
--------------------------------------

Items name bytes by their SHA-256, and many items may name the same bytes; the blob store
and the item store share no transaction. So bytes are deleted only under an **erasure
claim** (`omnichannel_core.modules.media.store`), in this order:

1. one transaction deletes the items and claims each SHA-256 they named;
2. then, for each claimed SHA-256, if no item names it now, the bytes are deleted;
3. then the claim is released.

and an upload (:meth:`Keeper.keep_bytes`) goes:

a. put the bytes;
b. record the item, in a transaction that reads the claims on its SHA-256: while one is
   held it records nothing, waits and tries again;
c. put the bytes again if they are gone.

No item is ever left naming deleted bytes: the item of (b) is committed either before the
claim of (1) (then (2), which reads after (1) is committed, sees it and keeps the bytes),
or after the release of (3) (then the deletion of (2) is over, and (c) puts the bytes
back). (a) alone would not do: its put finds the bytes there and does nothing, then (2)
deletes them. The stores make (b) and (1) exclusive: SQLite's one writer, or on Firestore
the claim document, which (b) reads and (1) writes in their transactions.

A forget that dies between (1) and (3) leaves its claim. Once it is
:data:`CLAIM_ABANDONED_AFTER` old, the next forget, or an upload waiting on it, takes it
over and finishes (2) and (3). A forget whose deletion fails raises and leaves its claim
likewise: its bytes are deleted then.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Collection
from datetime import timedelta

import attrs
import structlog

from omnichannel_core.channel import Attachment
from omnichannel_core.module import (
    Config,
    InvalidInput,
    Media,
    NotFound,
    Principal,
    new_id,
    utcnow,
)
from omnichannel_core.modules.media.access import MediaAccess
from omnichannel_core.modules.media.blobs import Blobs
from omnichannel_core.modules.media.content import checked_type, safe_filename
from omnichannel_core.modules.media.records import PendingFetch, StoredMedia
from omnichannel_core.modules.media.store import MediaStore

log = structlog.get_logger("omnichannel.media")

CLAIM_ABANDONED_AFTER = timedelta(minutes=5)
"""An erasure claim this old belongs to a forget that died (a forget holds one for one
blob deletion: milliseconds, or a Cloud Storage call of at most a minute and its retries)."""
FIRST_WAIT_SECONDS = 0.02
LONGEST_WAIT_SECONDS = 1.0


class TooLarge(InvalidInput):
    """More bytes than ``OMNICHANNEL_MEDIA_MAX_BYTES``."""


class Keeper:
    """:class:`~omnichannel_core.module.MediaKeeper` on a store, a blob store, and the rule of
    who may read what (:class:`MediaAccess`)."""

    def __init__(
        self, store: MediaStore, blobs: Blobs, config: Config, access: MediaAccess
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.config = config
        self.access = access

    async def keep_bytes(
        self,
        content: bytes,
        content_type: str | None,
        filename: str | None,
        uploaded_by: str | None = None,
    ) -> StoredMedia:
        """Check and keep ``content``: TooLarge, or UnsupportedMediaType (an InvalidInput
        too) for a type the server does not keep. A new id each time, the bytes once."""
        limit = self.config.media_max_bytes
        if len(content) > limit:
            raise TooLarge(
                f"media of {len(content)} bytes is larger than {limit}"
                " (OMNICHANNEL_MEDIA_MAX_BYTES)",
                size=len(content),
            )
        kept_type = checked_type(content_type, content, self.config.media_types)
        digest = hashlib.sha256(content).hexdigest()
        await self.blobs.put(digest, content)  # (a) first: a record never names missing bytes
        stored = StoredMedia(
            id=new_id("med", unguessable=True),  # attached by id: docs/media.md
            content_type=kept_type,
            size=len(content),
            filename=safe_filename(filename),
            sha256=digest,
            created_at=utcnow(),
            uploaded_by=uploaded_by,
        )
        await self._record(stored)
        if not await self.blobs.exists(digest):  # (c) a forget deleted them after (a)
            await self.blobs.put(digest, content)
        return stored

    async def _record(self, stored: StoredMedia) -> None:
        """(b): record ``stored`` once no erasure claim is held on its bytes."""
        wait = FIRST_WAIT_SECONDS
        while (claimed_at := await self.store.add_media(stored)) is not None:
            if utcnow() - claimed_at > CLAIM_ABANDONED_AFTER:
                await self._finish_abandoned()
            await asyncio.sleep(wait)
            wait = min(wait * 2, LONGEST_WAIT_SECONDS)

    async def keep(self, attachment: Attachment) -> Media:
        stored = await self.keep_bytes(
            attachment.content, attachment.content_type, attachment.filename
        )
        return Media(
            url="",
            id=stored.id,
            content_type=stored.content_type,
            size=stored.size,
            filename=stored.filename,
            role=attachment.role,
            content_id=attachment.content_id,
        )

    async def describe(self, media: Media, principal: Principal) -> Media:
        if media.id is None:
            return media
        # one answer for an id the store does not know and one the caller may not read
        unknown = InvalidInput(f"no media {media.id!r} is kept here", id=media.id)
        try:
            stored = await self.store.get_media(media.id)
        except NotFound:
            raise unknown from None
        if not await self.access.may_read(principal, stored):
            raise unknown
        described = stored.media()
        filename = safe_filename(media.filename)
        return described if filename is None else attrs.evolve(described, filename=filename)

    async def record_holder(self, message_id: str, media: tuple[Media, ...]) -> None:
        kept = list(dict.fromkeys(item.id for item in media if item.id is not None))
        await self.store.add_holders(message_id, kept)

    async def read(self, media_id: str) -> bytes:
        stored = await self.store.get_media(media_id)
        return await self.blobs.get(stored.sha256)

    async def read_stored(self, stored: StoredMedia) -> bytes:
        return await self.blobs.get(stored.sha256)

    async def expect(self, channel: str, message_id: str, media: tuple[Media, ...]) -> None:
        now = utcnow()
        for index, item in enumerate(media):
            if item.id is None and item.url:
                await self.store.expect_fetch(
                    PendingFetch(message_id, index, channel, item, due_at=now, updated_at=now)
                )

    async def forget(
        self,
        media_ids: Collection[str],
        message_ids: Collection[str] = (),
        keep_shared: bool = False,
    ) -> int:
        if keep_shared:
            media_ids = await self._held_only_by(media_ids, message_ids)
        await self._finish_abandoned()
        await self.store.forget_fetches(message_ids)
        claim = new_id("era")
        forgotten = await self.store.forget_media(media_ids, claim, utcnow())  # (1)
        erased = await self._erase(forgotten.digests, claim)
        log.info(
            "media_forgotten",
            items=forgotten.items,
            blobs_deleted=erased,
            blobs_kept=len(forgotten.digests) - erased,
        )
        return forgotten.items

    async def _held_only_by(
        self, media_ids: Collection[str], message_ids: Collection[str]
    ) -> list[str]:
        """Those of ``media_ids`` no message but ``message_ids`` holds. (A message of
        another contact attaching one of them between this read and the forget would lose
        it: an agent attaches an item by id within a request, while the erasure runs.)"""
        theirs = set(message_ids)
        alone: list[str] = []
        for media_id in dict.fromkeys(media_ids):
            holders = await self.store.holders(media_id, len(theirs) + 1)
            if set(holders) <= theirs:
                alone.append(media_id)
            else:
                log.info("media_kept_shared", media_id=media_id)
        return alone

    async def _erase(self, digests: Collection[str], claim: str) -> int:
        """(2) and (3) for each of ``digests``, claimed by ``claim``: how many were
        deleted. A deletion that fails leaves its claim (taken over once abandoned)."""
        erased = 0
        for digest in digests:
            if not await self.store.sha256_in_use(digest):
                await self.blobs.delete(digest)
                erased += 1
            await self.store.release_erasure(digest, claim)
        return erased

    async def _finish_abandoned(self) -> None:
        """Take over the erasure claims of forgets that died, and finish them."""
        claim = new_id("era")
        now = utcnow()
        abandoned = await self.store.take_over_erasures(now - CLAIM_ABANDONED_AFTER, claim, now)
        if abandoned:
            log.warning("media_erasures_taken_over", blobs=len(abandoned))
            await self._erase(abandoned, claim)

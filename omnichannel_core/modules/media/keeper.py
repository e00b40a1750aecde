"""The media store as other modules use it (:class:`~omnichannel_core.module.MediaKeeper`):
check what bytes are, keep them (blob first, then the record naming them), read them back,
describe them for a caller who attaches them (`omnichannel_core.modules.media.access`),
note which messages hold them, and queue a provider's media for the ``media.fetch`` job."""

from __future__ import annotations

import hashlib

import attrs

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
        await self.blobs.put(digest, content)  # first: a record never names missing bytes
        stored = StoredMedia(
            id=new_id("med", unguessable=True),  # attached by id: docs/media.md
            content_type=kept_type,
            size=len(content),
            filename=safe_filename(filename),
            sha256=digest,
            created_at=utcnow(),
            uploaded_by=uploaded_by,
        )
        await self.store.add_media(stored)
        return stored

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

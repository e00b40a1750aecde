"""The inbox's side of the media store (the media module's :class:`MediaKeeper`).

- Inbound, before a message is stored: every :class:`Attachment` that came with the
  webhook is kept (unless the message is stored already: a provider's retry, a mail fetched
  again, adds no media record), and the message names it as :class:`Media` with an ``id``;
  one the store refuses (a type it does not take, too many bytes) is left out and listed,
  with why, in the message's ``metadata["media_refused"]``: the customer's text is never
  lost over a file. After it is stored: each item the provider holds (a URL, no ``id``)
  is queued for the media job, which fetches it through the channel's ``media_fetch``
  hook.
- Outbound, before a message is stored: each item a caller names by ``media_id`` is
  described by the store (its type and size) when the caller may read it, or refused with
  400, the same for an id they may not read as for one the store does not know (docs/media.md);
  a send with no caller (a program's own) may name none.
- Once a message is stored (either way), the store notes that it holds its kept items: whoever
  may see it may attach them.
- :class:`MessageMedia` (:class:`InboxMedia`): what the media module may do with messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import attrs

from omnichannel_core.channel import Attachment, InboundMessage, OutboundRequest
from omnichannel_core.module import (
    Direction,
    InvalidInput,
    Media,
    MediaKeeper,
    Message,
    Principal,
)
from omnichannel_core.modules.inbox.store import InboxStore, Ingested
from omnichannel_core.modules.inbox.visibility import check_message_visible

REFUSED = "media_refused"
"""The metadata key listing the attachments the media store would not keep."""
NO_MEDIA_STORE = "the media store is not loaded (the media module is disabled or failed)"


def has_media(messages: Sequence[InboundMessage]) -> bool:
    return any(inbound.media for inbound in messages)


async def keep_attachments(
    keeper: MediaKeeper | None, store: InboxStore, channel: str, inbound: InboundMessage
) -> InboundMessage:
    """``inbound`` as the store takes it: its attachments kept and named as media (those
    refused listed in its metadata), and every other item a provider's URL (an ``id`` a
    channel gave is dropped: only the media store names its own items). A message with
    attachments that is stored already (the same provider id) keeps none: it is a
    duplicate, which the store ignores, and its bytes are kept already."""
    if not inbound.media:
        return inbound
    if any(isinstance(item, Attachment) for item in inbound.media):
        stored = await store.find_by_provider_id(
            channel, Direction.INBOUND, inbound.provider_message_id
        )
        if stored is not None:  # the provider's items stay: their fetch may be due still
            return attrs.evolve(
                inbound, media=tuple(item for item in inbound.media if isinstance(item, Media))
            )

    async def kept(item: Media | Attachment) -> Media | dict[str, Any]:
        if isinstance(item, Media):
            return item if item.id is None else attrs.evolve(item, id=None, size=None)
        if keeper is None:
            return _refusal(item, NO_MEDIA_STORE)
        try:
            return await keeper.keep(item)
        except InvalidInput as refused:
            return _refusal(item, refused.message)

    results = await asyncio.gather(*(kept(item) for item in inbound.media))
    media = tuple(result for result in results if isinstance(result, Media))
    refused = [result for result in results if not isinstance(result, Media)]
    metadata = dict(inbound.metadata)
    if refused:
        metadata[REFUSED] = [*metadata.get(REFUSED, ()), *refused]
    return attrs.evolve(inbound, media=media, metadata=metadata)


def _refusal(attachment: Attachment, reason: str) -> dict[str, Any]:
    return {
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        "size": len(attachment.content),
        "reason": reason,
    }


def awaits_fetch(media: Sequence[Media]) -> bool:
    """True when an item is the provider's still (a URL, no ``id``)."""
    return any(item.id is None and item.url for item in media)


async def expect_fetches(
    keeper: MediaKeeper | None,
    channel: str,
    messages: Sequence[InboundMessage],
    ingested: Sequence[Ingested],
) -> None:
    """Note that each stored message holds its kept items, and queue its provider's media
    for the media job: of new messages and of duplicates alike (a crash after the store and
    before this leaves the provider unanswered, and its retry does it then; doing either
    twice is a no-op)."""
    if keeper is None:
        return
    for inbound, stored in zip(messages, ingested, strict=True):
        await record_holder(keeper, stored.message)
        if awaits_fetch([item for item in inbound.media if isinstance(item, Media)]):
            message = stored.message
            await keeper.expect(channel, message.id, message.media)


async def record_holder(keeper: MediaKeeper | None, message: Message) -> None:
    """Note in the media store that ``message`` holds its kept items (no write when it holds
    none): whoever may see it may then attach them."""
    if keeper is not None and any(item.id is not None for item in message.media):
        await keeper.record_holder(message.id, message.media)


async def described(
    keeper: MediaKeeper | None, request: OutboundRequest, principal: Principal | None
) -> OutboundRequest:
    """``request`` with each item named by ``media_id`` described by the media store (its
    type and size) for ``principal``, who sends it; InvalidInput naming the item when the
    store keeps no such media or ``principal`` may not read it (the one answer for both).
    Without a principal (a program's own send), no item may be named by id: a route that
    takes ``media_id`` passes its caller."""
    if not any(item.id is not None for item in request.media):
        return request
    if keeper is None:
        raise InvalidInput(f"media: {NO_MEDIA_STORE}", field="media")
    if principal is None:
        raise InvalidInput(
            "media: kept media (media_id) is attached only for a caller who may read it,"
            " and this send names none",
            field="media",
        )
    media = []
    for index, item in enumerate(request.media):
        if item.id is None:
            media.append(item)
            continue
        try:
            media.append(await keeper.describe(item, principal))
        except InvalidInput as unknown:
            raise InvalidInput(
                f"media[{index}].media_id: {unknown.message}", field=f"media[{index}].media_id"
            ) from None
    return attrs.evolve(request, media=tuple(media))


def comparable(media: Sequence[Media]) -> tuple[Media, ...]:
    """Media as two requests for one message are compared (an Idempotency-Key replay): a
    kept item by its id alone (the stored message also names its type, size and route)."""
    return tuple(Media(url="", id=item.id) if item.id is not None else item for item in media)


class MessageMedia:
    """:class:`omnichannel_core.module.InboxMedia` on the inbox's store."""

    def __init__(self, store: InboxStore) -> None:
        self.store = store

    async def visible_message(self, principal: Principal, message_id: str) -> Message:
        message = await self.store.get_message(message_id)
        await check_message_visible(self.store, principal, message)
        return message

    async def replace_media(
        self, message_id: str, index: int, provider_url: str, media: Media
    ) -> Message | None:
        return await self.store.replace_media(message_id, index, provider_url, media)

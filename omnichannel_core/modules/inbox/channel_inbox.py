"""What a channel's own routes may do with the inbox (:class:`ChannelInbox`): store, read and
send on their own channel only. ``channel_routes`` is given one of these, never the inbox or
its store."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from datetime import timedelta

from omnichannel_core.channel import InboundMessage, OutboundRequest, WebhookResult
from omnichannel_core.module import (
    ChannelFailed,
    ChannelUnavailable,
    Conversation,
    ConversationFeed,
    Direction,
    LiveEvents,
    Media,
    Message,
    NotFound,
    Page,
    Principal,
    Received,
    RefusedMedia,
)
from omnichannel_core.modules.inbox.events import TypingParty
from omnichannel_core.modules.inbox.media import REFUSED
from omnichannel_core.modules.inbox.service import Inbox
from omnichannel_core.modules.inbox.store import Ingested
from omnichannel_core.modules.inbox.visibility import check_message_visible

SERVED_MEDIA = re.compile(r"^/api/messages/(?P<message_id>[^/]+)/media/(?P<index>\d{1,4})$")
"""A kept item's url (`omnichannel_core.module.media_url`): its message and place."""


class ChannelInboxesService:
    """:class:`omnichannel_core.services.ChannelInboxes`: behind
    ``context.channel_inbox()``, which hands each channel its own.

    :param live: the events module's :class:`LiveEvents` (LookupError when it is not
        loaded, which ``follow`` answers as ChannelUnavailable), which ``follow`` draws on.
    """

    def __init__(self, inbox: Inbox, live: Callable[[], LiveEvents] | None = None) -> None:
        self._inbox = inbox
        self._live = live

    def of(self, channel: str) -> ChannelInboxService:
        return ChannelInboxService(channel, self._inbox, self._live)


class ChannelInboxService:
    """:class:`omnichannel_core.channel.ChannelInbox` for the channel ``channel``."""

    def __init__(
        self, channel: str, inbox: Inbox, live: Callable[[], LiveEvents] | None = None
    ) -> None:
        self.channel = channel
        self._inbox = inbox
        self._store = inbox.store
        self._live = live

    async def receive(self, result: WebhookResult) -> tuple[Received, ...]:
        if not isinstance(result, WebhookResult):
            raise ChannelFailed(
                f"channel {self.channel!r} gave a {type(result).__name__}, not a WebhookResult",
                channel=self.channel,
            )
        self._inbox.check_watermarks(self.channel, "receive", result)
        ingested = await self._inbox.ingest(self.channel, result.messages)
        await self._inbox.apply_statuses(self.channel, result.statuses)
        await self._inbox.apply_watermarks(self.channel, result.watermarks)
        return tuple(map(received, result.messages, ingested))

    @contextlib.asynccontextmanager
    async def follow(
        self,
        conversation_ids: Collection[str],
        after: str | None = None,
        max_behind: timedelta | None = None,
    ) -> AsyncIterator[ConversationFeed]:
        if isinstance(conversation_ids, str):  # one id, not its characters
            raise TypeError("follow takes a collection of conversation ids, not a string")
        wanted = frozenset(conversation_ids)
        for conversation_id in wanted:
            await self.get_conversation(conversation_id)  # NotFound: another channel's
        try:
            if self._live is None:
                raise LookupError("no LiveEvents given")
            live = self._live()
        except LookupError:  # the events module is disabled, or failed to load
            raise ChannelUnavailable(
                "live events are off: the events module is not loaded", channel=self.channel
            ) from None
        async with live.follow(wanted, after, max_behind) as feed:
            yield feed

    async def send(
        self,
        to: str,
        request: OutboundRequest,
        idempotency_key: str | None = None,
        *,
        display_name: str | None = None,
        reply_to: str | None = None,
        wait: float | None = None,
        new_conversation: bool = False,
        principal: Principal | None = None,
    ) -> tuple[Message, bool]:
        message, created = await self._inbox.send_to(
            self.channel,
            to,
            request,
            idempotency_key,
            display_name,
            reply_to=reply_to,
            new_conversation=new_conversation,
            principal=principal,
        )
        if created and wait:
            message = await self._inbox.outcome(message, wait)
        return message, created

    async def get_message(self, message_id: str) -> Message:
        message = await self._store.get_message(message_id)
        if message.channel != self.channel:
            raise NotFound(f"no {self.channel} message {message_id!r}", id=message_id)
        return message

    async def find_outbound(self, provider_message_id: str) -> Message | None:
        return await self._store.find_by_provider_id(
            self.channel, Direction.OUTBOUND, provider_message_id
        )

    async def get_conversation(self, conversation_id: str) -> Conversation:
        conversation = await self._store.get_conversation(conversation_id)
        if conversation.channel != self.channel:
            raise NotFound(
                f"no {self.channel} conversation {conversation_id!r}", id=conversation_id
            )
        return conversation

    async def find_conversation(self, address: str) -> Conversation | None:
        return await self._inbox.find_conversation(self.channel, address)

    async def fill_contact(self, conversation_id: str, attributes: Mapping[str, str]) -> None:
        conversation = await self.get_conversation(conversation_id)
        if attributes:  # one transaction: an agent's change meanwhile is never overwritten
            await self._store.add_contact_attributes(conversation.contact_id, attributes)

    async def typing(self, conversation_id: str) -> None:
        await self.get_conversation(conversation_id)  # NotFound: another channel's, or none
        await self._inbox.typing(conversation_id, TypingParty.CONTACT)

    async def list_messages(self, conversation_id: str, cursor: str | None, limit: int) -> Page:
        await self.get_conversation(conversation_id)  # NotFound: another channel's, or none
        return await self._store.list_messages(conversation_id, cursor, limit)

    async def read_media(self, media: Media) -> bytes:
        """The bytes of ``media``, an item of a message of this channel the server keeps
        (whose ``url`` is the route naming its message and place): NotFound for any
        other."""
        served = SERVED_MEDIA.match(media.url)
        if media.id is None or served is None:
            raise NotFound(f"media {media.url!r} is not kept by the server", url=media.url)
        message = await self.get_message(served["message_id"])  # NotFound: another channel's
        index = int(served["index"])
        if index >= len(message.media) or message.media[index].id != media.id:
            raise NotFound(f"message {message.id!r} holds no media {media.id!r}", id=media.id)
        keeper = self._inbox.media_keeper()
        if keeper is None:
            raise NotFound("the media store is not loaded", id=media.id)
        return await keeper.read(media.id)

    async def check_visible(self, principal: Principal, message: Message) -> None:
        await check_message_visible(self._store, principal, message)


def received(inbound: InboundMessage, ingested: Ingested) -> Received:
    """What ``receive`` answers for ``inbound``, stored as ``ingested``: the refusals its
    stored message lists, read only when it came with media (or a channel's own list), so
    the usual message builds no model."""
    refused: tuple[RefusedMedia, ...] = ()
    if inbound.media or REFUSED in inbound.metadata:
        refused = RefusedMedia.listed_in(ingested.message.metadata)
    return Received(
        message_id=ingested.message_id,
        conversation_id=ingested.conversation_id,
        created=ingested.created,
        media_refused=refused,
    )

"""What a channel's own routes may do with the inbox (:class:`ChannelInbox`): store, read and
send on their own channel only. ``channel_routes`` is given one of these, never the inbox or
its store."""

from __future__ import annotations

from omnichannel_core.channel import OutboundRequest, WebhookResult
from omnichannel_core.module import ChannelFailed, Conversation, Message, NotFound, Principal
from omnichannel_core.modules.inbox.service import Inbox
from omnichannel_core.modules.inbox.visibility import check_message_visible


class ChannelInboxService:
    """:class:`omnichannel_core.channel.ChannelInbox` for the channel ``channel``."""

    def __init__(self, channel: str, inbox: Inbox) -> None:
        self.channel = channel
        self._inbox = inbox
        self._store = inbox.store

    async def receive(self, result: WebhookResult) -> None:
        if not isinstance(result, WebhookResult):
            raise ChannelFailed(
                f"channel {self.channel!r} gave a {type(result).__name__}, not a WebhookResult",
                channel=self.channel,
            )
        self._inbox.check_watermarks(self.channel, "receive", result)
        await self._inbox.ingest(self.channel, result.messages)
        await self._inbox.apply_statuses(self.channel, result.statuses)
        await self._inbox.apply_watermarks(self.channel, result.watermarks)

    async def send(
        self,
        to: str,
        request: OutboundRequest,
        idempotency_key: str | None = None,
        *,
        display_name: str | None = None,
        reply_to: str | None = None,
        wait: float | None = None,
    ) -> tuple[Message, bool]:
        message, created = await self._inbox.send_to(
            self.channel, to, request, idempotency_key, display_name, reply_to=reply_to
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
        return await self._store.find_outbound_by_provider_id(self.channel, provider_message_id)

    async def get_conversation(self, conversation_id: str) -> Conversation:
        conversation = await self._store.get_conversation(conversation_id)
        if conversation.channel != self.channel:
            raise NotFound(
                f"no {self.channel} conversation {conversation_id!r}", id=conversation_id
            )
        return conversation

    async def check_visible(self, principal: Principal, message: Message) -> None:
        await check_message_visible(self._store, principal, message)

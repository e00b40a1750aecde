"""The inbox service: what happens between a channel, the store and the API.

Inbound: a channel's ``receive`` result is stored (deduped, contact and conversation
upserted) before the provider is answered. Outbound: a message is stored queued first, then
the channel's ``send`` runs, then the provider's id and status are recorded.
"""

from __future__ import annotations

import asyncio

import structlog

from omnichannel_core.channel import (
    ChannelUnavailable,
    InboundMessage,
    OutboundMessage,
    OutboundRequest,
    SendFailed,
    SendOutcomeUnknown,
    SendResult,
    StatusUpdate,
    StatusWatermark,
    WebhookRequest,
    WebhookResponse,
    WebhookResult,
)
from omnichannel_core.module import (
    UNSET,
    ChannelFailed,
    Channels,
    Config,
    Conflict,
    Conversation,
    DeliveryFailed,
    DeliveryStatus,
    Direction,
    HookNotImplemented,
    Message,
    NotFound,
    OmnichannelError,
    RecipientOptedOut,
)
from omnichannel_core.modules.inbox.store import InboxStore, Ingested, StatusApplied

log = structlog.get_logger("omnichannel.inbox")


def failure_code(error: OmnichannelError) -> str:
    """The ``error_code`` a message that could not be sent keeps: the provider's code when
    it gave one, else the kind of failure, named as the API's error answer names it
    (``omnichannel_core.web.errors``): ``send_rejected`` or ``provider_unavailable`` (the
    provider refused, or could not be reached), ``channel_unavailable`` (e.g. the channel
    is not configured), ``channel_failed`` (the channel crashed or answered nonsense)."""
    if isinstance(error, SendFailed):
        if error.code:
            return str(error.code)
        return "provider_unavailable" if error.retryable else "send_rejected"
    if isinstance(error, ChannelUnavailable):
        return "channel_unavailable"
    if isinstance(error, ChannelFailed):
        return "channel_failed"
    return "send_failed"


class Inbox:
    """What happens between the channels, the store and the API.

    :param channels: the channels (``context.channels``): their hooks are called here.
    """

    def __init__(self, store: InboxStore, channels: Channels, config: Config) -> None:
        self.store = store
        self.channels = channels
        self.config = config

    # inbound -------------------------------------------------------------------------

    async def _channel_result(
        self, channel: str, hook: str, request: WebhookRequest
    ) -> WebhookResult:
        try:
            result = await self.channels.call(channel, hook, request=request, config=self.config)
        except OmnichannelError:
            raise
        except Exception as error:  # a plugin bug (or a malformed InboundMessage) is a 502
            log.exception("channel_hook_crashed", channel=channel, hook=hook)
            raise ChannelFailed(
                f"channel {channel!r} {hook} failed: {type(error).__name__}", channel=channel
            ) from None
        if not isinstance(result, WebhookResult):
            raise ChannelFailed(
                f"channel {channel!r} {hook} returned {type(result).__name__}, not WebhookResult",
                channel=channel,
            )
        self.check_watermarks(channel, hook, result)
        return result

    @staticmethod
    def check_watermarks(channel: str, hook: str, result: WebhookResult) -> None:
        """ChannelFailed for a watermark that is not a StatusWatermark: checked before
        anything of the result is stored."""
        for watermark in result.watermarks:
            if not isinstance(watermark, StatusWatermark):
                raise ChannelFailed(
                    f"channel {channel!r} {hook} returned a {type(watermark).__name__}"
                    " watermark, not StatusWatermark",
                    channel=channel,
                )

    async def receive_webhook(self, channel: str, request: WebhookRequest) -> WebhookResponse:
        result = await self._channel_result(channel, "receive", request)
        await self.ingest(channel, result.messages)
        await self.apply_statuses(channel, result.statuses)
        await self.apply_watermarks(channel, result.watermarks)
        return result.response

    async def receive_status(self, channel: str, request: WebhookRequest) -> WebhookResponse:
        result = await self._channel_result(channel, "status", request)
        await self.apply_statuses(channel, result.statuses)
        await self.apply_watermarks(channel, result.watermarks)
        await self.ingest(channel, result.messages)
        return result.response

    async def ingest(self, channel: str, messages: tuple[InboundMessage, ...]) -> list[Ingested]:
        """Store inbound messages (one commit for a batch, in order); returns once durable.

        The new messages' ids go into the request's summary log line.
        """
        if not messages:
            return []
        if len(messages) == 1:  # the usual webhook: no tasks to make
            ingested = [await self.store.ingest_inbound(channel, messages[0])]
        else:
            ingested = await asyncio.gather(
                *(self.store.ingest_inbound(channel, inbound) for inbound in messages)
            )
        stored = [item.message_id for item in ingested if item.created]
        structlog.contextvars.bind_contextvars(
            message_ids=stored, duplicates=len(ingested) - len(stored)
        )
        for item in ingested:
            log.debug(
                "message_received" if item.created else "message_duplicate_ignored",
                channel=channel,
                message_id=item.message_id,
                conversation_id=item.conversation_id,
            )
        return ingested

    async def apply_statuses(self, channel: str, statuses: tuple[StatusUpdate, ...]) -> None:
        for update in statuses:
            applied = await self._apply_by_message_id(channel, update)
            if applied is None:
                applied = await self.store.apply_status(channel, update)
            if applied.message is None:
                # Kept briefly: the callback may have beaten send's answer to the core. It is
                # applied when the provider id is recorded, or dropped after a while.
                log.info(
                    "status_parked_for_unknown_message",
                    channel=channel,
                    provider_message_id=update.provider_message_id,
                    status=update.status,
                )
            elif applied.changed:
                log.info(
                    "message_status_changed",
                    channel=channel,
                    message_id=applied.message.id,
                    status=applied.message.status,
                )

    async def apply_watermarks(
        self, channel: str, watermarks: tuple[StatusWatermark, ...]
    ) -> list[Message]:
        """Move forward every message each watermark covers (`Store.apply_watermark`), in
        order; returns the messages moved."""
        moved: list[Message] = []
        for watermark in watermarks:
            changed = await self.store.apply_watermark(
                channel, watermark.recipient, watermark.status, watermark.up_to
            )
            (log.info if changed else log.debug)(
                "watermark_applied",
                channel=channel,
                status=watermark.status,
                up_to=watermark.up_to.isoformat(),
                moved=len(changed),
            )
            moved += changed
        return moved

    async def _apply_by_message_id(
        self, channel: str, update: StatusUpdate
    ) -> StatusApplied | None:
        """Apply an update that names our message id to that message when its provider id was
        never recorded (the send's answer was lost): record the id, then move forward. None
        when the update does not name such a message of this channel."""
        if update.message_id is None:
            return None
        try:
            message = await self.store.get_message(update.message_id)
        except NotFound:
            return None
        if (
            message.channel != channel
            or message.direction is not Direction.OUTBOUND
            or message.provider_message_id is not None
        ):
            return None
        return await self.store.advance_message(
            message.id,
            update.status,
            provider_message_id=update.provider_message_id,
            error_code=update.error_code,
            error_message=update.error_message,
        )

    # outbound ------------------------------------------------------------------------

    async def reply(
        self,
        conversation_id: str,
        request: OutboundRequest,
        idempotency_key: str | None,
        expected_assignee: str | None = UNSET,
    ) -> tuple[Message, bool]:
        """Send ``request`` in a conversation; returns the message and whether it is new.
        With ``expected_assignee``, only while the conversation is assigned to that one
        (None: nobody), else Conflict and nothing stored."""
        conversation = await self.store.get_conversation(conversation_id)
        return await self._send(conversation, request, idempotency_key, expected_assignee)

    async def send_to(
        self,
        channel: str,
        to: str,
        request: OutboundRequest,
        idempotency_key: str | None,
        display_name: str | None = None,
        reply_to: str | None = None,
    ) -> tuple[Message, bool]:
        """Send to an address on a channel, opening the contact and conversation if new.

        ``to`` is the contact's identity on the channel; ``reply_to``, when given, is the
        address the message goes to (e.g. ``whatsapp:+1555...`` for the contact ``+1555...``).
        """
        self._require_send(channel)  # before anything is written
        if idempotency_key is not None:
            # A replay is answered before the recipient is looked up, so a key reused for
            # another address is refused without creating that address's contact.
            stored = await self.store.find_by_idempotency_key(idempotency_key)
            if stored is not None:
                conversation = await self.store.get_conversation(stored.conversation_id)
                same_recipient = conversation.channel == channel and conversation.address == (
                    reply_to or to
                )
                return self._replay(stored, request, same_recipient), False
        _, conversation = await self.store.resolve_recipient(
            channel, to, display_name, reply_to=reply_to
        )
        return await self._send(conversation, request, idempotency_key)

    def _require_send(self, channel: str) -> None:
        if not self.channels.loaded(channel):
            raise ChannelUnavailable(
                f"channel {channel!r} is not loaded (uninstalled, disabled or failed)",
                channel=channel,
            )
        if not self.channels.implements(channel, "send"):
            raise HookNotImplemented(channel, "send")

    async def _send(
        self,
        conversation: Conversation,
        request: OutboundRequest,
        idempotency_key: str | None,
        expected_assignee: str | None = UNSET,
    ) -> tuple[Message, bool]:
        self._require_send(conversation.channel)
        contact = await self.store.get_contact(conversation.contact_id)
        if conversation.channel in contact.opted_out:
            raise RecipientOptedOut(
                f"the contact opted out of messages on {conversation.channel!r}",
                channel=conversation.channel,
                contact_id=contact.id,
            )
        message, created = await self.store.create_outbound(
            conversation.id,
            request.text,
            request.media,
            request.metadata,
            idempotency_key,
            expected_assignee=expected_assignee,
        )
        if not created:
            same_recipient = message.conversation_id == conversation.id
            return self._replay(message, request, same_recipient), False
        return await self._deliver(message, conversation), True

    @staticmethod
    def _replay(stored: Message, request: OutboundRequest, same_recipient: bool) -> Message:
        """The stored message for a repeated Idempotency-Key, if the request is the same one;
        otherwise a Conflict: the key was used for a different message."""
        same_request = (
            stored.text == request.text
            and stored.media == request.media
            and stored.metadata == request.metadata
        )
        if not (same_recipient and same_request):
            # The message is named only in its own conversation, which the caller may see;
            # keys are shared, and another conversation's message is none of theirs.
            named = {"message_id": stored.id} if same_recipient else {}
            raise Conflict("Idempotency-Key was already used for a different message", **named)
        return stored

    async def _deliver(self, message: Message, conversation: Conversation) -> Message:
        outbound = OutboundMessage(
            id=message.id,
            conversation_id=conversation.id,
            to=conversation.address,
            text=message.text,
            media=message.media,
            metadata=message.metadata,
            last_inbound_at=conversation.last_inbound_at,
        )
        channel = conversation.channel
        try:
            result = await self.channels.call(channel, "send", message=outbound, config=self.config)
            if not isinstance(result, SendResult):
                raise ChannelFailed(
                    f"channel {channel!r} send returned {type(result).__name__}, not SendResult",
                    channel=channel,
                )
        except SendOutcomeUnknown as error:
            applied = await self.store.advance_message(message.id, DeliveryStatus.SENDING)
            assert applied.message is not None
            log.warning("message_send_outcome_unknown", channel=channel, message_id=message.id)
            raise DeliveryFailed(applied.message, error) from None
        except (SendFailed, ChannelUnavailable, ChannelFailed) as error:
            await self._fail(message, error)
        except Exception as error:  # a plugin bug must not lose the stored message's state
            log.exception("channel_send_crashed", channel=channel, message_id=message.id)
            await self._fail(
                message,
                ChannelFailed(
                    f"channel {channel!r} failed: {type(error).__name__}", channel=channel
                ),
            )
        applied = await self.store.advance_message(
            message.id, result.status, provider_message_id=result.provider_message_id
        )
        assert applied.message is not None
        if applied.provider_id_conflict:
            log.warning(
                "provider_id_already_used",
                channel=channel,
                message_id=message.id,
                provider_message_id=result.provider_message_id,
            )
        log.info(
            "message_sent", channel=channel, message_id=message.id, status=applied.message.status
        )
        return applied.message

    async def _fail(self, message: Message, error: OmnichannelError) -> None:
        code = failure_code(error)
        applied = await self.store.advance_message(
            message.id, DeliveryStatus.FAILED, error_code=code, error_message=error.message
        )
        assert applied.message is not None
        log.warning(
            "message_send_failed",
            channel=message.channel,
            message_id=message.id,
            error_code=code,
            reason=error.message,  # the core's and the channels' messages hold no secret
        )
        raise DeliveryFailed(applied.message, error)

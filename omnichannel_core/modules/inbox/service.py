"""The inbox service: what happens between a channel, the store and the API.

Inbound: a channel's ``receive`` result is stored (deduped, contact and conversation
upserted) before the provider is answered. Outbound: a message is stored queued with its
outbox entry, in one transaction, and the API answers; the outbox's delivery job
(`omnichannel_core.modules.inbox.delivery`) sends it. A caller who asked to wait
(``Prefer: wait``) waits here for the first attempt's outcome. Typing signals, a
contact's (through its channel) and a user's (through the API), are throttled here
(`omnichannel_core.modules.inbox.typing`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

import structlog

from omnichannel_core.channel import (
    ChannelUnavailable,
    InboundMessage,
    OutboundRequest,
    StatusUpdate,
    StatusWatermark,
    WebhookRequest,
    WebhookResponse,
    WebhookResult,
)
from omnichannel_core.module import (
    UNSET,
    AuditEntry,
    ChannelFailed,
    Channels,
    Config,
    Conflict,
    Conversation,
    DeliveryFailed,
    DeliveryStatus,
    Direction,
    HookNotImplemented,
    MediaKeeper,
    Message,
    News,
    NotFound,
    OmnichannelError,
    Principal,
    RecipientOptedOut,
    author_of,
    utcnow,
)
from omnichannel_core.modules.inbox.events import TypingParty
from omnichannel_core.modules.inbox.failures import failure_of
from omnichannel_core.modules.inbox.media import (
    comparable,
    described,
    expect_fetches,
    has_media,
    keep_attachments,
    record_holder,
)
from omnichannel_core.modules.inbox.store import InboxStore, Ingested, StatusApplied
from omnichannel_core.modules.inbox.store.outbox import REPLY, ChannelBacklog
from omnichannel_core.modules.inbox.typing import SHOWN_SECONDS, TypingThrottle

log = structlog.get_logger("omnichannel.inbox")


class Inbox:
    """What happens between the channels, the store and the API.

    :param channels: the channels (``context.channels``): their hooks are called here.
    :param media: finds the media store (``context.service(MediaKeeper)``), once every
        module offered its services; LookupError when none does.
    """

    def __init__(
        self,
        store: InboxStore,
        channels: Channels,
        config: Config,
        news: News,
        media: Callable[[], MediaKeeper] | None = None,
    ) -> None:
        self.store = store
        self.channels = channels
        self.config = config
        self.news = news
        self._media = media
        self._typing = TypingThrottle()

    def media_keeper(self) -> MediaKeeper | None:
        """The media store; None when no module offers one (the media module disabled)."""
        if self._media is None:
            return None
        try:
            return self._media()
        except LookupError:
            return None

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

        The new messages' ids go into the request's summary log line. Media first
        (`omnichannel_core.modules.inbox.media`): attachments are kept before the messages
        are stored, and the provider's media queued for the media job after.
        """
        if not messages:
            return []
        with_media = has_media(messages)
        keeper = self.media_keeper() if with_media else None
        if with_media:
            messages = tuple(
                await asyncio.gather(
                    *(
                        keep_attachments(keeper, self.store, channel, inbound)
                        for inbound in messages
                    )
                )
            )
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
        if with_media:
            await expect_fetches(keeper, channel, messages, ingested)
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
            settle=True,  # the provider has it, whatever status it reports: no longer in doubt
        )

    # outbound ------------------------------------------------------------------------

    async def reply(
        self,
        conversation_id: str,
        request: OutboundRequest,
        idempotency_key: str | None,
        expected_assignee: str | None = UNSET,
        principal: Principal | None = None,
    ) -> tuple[Message, bool]:
        """Send ``request`` in a conversation; returns the message and whether it is new.
        With ``expected_assignee``, only while the conversation is assigned to that one
        (None: nobody), else Conflict and nothing stored. ``principal``: the caller, who
        must be able to read each item named by ``media_id`` (none without one)."""
        conversation = await self.store.get_conversation(conversation_id)
        return await self._send(
            conversation, request, idempotency_key, expected_assignee, principal=principal
        )

    async def send_to(
        self,
        channel: str,
        to: str,
        request: OutboundRequest,
        idempotency_key: str | None,
        display_name: str | None = None,
        reply_to: str | None = None,
        priority: int = REPLY,
        new_conversation: bool = False,
        principal: Principal | None = None,
    ) -> tuple[Message, bool]:
        """Send to an address on a channel, opening the contact and conversation if new;
        ``priority`` BULK for a mass send (it yields to replies).

        ``to`` is the contact's identity on the channel; ``reply_to``, when given, is the
        address the message goes to (e.g. ``whatsapp:+1555...`` for the contact ``+1555...``).
        ``new_conversation`` opens a new conversation with the contact even when it has one
        (an agent's new email thread); otherwise the message goes into the contact's most
        recently created conversation on the channel.
        """
        self.require_send(channel)  # before anything is written
        to = await self.channel_address(channel, to)
        reply_to = await self.channel_address(channel, reply_to) if reply_to is not None else None
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
            channel, to, display_name, reply_to=reply_to, new_conversation=new_conversation
        )
        return await self._send(
            conversation, request, idempotency_key, priority=priority, principal=principal
        )

    async def find_conversation(self, channel: str, address: str) -> Conversation | None:
        """The conversation a send to ``address`` on ``channel`` would go into (without
        ``new_conversation``), the address taken in the channel's form as a send takes it;
        None when there is none yet. Writes nothing."""
        normal = await self.channel_address(channel, address)
        return await self.store.find_conversation(channel, normal)

    async def channel_address(self, channel: str, address: str) -> str:
        """The channel's canonical form of ``address`` (its ``normalize_address``), or
        ``address`` for a channel without one; InvalidInput for one it cannot send to."""
        if not self.channels.implements(channel, "normalize_address"):
            return address
        normal = await self.channels.call(
            channel, "normalize_address", address=address, config=self.config
        )
        return address if normal is None else str(normal)

    def require_send(self, channel: str) -> None:
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
        priority: int = REPLY,
        principal: Principal | None = None,
    ) -> tuple[Message, bool]:
        self.require_send(conversation.channel)
        contact = await self.store.get_contact(conversation.contact_id)
        if conversation.channel in contact.opted_out:
            raise RecipientOptedOut(
                f"the contact opted out of messages on {conversation.channel!r}",
                channel=conversation.channel,
                contact_id=contact.id,
            )
        keeper = self.media_keeper()
        request = await described(keeper, request, principal)  # media ids: 400 if not theirs
        message, created = await self.store.create_outbound(
            conversation.id,
            request.text,
            request.media,
            request.metadata,
            idempotency_key,
            expected_assignee=expected_assignee,
            send_at=request.send_at,
            priority=priority,
            author=request.author or author_of(principal, conversation.channel),
        )
        await record_holder(keeper, message)  # who sees it may attach its media; twice: no-op
        if not created:
            same_recipient = message.conversation_id == conversation.id
            return self._replay(message, request, same_recipient), False
        log.debug("message_queued", channel=conversation.channel, message_id=message.id)
        return message, True

    @staticmethod
    def _replay(stored: Message, request: OutboundRequest, same_recipient: bool) -> Message:
        """The stored message for a repeated Idempotency-Key, if the request is the same one;
        otherwise a Conflict: the key was used for a different message."""
        same_request = (
            stored.text == request.text
            and comparable(stored.media) == comparable(request.media)
            and stored.metadata == request.metadata
            and stored.send_at == request.send_at
        )
        if not (same_recipient and same_request):
            # The message is named only in its own conversation, which the caller may see;
            # keys are shared, and another conversation's message is none of theirs.
            named = {"message_id": stored.id} if same_recipient else {}
            raise Conflict("Idempotency-Key was already used for a different message", **named)
        return stored

    # the outcome, for a caller who waits (Prefer: wait) -------------------------------

    async def outcome(self, message: Message, wait: float) -> Message:
        """Wait up to ``wait`` seconds for the outbox (a job runner) to settle ``message``;
        returns it once the provider took it, or as it is when the time is up and no attempt
        failed (still queued: scheduled, or waiting for its pace). Raises DeliveryFailed with
        the stored message when it failed, went in doubt, or is still being retried when
        the time is up."""
        deadline = time.monotonic() + wait
        with self.news.listening():
            while True:
                signal = self.news.signal()  # before the read: news during it is not missed
                current = await self.store.get_message(message.id)
                remaining = deadline - time.monotonic()
                if settled(current) or remaining <= 0:
                    break
                await self.news.wait(signal, min(remaining, OUTCOME_POLL_SECONDS))
        if current.in_doubt or current.status.is_terminal or retrying(current):
            raise DeliveryFailed(current, failure_of(current))
        return current

    # typing --------------------------------------------------------------------------

    async def typing(
        self, conversation_id: str, by: TypingParty, user_id: str | None = None
    ) -> None:
        """Log that ``by`` (the contact, or the user ``user_id``) is typing in the
        conversation, to be shown for ``SHOWN_SECONDS``: at most once per party and
        conversation every ``THROTTLE_SECONDS`` in this process, a call within that returning
        having written nothing. NotFound for an unknown conversation (when it writes)."""
        key = (conversation_id, str(by), user_id)
        if not self._typing.admit(key):
            return
        until = utcnow() + timedelta(seconds=SHOWN_SECONDS)
        try:
            await self.store.log_typing(conversation_id, by, user_id, until)
        except BaseException:
            self._typing.forget(key)  # not logged: the next signal may be
            raise

    # operators' controls -------------------------------------------------------------

    async def retry(self, message_id: str, audit: AuditEntry) -> Message:
        """Queue a failed message again (same id; audited); RecipientOptedOut when its
        contact has opted out on its channel since."""
        message = await self.store.get_message(message_id)
        contact = await self.store.get_contact(message.contact_id)
        if message.channel in contact.opted_out:
            raise RecipientOptedOut(
                f"the contact opted out of messages on {message.channel!r}",
                channel=message.channel,
                contact_id=contact.id,
            )
        message = await self.store.retry_failed(message_id, audit, utcnow())
        log.info("message_retry_queued", channel=message.channel, message_id=message.id)
        return message

    async def cancel(self, message_id: str, audit: AuditEntry) -> Message:
        """Cancel a message not yet being sent (a scheduled one; audited)."""
        message = await self.store.cancel_outbound(message_id, audit)
        log.info("message_cancelled", channel=message.channel, message_id=message.id)
        return message

    async def backlog(self) -> dict[str, ChannelBacklog]:
        return await self.store.outbox_backlog(utcnow())


OUTCOME_POLL_SECONDS = 1.0
"""The longest a caller who waits goes without reading its message again (the bus rings
sooner, or polls: `omnichannel_core.bus`)."""


def settled(message: Message) -> bool:
    """True once the outbox is done with ``message`` for a caller who waits: the provider
    took it (its id, or a status past ``sending``), it ended (failed...), or it is in doubt.
    A message retried after a failure is not: a later attempt may still send it."""
    return (
        message.provider_message_id is not None
        or message.status.rank >= DeliveryStatus.SENT.rank
        or message.in_doubt
    )


def retrying(message: Message) -> bool:
    """Queued again after a failed attempt, with its error."""
    return message.status is DeliveryStatus.QUEUED and message.error_code is not None

"""The subscriber ``settings.away``: a customer who writes while the business is closed is
sent the channel's away message, once per closed period, through the outbox
(docs/settings.md, "Away messages").

An away message is a robot's answer to whoever writes, so it must not become a way to send
mail to anyone: it goes only to an address the channel reaches the writer at (one of its
reaches applied to the writer's own identity: never to a Reply-To a mail merely names);
once per channel, customer and closed period, however many conversations they open; and at
most :data:`AWAY_PER_HOUR` a channel each clock hour. The last two are kept by the settings
store's away ledger (:meth:`SettingsStore.claim_away`), one transaction per claim, exact
across runners and servers. "Once per closed period" compares when the customer was last
sent one with when the business last closed before their message, so an admin changing the
hours at night never makes a second one for the same night (unless the new hours put an
opening between the two).

A claim names the customer's message: a redelivered event finds its own claim and sends
again under the key ``bulk:away:{message id}``, which the outbox takes once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from omnichannel_core.module import (
    Author,
    AutomatedReplies,
    BulkSends,
    ChannelFailed,
    ChannelUnavailable,
    Event,
    HookNotImplemented,
    InboxReader,
    Message,
    NotFound,
    OutboundRequest,
    RecipientOptedOut,
    Subscriber,
    utcnow,
)
from omnichannel_core.modules.settings.refresh import Refresher
from omnichannel_core.modules.settings.store import AwayClaim, AwayVerdict, SettingsStore

log = structlog.get_logger("omnichannel.settings")

MESSAGE_CREATED = "message.created"
AUTHOR = Author(kind="automation", id="away_message", name="away message")
AWAY_PER_HOUR = 60
"""Away messages a channel sends per clock hour (UTC) at most: far above what customers
writing at night ask for, and a bound on what forged messages can make it send."""


def away_key(message: Message) -> str:
    """The idempotency key of the away message answering ``message``."""
    return f"bulk:away:{message.id}"


class AwayMessages:
    """Sends the away messages.

    :param settings: this process's settings (each event reads them as stored now).
    :param store: the settings store, whose away ledger keeps the limits.
    :param inbox: the inbox's reader (the message, its conversation and contact).
    :param replies: the inbox's automated replies (through the outbox, once per key).
    :param reaches: the inbox's mass sends, for the ways each channel reaches a contact.
    :param clock: what time it is (a test's own).
    :param per_hour: :data:`AWAY_PER_HOUR` (a test's own).
    """

    def __init__(
        self,
        settings: Refresher,
        store: SettingsStore,
        inbox: Callable[[], InboxReader],
        replies: Callable[[], AutomatedReplies],
        reaches: Callable[[], BulkSends],
        clock: Callable[[], datetime] = utcnow,
        per_hour: int = AWAY_PER_HOUR,
    ) -> None:
        self.settings = settings
        self.store = store
        self._inbox = inbox
        self._replies = replies
        self._reaches = reaches
        self._clock = clock
        self.per_hour = per_hour

    def subscriber(self) -> Subscriber:
        return Subscriber(
            "settings.away",
            self.handle,
            types={MESSAGE_CREATED},
            description="sends the channel's away message to a customer who writes while"
            " the business is closed",
        )

    async def handle(self, event: Event) -> None:
        if event.data.get("direction") != "inbound" or event.conversation_id is None:
            return
        settings = await self.settings.fresh()
        away = settings.away_message(str(event.data.get("channel")))
        if away is None or not away.enabled:
            return
        try:
            message = await self._inbox().get_message(event.record_id)
        except NotFound:  # erased since
            return
        if message.metadata.get("automated"):  # an auto-reply: answering it could loop
            return
        business = settings.business()
        written = message.created_at
        if business.is_open(written):
            return
        closed_since = business.last_closing(written)
        now = self._clock()
        if business.is_open(now) or business.last_closing(now) != closed_since:
            # handled late (no runner ran meanwhile): the business has opened since, and
            # an agent may be answering; an away message now would say the wrong thing
            log.info("away_message_too_late", message_id=message.id)
            return
        if not await self._reaches_the_writer(message):
            return
        claim = AwayClaim(
            message.channel, message.contact_id, message.id, closed_since, now, self.per_hour
        )
        verdict = await self.store.claim_away(claim)
        if verdict is AwayVerdict.CAPPED:
            log.warning(
                "away_message_capped",
                channel=message.channel,
                message_id=message.id,
                per_hour=self.per_hour,
            )
            return
        if verdict is AwayVerdict.ANSWERED:
            return
        request = OutboundRequest(text=away.text, metadata={"automated": True}, author=AUTHOR)
        try:
            sent, new = await self._replies().reply(
                message.conversation_id, request, away_key(message)
            )
        except (RecipientOptedOut, NotFound):
            return
        if new:
            log.info(
                "away_message_queued",
                conversation_id=message.conversation_id,
                message_id=sent.id,
                channel=message.channel,
            )

    async def _reaches_the_writer(self, message: Message) -> bool:
        """Whether an answer in ``message``'s conversation goes to the one who wrote it: the
        conversation is the writer's own, and its address is one the channel reaches the
        writer at (a reach's prefix and the writer's identity on the channel: ``+1555...``,
        or ``whatsapp:+1555...`` on Twilio). An email whose Reply-To names another address
        (anyone can write one) answers there: no away message. Nor to a customer who opted
        out on the channel."""
        try:
            conversation = await self._inbox().get_conversation(message.conversation_id)
            contact = await self._inbox().get_contact(message.contact_id)
            reaches = await self._reaches().reaches(message.channel)
        except (NotFound, ChannelUnavailable, ChannelFailed, HookNotImplemented):
            return False
        if message.channel in contact.opted_out:
            return False
        addresses = {
            reach.prefix + identity.address
            for identity in contact.identities
            if identity.channel == message.channel
            for reach in reaches
        }
        if conversation.contact_id != contact.id or conversation.address not in addresses:
            log.info(
                "away_message_not_to_the_writer",
                message_id=message.id,
                conversation_id=conversation.id,
                detail="the conversation answers another address than the writer's own",
            )
            return False
        return True

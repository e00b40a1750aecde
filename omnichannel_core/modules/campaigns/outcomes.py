"""The subscriber ``campaigns.outcomes``: what became of each recipient's message, read from
the event log (docs/campaigns.md, "Analytics"). Every step is safe to repeat: an outcome
mirrors the message as it is now, and a time once stamped stays."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from omnichannel_core.module import (
    ContactBook,
    Event,
    InboxReader,
    Message,
    NotFound,
    Subscriber,
)
from omnichannel_core.modules.campaigns.records import Campaign
from omnichannel_core.modules.campaigns.store import CampaignStore

MESSAGE_EVENTS = frozenset({"message.status_changed", "message.updated", "message.attempt_failed"})
PROVIDER_HOLDS = frozenset({"queued", "sending"})
"""Statuses in which a message the provider took (it has its id) counts as sent."""


def outcome_status(message: Message) -> str:
    """The status a recipient's counts take from their message: ``sent`` once the provider
    took it (it has the provider's id), though Twilio answers ``queued``."""
    status = message.status.value
    if message.provider_message_id is not None and status in PROVIDER_HOLDS:
        return "sent"
    return status


MESSAGE_CREATED = "message.created"
CONTACT_UPDATED = "contact.updated"
EVENTS = MESSAGE_EVENTS | {MESSAGE_CREATED, CONTACT_UPDATED}


class Outcomes:
    """Follows campaign messages to their recipients' counts."""

    def __init__(
        self,
        store: CampaignStore,
        inbox: Callable[[], InboxReader],
        contacts: Callable[[], ContactBook],
    ) -> None:
        self.store = store
        self._inbox = inbox
        self._contacts = contacts
        self._campaigns: dict[str, Campaign] = {}

    def subscriber(self, declared: set[str]) -> Subscriber:
        return Subscriber(
            "campaigns.outcomes",
            self.handle,
            types=EVENTS & declared,
            description="campaign recipients' delivery statuses, replies and opt-outs",
        )

    async def handle(self, event: Event) -> None:
        if event.type in MESSAGE_EVENTS:
            await self.message_changed(event)
        elif event.type == MESSAGE_CREATED:
            if event.data.get("direction") == "inbound":
                await self.replied(event)
            else:  # a campaign's message, queued: followed from here on
                await self.message_changed(event)
        elif event.type == CONTACT_UPDATED and "opted_out" in (event.data.get("fields") or ()):
            await self.opted_out(event)

    async def message_changed(self, event: Event) -> None:
        """Mirror a campaign's message on its recipient, found through the message's
        ``metadata.campaign`` (the runner may not have noted the message yet: it is noted
        after the outbox took it, and a runner killed between the two notes it later)."""
        try:
            message = await self._inbox().get_message(event.record_id)
        except NotFound:
            return
        campaign = message.metadata.get("campaign")
        if not isinstance(campaign, dict) or not isinstance(campaign.get("id"), str):
            return  # not a campaign's
        await self.store.record_outcome(
            campaign["id"],
            message.contact_id,
            outcome_status(message),
            message.in_doubt,
            message.error_code,
            event.at,
        )

    async def replied(self, event: Event) -> None:
        contact_id, channel = event.data.get("contact_id"), event.data.get("channel")
        if not isinstance(contact_id, str) or not isinstance(channel, str):
            return
        for recipient in await self.store.of_contact(contact_id, channel):
            sent_at = recipient.sent_at or recipient.queued_at
            if recipient.replied_at is not None or sent_at is None:
                continue
            campaign = await self.campaign(recipient.campaign_id)
            if campaign is None:
                continue
            window = timedelta(hours=campaign.reply_window_hours)
            if sent_at <= event.at <= sent_at + window:
                await self.store.stamp(
                    recipient.campaign_id, recipient.contact_id, "replied_at", event.at
                )

    async def opted_out(self, event: Event) -> None:
        try:
            contact = await self._contacts().get_contact(event.record_id)
        except NotFound:
            return
        for channel in contact.opted_out:
            for recipient in await self.store.of_contact(contact.id, channel):
                queued_at = recipient.queued_at
                if recipient.opted_out_at is None and queued_at and queued_at <= event.at:
                    await self.store.stamp(
                        recipient.campaign_id, recipient.contact_id, "opted_out_at", event.at
                    )

    async def campaign(self, campaign_id: str) -> Campaign | None:
        if campaign_id not in self._campaigns:
            if len(self._campaigns) > 1000:
                self._campaigns.clear()
            try:
                self._campaigns[campaign_id] = await self.store.get(campaign_id)
            except NotFound:
                return None
        return self._campaigns[campaign_id]

"""The job ``campaigns.run``: starts scheduled campaigns (freezing their audience into
recipients) and feeds running ones to the outbox at their rate (docs/campaigns.md,
"Exactly once" and "Pacing").

Each recipient's message is queued with the key ``bulk:campaign:{id}:{contact_id}``: the outbox
stores one message per key, so a runner killed between queueing a message and noting it,
or two runners feeding the same campaign, queue it once. The outbox then sends it once.
The runner feeds only while the channel's outbox keeps up (:data:`BACKLOG_SECONDS` of
sends waiting at most): a provider's 429s, which slow the outbox's pace, slow the campaign
with it, and a pause stops it within that much.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import attrs
import structlog

from omnichannel_core.module import (
    Audiences,
    BulkSends,
    ChannelUnavailable,
    Conflict,
    InvalidInput,
    Job,
    JobControl,
    NotFound,
    OmnichannelError,
    Principal,
    Reach,
    RecipientOptedOut,
    cancel_and_wait,
    utcnow,
)
from omnichannel_core.modules.campaigns.compose import Composed, Deferred, decide
from omnichannel_core.modules.campaigns.records import (
    AudienceKind,
    Campaign,
    CampaignStatus,
    Counts,
    Recipient,
    RecipientState,
    SkipReason,
)
from omnichannel_core.modules.campaigns.store import CampaignStore

log = structlog.get_logger("omnichannel.campaigns")

TICK_SECONDS = 0.05
"""How often a runner with a running campaign feeds it."""
IDLE_SECONDS = 1.0
"""How often an idle runner looks for a campaign to start: a launch starts within it."""
BURST_SECONDS = 0.5
"""The most of its rate a campaign may make up at once after a slow round (a store's
latency): the outbox's own pace spreads what it is given."""
PARALLEL = 16
"""Recipients one runner sends to at once (each send is a few store round trips)."""
UNPACED_BATCH = 200
"""Recipients fed per tick when neither the campaign nor the channel has a rate."""
BACKLOG_SECONDS = 2.0
"""The runner holds back while the channel's outbox has more than this many seconds of the
campaign's rate waiting (at least :data:`MIN_BACKLOG` messages)."""
MIN_BACKLOG = 50
FREEZE_BATCH = 500
"""Recipients written per write while an audience is frozen."""
PROGRESS_SECONDS = 2.0
"""How often a campaign whose counts moved logs ``campaign.updated``: every 2 seconds, or
a second per :data:`PROGRESS_RECIPIENTS` recipients for a larger one (counting reads each
recipient on Firestore)."""
PROGRESS_RECIPIENTS = 5000
FINISHED_WATCH = timedelta(hours=24)
"""How long after it finished a campaign's counts are still watched (replies, receipts)."""
SWEEP_BATCH = 500


def idempotency_key(campaign_id: str, contact_id: str) -> str:
    """The outbox key of a recipient's message: one message per campaign and contact (keys
    starting ``bulk:`` are the server's: no API request may send one)."""
    return f"bulk:campaign:{campaign_id}:{contact_id}"


def sender_principal(campaign: Campaign) -> Principal:
    """Who a campaign's sends are made by: the campaign, which may attach the media its
    author attached (each was checked for them when they set it)."""
    return Principal(
        "system", f"campaign:{campaign.id}", campaign.name, frozenset({"media:read_all"})
    )


@attrs.define
class Bucket:
    """A campaign's pace in this runner: tokens earned at ``rate`` per second."""

    rate: float
    tokens: float = 1.0
    at: float = attrs.field(factory=time.monotonic)

    def take(self) -> int:
        """How many recipients may be fed now (tokens earned since the last take)."""
        now = time.monotonic()
        burst = max(1.0, self.rate * BURST_SECONDS)
        self.tokens = min(burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        whole = int(self.tokens)
        self.tokens -= whole
        return whole

    def idle(self) -> None:
        """Earn nothing while held back."""
        self.at = time.monotonic()


class CampaignRunner:
    """Starts and feeds campaigns; one runner at a time (a singleton job)."""

    def __init__(
        self,
        store: CampaignStore,
        bulk: Callable[[], BulkSends],
        audiences: Callable[[], Audiences],
    ) -> None:
        self.store = store
        self._bulk = bulk
        self._audiences = audiences
        self._swept_at = 0.0
        self._buckets: dict[str, Bucket] = {}
        self._backlogs: dict[str, tuple[float, int]] = {}
        self._counts: dict[str, Counts] = {}
        self._progress_at: dict[str, float] = {}

    def job(self) -> Job:
        return Job(
            "campaigns.run",
            self.run,
            description="start scheduled campaigns and feed running ones to the outbox",
        )

    async def run(self, control: JobControl) -> None:
        """Feed campaigns, and beside it (so that counting never slows sending) tell of
        their progress, until the runner stops."""
        watching = asyncio.create_task(self.watch(control))
        try:
            while not control.stopping:
                busy = False
                try:
                    busy = await self.step()
                except Exception:
                    log.exception("campaigns_step_failed")
                await control.sleep(TICK_SECONDS if busy else IDLE_SECONDS)
        finally:
            await cancel_and_wait(watching)

    async def watch(self, control: JobControl) -> None:
        while await control.sleep(PROGRESS_SECONDS):
            try:
                await self.progress()
            except Exception:
                log.exception("campaigns_progress_failed")

    async def step(self) -> bool:
        """One round: start what is due, feed what runs. Whether any campaign has more to
        send soon (the next round comes sooner)."""
        busy = False
        for campaign in await self.store.due(utcnow()):
            try:  # one campaign's trouble holds up no other
                busy = await self.advance(campaign) or busy
            except ChannelUnavailable as unavailable:  # uninstalled, or failed to load
                log.warning(
                    "campaign_channel_unavailable",
                    campaign_id=campaign.id,
                    reason=unavailable.message,
                )
            except Exception:
                log.exception("campaign_step_failed", campaign_id=campaign.id)
        await self.sweep()
        return busy

    async def advance(self, campaign: Campaign) -> bool:
        """Start the campaign if it is due, then feed it; whether it has more to send soon."""
        if campaign.status is CampaignStatus.SCHEDULED:
            started = await self.start(campaign)
            if started is None:
                return False
            campaign = started
        return await self.feed(campaign)

    async def sweep(self) -> None:
        """Skip what cancelled campaigns still had pending (``cancelled``). In the feeding
        task, so that no recipient being sent to is skipped under it."""
        if time.monotonic() - self._swept_at < PROGRESS_SECONDS:
            return
        self._swept_at = time.monotonic()
        for campaign in await self.store.recently_finished(utcnow() - FINISHED_WATCH):
            if campaign.status is CampaignStatus.CANCELLED:
                await self.store.skip_pending(campaign.id, SkipReason.CANCELLED, SWEEP_BATCH)

    # Starting: the audience frozen into recipients.

    async def start(self, campaign: Campaign) -> Campaign | None:
        """Freeze the audience and mark the campaign running; None when it was paused or
        cancelled meanwhile. Resumable: a freeze cut short is done again, adding nobody
        twice."""
        if not campaign.frozen:
            seq = await self.store.next_seq(campaign.id)
            batch: list[str] = []
            async for contact_id in self.audience(campaign):
                batch.append(contact_id)
                if len(batch) == FREEZE_BATCH:
                    await self.store.add_recipients(campaign.id, campaign.channel, batch, seq)
                    seq += len(batch)
                    batch = []
            if batch:
                await self.store.add_recipients(campaign.id, campaign.channel, batch, seq)
        try:
            started = await self.store.change(
                campaign.id,
                {"status": CampaignStatus.RUNNING, "frozen": True, "started_at": utcnow()},
                when={CampaignStatus.SCHEDULED},
            )
        except Conflict:
            return None
        log.info("campaign_started", campaign_id=campaign.id)
        return started

    async def audience(self, campaign: Campaign) -> AsyncIterator[str]:
        """The ids of the audience's contacts, each once."""
        audience = campaign.audience
        seen: set[str] = set()
        if audience.kind is AudienceKind.SEGMENT:
            assert audience.segment_id is not None
            try:
                members = await self._audiences().audience(audience.segment_id)
            except NotFound:
                log.warning("campaign_segment_gone", campaign_id=campaign.id)
                return
            async for contact in members:
                yield contact.id
            return
        if audience.kind is AudienceKind.CONTACTS:
            for contact_id in audience.contact_ids:
                if contact_id not in seen:
                    seen.add(contact_id)
                    yield contact_id
            return
        addresses = list(dict.fromkeys(audience.addresses))
        for start in range(0, len(addresses), PARALLEL):
            group = addresses[start : start + PARALLEL]
            found = await asyncio.gather(*(self.contact_at(campaign, address) for address in group))
            for each in found:
                if each is not None and each not in seen:
                    seen.add(each)
                    yield each

    async def contact_at(self, campaign: Campaign, address: str) -> str | None:
        """The contact whose identity on the channel is ``address``, made when there is
        none; None (logged) for an address the channel cannot send to."""
        try:
            return await self._bulk().contact_at(campaign.channel, address)
        except InvalidInput:  # the address is not logged: it is personal data
            log.warning("campaign_address_refused", campaign_id=campaign.id)
            return None

    # Feeding: recipients to the outbox, at the campaign's rate.

    async def feed(self, campaign: Campaign) -> bool:
        """Send to the recipients the campaign's pace allows now; whether it has more to
        send soon (False: done, or every recipient left waits for their quiet hours)."""
        bulk = self._bulk()
        reaches = await bulk.reaches(campaign.channel)
        reach = next((each for each in reaches if each.name == campaign.sender), None)
        if reach is None:
            log.warning("campaign_sender_gone", campaign_id=campaign.id, sender=campaign.sender)
            return False
        bucket = await self.bucket(campaign, reach)
        if await self.held_back(campaign.channel, bucket.rate):
            bucket.idle()
            return True
        allowed = bucket.take() if bucket.rate > 0 else UNPACED_BATCH
        if allowed == 0:
            return True
        now = utcnow()
        recipients = await self.store.pending(campaign.id, now, allowed)
        if not recipients:
            await self.finish(campaign)
            return False
        sent = 0
        for start in range(0, len(recipients), PARALLEL):
            group = recipients[start : start + PARALLEL]
            sends = (self.deliver(campaign, reach, each, now) for each in group)
            for outcome in await asyncio.gather(*sends, return_exceptions=True):
                if isinstance(outcome, ChannelUnavailable):
                    raise outcome
                if isinstance(outcome, BaseException):  # the store failed: they stay pending
                    log.error(
                        "campaign_delivery_failed",
                        campaign_id=campaign.id,
                        error=type(outcome).__name__,
                    )
                sent += outcome is True
        bucket.tokens += allowed - sent  # a skip or a wait sends nothing: the rate is sends'
        return True

    async def bucket(self, campaign: Campaign, reach: Reach) -> Bucket:
        rate = campaign.rate
        if rate is None:
            rate = await self._bulk().rate(campaign.channel, reach)
        bucket = self._buckets.get(campaign.id)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[campaign.id] = Bucket(rate)
        return bucket

    async def held_back(self, channel: str, rate: float) -> bool:
        """Whether the channel's outbox has more waiting than the campaign should add to
        (read at most every half second)."""
        cached = self._backlogs.get(channel)
        if cached is None or time.monotonic() - cached[0] > 0.5:
            cached = (time.monotonic(), await self._bulk().backlog(channel))
            self._backlogs[channel] = cached
        limit = max(MIN_BACKLOG, rate * BACKLOG_SECONDS) if rate > 0 else UNPACED_BATCH * 2
        return cached[1] >= limit

    async def deliver(
        self, campaign: Campaign, reach: Reach, recipient: Recipient, now: datetime
    ) -> bool:
        """Send to one recipient, or skip them, or put them off; noted on the recipient
        while they are still pending. Whether a message was queued for them."""
        bulk = self._bulk()
        try:
            target = await bulk.target(campaign.channel, reach, recipient.contact_id)
        except NotFound:
            await self.skip(recipient, SkipReason.CONTACT_GONE)
            return False
        try:
            decision = decide(campaign, target, now)
        except Exception:  # a bug making their message must not hold the others up
            log.exception("campaign_compose_failed", campaign_id=campaign.id)
            await self.skip(recipient, SkipReason.REFUSED)
            return False
        if isinstance(decision, Deferred):
            await self.store.settle(attrs.evolve(recipient, not_before=decision.until))
            return False
        if not isinstance(decision, Composed):
            await self.skip(recipient, decision.reason)
            return False
        key = idempotency_key(campaign.id, recipient.contact_id)
        try:
            message, _ = await bulk.send(target, decision.request, key, sender_principal(campaign))
        except RecipientOptedOut:
            await self.skip(recipient, SkipReason.OPTED_OUT)
            return False
        except ChannelUnavailable:
            raise  # the channel went: every recipient waits for it
        except OmnichannelError as refused:  # a media item gone, a conversation refused...
            log.warning(  # not its message: it may name the contact's address
                "campaign_send_refused", campaign_id=campaign.id, error=type(refused).__name__
            )
            await self.skip(recipient, SkipReason.REFUSED)
            return False
        queued = attrs.evolve(
            recipient,
            state=RecipientState.QUEUED,
            not_before=None,
            message_id=message.id,
            queued_at=now,
        )
        await self.store.settle(queued)  # its outcome is the subscriber's to follow
        return True

    async def skip(self, recipient: Recipient, reason: SkipReason) -> None:
        await self.store.settle(
            attrs.evolve(
                recipient, state=RecipientState.SKIPPED, skip_reason=reason, not_before=None
            )
        )

    async def finish(self, campaign: Campaign) -> None:
        """Mark the campaign completed once no recipient is pending."""
        if await self.store.has_pending(campaign.id):
            return  # some wait for their quiet hours to end
        try:
            await self.store.change(
                campaign.id,
                {"status": CampaignStatus.COMPLETED, "finished_at": utcnow()},
                when={CampaignStatus.RUNNING},
            )
        except Conflict:
            return
        self._buckets.pop(campaign.id, None)
        log.info("campaign_completed", campaign_id=campaign.id)

    # Progress: campaign.updated as the counts move; cancelled campaigns swept.

    async def progress(self) -> None:
        """Log ``campaign.updated`` for each campaign whose counts moved since it was last
        counted."""
        now = time.monotonic()
        watched = [
            *(await self.store.due(utcnow())),
            *(await self.store.recently_finished(utcnow() - FINISHED_WATCH)),
        ]
        for campaign in watched:
            if campaign.status is CampaignStatus.SCHEDULED:
                continue
            if now < self._progress_at.get(campaign.id, 0.0):
                continue
            counts = await self.store.counts(campaign.id)
            period = max(PROGRESS_SECONDS, counts.targeted / PROGRESS_RECIPIENTS)
            self._progress_at[campaign.id] = now + period
            if self._counts.get(campaign.id) not in (None, counts):
                await self.store.log_progress(campaign.id)
            self._counts[campaign.id] = counts

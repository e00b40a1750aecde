"""The outbox's delivery job, ``inbox.deliver``: it runs in every job runner and sends what
the outbox holds, once each, at each channel's pace.

Each pass it (1) looks at the entries whose runner died (their lease ended): one that the
runner had not begun sending is queued again, one it had begun goes in doubt; and it fails
those in doubt past their channel's deadline (``not_confirmed``); (2) takes the due
entries, replies first, up to ``OMNICHANNEL_SEND_CONCURRENCY`` at a time. For each one it
claims it with a lease (state ``sending``), waits for a slot of its pace (`pacer`), marks
it ``attempted`` in the store, calls the channel's ``send`` once and records how it went:

- the provider took it: the message records its provider id and status, and leaves the
  outbox;
- a retryable failure (429, 5xx, no connection): queued again after an exponential backoff
  with jitter (at least the provider's ``Retry-After``; a 429 also slows the pace), until the
  channel's ``retry_for`` has passed, then ``failed``;
- the outcome is unknown: in doubt, until a callback or echo settles it or
  ``confirm_within`` passes; sent again with the same id only where the channel is
  ``resend_safe``;
- any other failure: ``failed``, with the provider's code.

A message is never sent by two runners: claiming is conditional on the entry being queued.
The runner wakes on the event bus (a new message logs ``message.created``), at the next due
entry, and every few seconds at the latest. docs/delivery.md tells it all from the user's side.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import math
import random
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import attrs
import structlog

from omnichannel_core.channel import (
    ChannelUnavailable,
    OutboundMessage,
    SendFailed,
    SendOutcomeUnknown,
    SendResult,
)
from omnichannel_core.module import (
    ChannelFailed,
    ChannelInbox,
    ChannelInboxes,
    Channels,
    Config,
    Job,
    JobControl,
    JobReport,
    News,
    OmnichannelError,
    RecipientOptedOut,
    cancel_and_wait,
    utcnow,
)
from omnichannel_core.modules.inbox.failures import failure_of_error
from omnichannel_core.modules.inbox.pacer import Pacer
from omnichannel_core.modules.inbox.send_policies import ChannelPolicy, Pace, SendPolicies
from omnichannel_core.modules.inbox.store import InboxStore
from omnichannel_core.modules.inbox.store.outbox import Claimed, OutboxEntry

log = structlog.get_logger("omnichannel.outbox")

SWEEP_SECONDS = 1.0
"""How often a runner looks for dead runners' sends and lapsed doubts (nothing wakes it for
them: a lease or a doubt runs out without a write)."""
OVERDUE_SECONDS = 5.0
"""The longest a runner waits before it looks at the outbox again anyway."""
LONGEST_BACKOFF_SECONDS = 300.0
IDLE_SECONDS = 0.25
"""The pause when every due entry is already taken here (waiting for its pace)."""
PACE_AHEAD_SECONDS = 2.0
"""How many seconds of a pace's slots a runner's sends may wait for at once."""
SWEEP_BATCH = 200
STORE_REST_SECONDS = 5.0
STOPPED_MID_SEND = "the runner sending it stopped before the provider answered"
STOPPED_BEFORE_SEND = "the runner holding it stopped before it called the channel"


def ahead(pace: Pace) -> int:
    """How many sends may wait on ``pace`` at once in a runner: two seconds of its slots (at
    least 2); an unpaced one, any number."""
    if pace.rate <= 0:
        return sys.maxsize
    return max(2, math.ceil(pace.rate * PACE_AHEAD_SECONDS))


def backoff(attempts: int, first: float, retry_after: float | None = None) -> float:
    """Seconds before another attempt after ``attempts`` attempts: the first delay, doubled
    each time up to 5 minutes, with equal jitter (half fixed, half random), and never less
    than the provider's ``Retry-After`` (itself taken as 5 minutes at most)."""
    ceiling = min(LONGEST_BACKOFF_SECONDS, first * 2 ** min(max(0, attempts - 1), 30))
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not a secret
    return max(delay, min(retry_after or 0.0, LONGEST_BACKOFF_SECONDS))


class LeaseLost(Exception):
    """The runner no longer holds the message it was about to send: it is not sent."""


class MarkFailed(Exception):
    """The store failed to mark a send as started (its cause): it is not sent."""


def _attempting(claimed: Claimed) -> Claimed:
    """``claimed`` as ``begin_attempt`` left it in the store: attempted, one more attempt on
    the entry and on its message."""
    entry, message = claimed.entry, claimed.message
    return attrs.evolve(
        claimed,
        entry=attrs.evolve(entry, attempted=True, attempts=entry.attempts + 1),
        message=attrs.evolve(message, attempts=message.attempts + 1),
    )


class Delivery:
    """The job's work in one runner (``holder`` names it in leases).

    :param inboxes: each channel's :class:`ChannelInbox`, which its ``send`` is given
        (``inbox``): the conversation's earlier messages, the bytes of its media.
    """

    def __init__(
        self,
        store: InboxStore,
        channels: Channels,
        config: Config,
        news: News,
        policies: SendPolicies,
        inboxes: ChannelInboxes,
    ) -> None:
        self.store = store
        self.channels = channels
        self.config = config
        self.news = news
        self.policies = policies
        self.inboxes = inboxes
        self._inboxes: dict[str, ChannelInbox] = {}
        self.holder = ""  # the runner's, once it runs the job
        self.pacer = Pacer(store)
        self.lease = timedelta(seconds=config.send_lease_seconds)
        self.first_backoff = config.send_backoff_ms / 1000
        self._sending: dict[str, asyncio.Task[None]] = {}
        self._claimed: set[str] = set()
        """Entries this runner holds now: their sends are under way."""
        self._waiting: collections.Counter[str] = collections.Counter()
        """Sends started here per pace key (waiting for their slot, or under way)."""
        self._resting: dict[str, float] = {}
        """Entries whose delivery failed for want of the store: not taken again before then."""
        self._wake = asyncio.Event()

    def job(self, health: Callable[[], Awaitable[JobReport]]) -> Job:
        return Job(
            "inbox.deliver",
            self.run,
            singleton=False,
            description="Send what the outbox holds, at each channel's pace (every runner).",
            health=health,
        )

    async def run(self, control: JobControl) -> None:
        self.holder = control.holder or f"deliver:{id(self):x}"
        last_sweep = 0.0
        with self.news.listening():
            try:
                while not control.stopping:
                    signal = self.news.signal()
                    self._wake.clear()
                    if time.monotonic() - last_sweep >= SWEEP_SECONDS:
                        await self.sweep(utcnow())
                        last_sweep = time.monotonic()
                    started = await self._take_due()
                    # the sweep keeps its own time: a lease or a doubt lapsing commits nothing
                    next_sweep = last_sweep + SWEEP_SECONDS - time.monotonic()
                    await self._pause(signal, min(await self._until_due(started), next_sweep))
            finally:
                await self._finish(control)

    async def _take_due(self) -> int:
        """Start sending due entries, up to the runner's concurrency: each loaded channel's
        share first (a backlog on one channel never starves the others), then the oldest of
        any channel; never more waiting on one pace than it can use soon. How many started."""
        room = self.config.send_concurrency - len(self._sending)
        if room <= 0:
            return 0
        now = utcnow()
        channels = self.channels.names
        share = max(1, room // max(1, len(channels)))
        candidates: list[OutboxEntry] = []
        for channel in channels:
            candidates += await self.store.due_outbound(now, share + len(self._sending), channel)
        candidates += await self.store.due_outbound(now, room + len(self._sending))
        started = 0
        for entry in candidates:
            if len(self._sending) >= self.config.send_concurrency:
                break
            if (
                entry.message_id in self._sending
                or self._resting.get(entry.message_id, 0) > time.monotonic()
            ):
                continue
            pace = await self._pace_of(entry)
            if pace is not None and self._waiting[pace.key] >= ahead(pace):
                continue  # enough wait on this pace already
            self._start(entry, pace)
            started += 1
        return started

    async def _pace_of(self, entry: OutboxEntry) -> Pace | None:
        """The entry's pace, None when its channel's policy cannot say (a plugin bug: the
        attempt fails it)."""
        try:
            return (await self.policies.of(entry.channel)).pace(entry.address)
        except Exception:
            return None

    def _start(self, entry: OutboxEntry, pace: Pace | None) -> None:
        task = asyncio.create_task(self._deliver(entry), name=f"send:{entry.message_id}")
        self._sending[entry.message_id] = task
        if pace is not None:
            self._waiting[pace.key] += 1
        task.add_done_callback(functools.partial(self._done, entry.message_id, pace))

    def _done(self, message_id: str, pace: Pace | None, task: asyncio.Task[None]) -> None:
        self._sending.pop(message_id, None)
        if pace is not None:
            self._waiting[pace.key] -= 1
        now = time.monotonic()
        self._resting = {key: until for key, until in self._resting.items() if until > now}
        self._wake.set()

    async def _until_due(self, started: int) -> float:
        """How long to sleep before the next pass: until the next due entry, at most
        OVERDUE_SECONDS; IDLE_SECONDS when the due ones are all taken here already (a send
        finishing wakes the loop sooner)."""
        if len(self._sending) >= self.config.send_concurrency:
            return OVERDUE_SECONDS
        due = await self.store.next_due_at()
        if due is None:
            return OVERDUE_SECONDS
        seconds = min(OVERDUE_SECONDS, max(0.0, (due - utcnow()).total_seconds()))
        return IDLE_SECONDS if seconds == 0 and not started else seconds

    async def _pause(self, signal: asyncio.Event, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)  # let the sends started run a step
            return
        waits = [
            asyncio.create_task(self.news.wait(signal, seconds)),
            asyncio.create_task(self._wake.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(*waits)

    async def _finish(self, control: JobControl) -> None:
        """Stopping: sends under way, and claimed ones waiting for their pace (two seconds of
        it at most), finish, the runner's grace period bounding them; those not yet claimed
        are called off."""
        waiting = [task for key, task in self._sending.items() if key not in self._claimed]
        await cancel_and_wait(*waiting)
        if self._sending:
            await asyncio.wait(list(self._sending.values()))

    # the sweep -------------------------------------------------------------------------

    async def sweep(self, now: datetime) -> None:
        """Queue again what dead runners held but had not begun sending, put in doubt what
        they were sending; fail what is in doubt too long."""
        for entry in await self.store.expired_leases(now, SWEEP_BATCH):
            # Never marked attempted: the channel was not called. The write is conditional on
            # the mark, so an entry marked meanwhile goes in doubt below.
            if not entry.attempted and await self.store.requeue_unattempted(entry.message_id, now):
                log.info(
                    "message_requeued",
                    channel=entry.channel,
                    message_id=entry.message_id,
                    reason=STOPPED_BEFORE_SEND,
                )
                continue
            policy = await self.policies.of(entry.channel)
            resend = now + timedelta(seconds=self.first_backoff) if policy.resend_safe else None
            doubted = await self.store.doubt_outbound(
                entry.message_id,
                None,
                now + timedelta(seconds=policy.confirm_within),
                resend,
                STOPPED_MID_SEND,
                now,
            )
            if doubted is not None:
                log.warning(
                    "message_in_doubt",
                    channel=entry.channel,
                    message_id=entry.message_id,
                    reason=STOPPED_MID_SEND,
                    resend=resend is not None,
                )
        for entry in await self.store.lapsed_doubts(now, SWEEP_BATCH):
            failed = await self.store.expire_doubt(entry.message_id, now)
            if failed is not None:
                log.warning(
                    "message_not_confirmed", channel=entry.channel, message_id=entry.message_id
                )

    # one message -----------------------------------------------------------------------

    async def _deliver(self, entry: OutboxEntry) -> None:
        try:
            policy = await self.policies.of(entry.channel)
            try:
                pace = policy.pace(entry.address)
            except Exception as error:  # the channel's sender function: a plugin bug
                log.exception("send_policy_sender_failed", channel=entry.channel)
                await self._refuse(entry, error)
                return
            # Claimed first, then paced: runners never wait on a pace for the same message,
            # so every slot goes to a send. A runner that dies while its claimed message
            # waits (two seconds of the pace at most, `ahead`) leaves it unmarked: when the
            # lease ends it is queued again, not put in doubt (it was provably not sent).
            now = utcnow()
            claimed = await self.store.claim_outbound(
                entry.message_id, self.holder, now + self.lease, now
            )
            if claimed is None:
                return  # another runner took it, or it was settled or cancelled
            self._claimed.add(entry.message_id)
            keeper = asyncio.create_task(self._keep_lease(entry.message_id))
            try:
                await self.pacer.turn(pace, entry.priority)
                if await self._opted_out(claimed):
                    return
                await self._attempt(_attempting(claimed), policy, pace.key)
            finally:
                await cancel_and_wait(keeper)
                self._claimed.discard(entry.message_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The store failed: the entry stays as it was (when its lease ends a claimed one
            # is queued again, or goes in doubt if marked attempted), and is taken again
            # after a rest, not at once.
            self._resting[entry.message_id] = time.monotonic() + STORE_REST_SECONDS
            log.exception("delivery_failed", channel=entry.channel, message_id=entry.message_id)

    async def _keep_lease(self, message_id: str) -> None:
        """Renew the lease of a send under way every third of its time, so that a long send
        (a slow provider, several parts) is never taken for a dead runner's."""
        period = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            try:
                if not await self.store.extend_lease(
                    message_id, self.holder, utcnow() + self.lease
                ):
                    return
            except Exception:
                log.exception("lease_renewal_failed", message_id=message_id)

    async def _opted_out(self, claimed: Claimed) -> bool:
        """Fail, not send, a message whose contact opted out on its channel after it was
        queued (a STOP before its send_at or its retry): True when so."""
        message = claimed.message
        if message.channel not in claimed.opted_out:
            return False
        await self._fail(
            claimed,
            RecipientOptedOut(
                f"the contact opted out of messages on {message.channel!r}",
                channel=message.channel,
                contact_id=message.contact_id,
            ),
        )
        return True

    async def _refuse(self, entry: OutboxEntry, error: Exception) -> None:
        """Fail a message its channel's policy cannot place (claimed first, so only one
        runner decides)."""
        now = utcnow()
        claimed = await self.store.claim_outbound(
            entry.message_id, self.holder, now + self.lease, now
        )
        if claimed is not None:
            failure = ChannelFailed(
                f"channel {entry.channel!r} send_policy failed: {type(error).__name__}",
                channel=entry.channel,
            )
            await self._fail(claimed, failure)

    async def _attempt(self, claimed: Claimed, policy: ChannelPolicy, pace_key: str) -> None:
        message, channel = claimed.message, claimed.message.channel
        outbound = OutboundMessage(
            id=message.id,
            conversation_id=message.conversation_id,
            to=claimed.address,
            text=message.text,
            media=message.media,
            metadata=message.metadata,
            last_inbound_at=claimed.last_inbound_at,
        )
        if channel not in self._inboxes:
            self._inboxes[channel] = self.inboxes.of(channel)

        async def started() -> None:
            # Durably marked right before the channel's send runs (once a thread of its
            # pool takes it): from here a runner's death leaves the message in doubt; before
            # it, the message is queued again. Without the mark (the lease ended meanwhile,
            # or another runner holds it) it must not be sent.
            try:
                marked = await self.store.begin_attempt(message.id, self.holder, utcnow())
            except Exception as error:  # the store failed: not the channel's doing
                raise MarkFailed(message.id) from error
            if not marked:
                raise LeaseLost(message.id)

        try:
            result = await self.channels.call(
                channel,
                "send",
                started=started,
                message=outbound,
                config=self.config,
                inbox=self._inboxes[channel],
            )
            if not isinstance(result, SendResult):
                raise ChannelFailed(
                    f"channel {channel!r} send returned {type(result).__name__}, not SendResult",
                    channel=channel,
                )
        except LeaseLost:
            log.warning("message_not_sent_lease_lost", channel=channel, message_id=message.id)
        except TimeoutError:
            # Not failed: the send may have started (a channel's own timeout) or not (its
            # thread waited too long for the mark). The lease's end tells: marked, the
            # message goes in doubt; unmarked, it is queued again.
            log.warning("message_send_timed_out", channel=channel, message_id=message.id)
        except MarkFailed as failed:  # as any store failure here: the entry stays claimed
            assert failed.__cause__ is not None
            raise failed.__cause__ from None
        except SendOutcomeUnknown as error:
            await self._doubt(claimed, policy, error)
        except SendFailed as error:
            if error.throttled:  # a provider's Retry-After counts for 5 minutes at most
                wait = min(error.retry_after or 0.0, LONGEST_BACKOFF_SECONDS)
                await self.pacer.slow(pace_key, wait)
            if error.retryable:
                await self._retry(claimed, policy, error)
            else:
                await self._fail(claimed, error)
        except (ChannelUnavailable, ChannelFailed) as error:
            await self._fail(claimed, error)
        except Exception as error:  # a plugin bug must not leave the message claimed
            log.exception("channel_send_crashed", channel=channel, message_id=message.id)
            failure = ChannelFailed(
                f"channel {channel!r} failed: {type(error).__name__}", channel=channel
            )
            await self._fail(claimed, failure)
        else:
            await self._sent(claimed, result)

    async def _sent(self, claimed: Claimed, result: SendResult) -> None:
        message = claimed.message
        applied = await self.store.advance_message(
            message.id, result.status, provider_message_id=result.provider_message_id, settle=True
        )
        if applied.provider_id_conflict:
            log.warning(
                "provider_id_already_used",
                channel=message.channel,
                message_id=message.id,
                provider_message_id=result.provider_message_id,
            )
        status = applied.message.status if applied.message is not None else result.status
        log.info(
            "message_sent",
            channel=message.channel,
            message_id=message.id,
            status=status,
            attempts=claimed.entry.attempts,
        )

    async def _retry(self, claimed: Claimed, policy: ChannelPolicy, error: SendFailed) -> None:
        entry, now = claimed.entry, utcnow()
        delay = backoff(entry.attempts, self.first_backoff, error.retry_after)
        due = now + timedelta(seconds=delay)
        failing_since = entry.failing_since or now  # the deadline counts from the first failure
        if due > failing_since + timedelta(seconds=policy.retry_for):
            await self._fail(claimed, error, gave_up=True)
            return
        failure = failure_of_error(error)
        await self.store.retry_outbound(entry.message_id, self.holder, due, failure)
        log.info(
            "message_send_retrying",
            channel=entry.channel,
            message_id=entry.message_id,
            error_code=failure.code,
            attempts=entry.attempts,
            retry_in=round(delay, 3),
        )

    async def _doubt(
        self, claimed: Claimed, policy: ChannelPolicy, error: SendOutcomeUnknown
    ) -> None:
        entry, now = claimed.entry, utcnow()
        resend = None
        if policy.resend_safe:
            resend = now + timedelta(seconds=backoff(entry.attempts, self.first_backoff))
        await self.store.doubt_outbound(
            entry.message_id,
            self.holder,
            now + timedelta(seconds=policy.confirm_within),
            resend,
            error.message,
            now,
        )
        log.warning(
            "message_in_doubt",
            channel=entry.channel,
            message_id=entry.message_id,
            reason=error.message,
            resend=resend is not None,
        )

    async def _fail(self, claimed: Claimed, error: OmnichannelError, gave_up: bool = False) -> None:
        message, failure = claimed.message, failure_of_error(error)
        if await self.store.fail_outbound(message.id, self.holder, failure) is None:
            log.warning(  # its lease ended first: in doubt, or sent again, meanwhile
                "message_send_failed_lease_lost",
                channel=message.channel,
                message_id=message.id,
                error_code=failure.code,
            )
            return
        log.warning(
            "message_send_failed",
            channel=message.channel,
            message_id=message.id,
            error_code=failure.code,
            attempts=claimed.entry.attempts,
            gave_up=gave_up,
            reason=error.message,  # the core's and the channels' messages hold no secret
        )

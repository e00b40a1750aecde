"""The ``media.fetch`` job: a provider's media, which a message names by URL, fetched into
the media store after the webhook was answered.

``receive`` hands over Twilio's ``MediaUrl`` or a Messenger attachment URL; the inbox stores
the message, then queues each such item here (`keeper.Keeper.expect`), durably, before the
provider gets its answer. The job (one runner at a time, a singleton) takes the due items,
asks the channel's ``media_fetch`` hook how to fetch each (URL, credentials, hosts),
fetches it by the SSRF rules (`fetch`), keeps the bytes, and names them in the message
(`InboxMedia.replace_media`, which logs ``message.updated``). A failure worth retrying (a
5xx, a 429, no connection) is tried again after a pause that doubles from a second up to
five minutes, until ``OMNICHANNEL_MEDIA_FETCH_RETRY_SECONDS`` after the first failure; any
other (a host the channel does not allow, a 404, a type the store does not keep) ends it at
once. Then the message keeps the provider's URL, and the fetch records why
(``GET /api/messages/{id}/media/{index}`` says it). A runner that dies mid-fetch leaves the
item pending: the next runner fetches it again (keeping the same bytes twice is harmless).
An item kept for a message that no longer names the provider's URL there (fetched twice, or
its contact erased meanwhile) is forgotten at once, and a fetch forgotten while under way
(`keeper.Keeper.forget`) is not written back.

It wakes when the event log grows (a new message) and when the next item is due, and
looks at least every :data:`IDLE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import timedelta

import attrs
import httpx
import structlog

from omnichannel_core.channel import ChannelUnavailable, MediaFetch
from omnichannel_core.module import (
    Channels,
    Config,
    HookNotImplemented,
    InboxMedia,
    InvalidInput,
    Job,
    JobControl,
    JobReport,
    Media,
    News,
    NotFound,
    cancel_and_wait,
    utcnow,
)
from omnichannel_core.modules.media.fetch import (
    FetchFailed,
    FetchRefused,
    fetch_client,
    fetch_media,
)
from omnichannel_core.modules.media.keeper import Keeper
from omnichannel_core.modules.media.records import FetchState, PendingFetch
from omnichannel_core.modules.media.store import MediaStore

log = structlog.get_logger("omnichannel.media")

BATCH = 20
CONCURRENCY = 4
"""Fetches under way at once."""
IDLE_SECONDS = 5.0
RECHECK_SECONDS = 0.25
"""After news with nothing due: look once more this soon (the inbox queues a message's
media just after the message's event is logged)."""
FIRST_BACKOFF_SECONDS = 1.0
LONGEST_BACKOFF_SECONDS = 300.0
STUCK_AFTER = timedelta(minutes=15)
"""``/health`` degrades when an item due this long ago is still not fetched."""


def backoff(attempts: int, retry_after: float | None) -> float:
    """Seconds before another attempt: a second, doubled per attempt up to five minutes,
    with equal jitter; never less than the provider's ``Retry-After`` (five minutes at
    most)."""
    ceiling = min(LONGEST_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** min(attempts - 1, 30))
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not a secret
    return max(delay, min(retry_after or 0.0, LONGEST_BACKOFF_SECONDS))


class Fetching:
    """The job's work. ``inbox`` finds the inbox's :class:`InboxMedia` (once every module
    offered its services)."""

    def __init__(
        self,
        store: MediaStore,
        keeper: Keeper,
        channels: Channels,
        config: Config,
        news: News,
        inbox: Callable[[], InboxMedia],
    ) -> None:
        self.store = store
        self.keeper = keeper
        self.channels = channels
        self.config = config
        self.news = news
        self.inbox = inbox

    def job(self) -> Job:
        return Job(
            "media.fetch",
            self.run,
            description="Fetch the providers' media that messages name into the media store.",
            health=self.report,
        )

    async def report(self) -> JobReport:
        pending = await self.store.count_pending()
        due = await self.store.next_due_at()
        stuck = due is not None and utcnow() - due > STUCK_AFTER
        return JobReport(
            ok=not stuck,
            detail="a provider's media has waited over 15 minutes" if stuck else "",
            figures={"pending": pending, "next_due_at": None if due is None else due.isoformat()},
        )

    async def run(self, control: JobControl) -> None:
        async with fetch_client() as client:
            with self.news.listening():
                recheck = False
                while not control.stopping:
                    signal = self.news.signal()
                    due = await self.store.due_fetches(utcnow(), BATCH)
                    if due:
                        await self._fetch_all(due, client)
                        recheck = False
                        continue
                    pause = RECHECK_SECONDS if recheck else await self._until_due()
                    recheck = await self._pause(signal, pause, control)

    async def _until_due(self) -> float:
        due = await self.store.next_due_at()
        if due is None:
            return IDLE_SECONDS
        return min(IDLE_SECONDS, max(0.05, (due - utcnow()).total_seconds()))

    async def _pause(self, signal: asyncio.Event, seconds: float, control: JobControl) -> bool:
        """Sleep until news, ``seconds``, or the runner stops; True when news woke it."""
        news = asyncio.create_task(self.news.wait(signal, seconds))
        stop = asyncio.create_task(control.sleep(seconds))
        try:
            await asyncio.wait([news, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(news, stop)
        return news.done() and not news.cancelled() and news.result()

    async def _fetch_all(self, due: list[PendingFetch], client: httpx.AsyncClient) -> None:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one(fetch: PendingFetch) -> None:
            async with slots:
                try:
                    await self.attempt(fetch, client)
                except Exception:  # the store failed: the item stays pending, due again
                    log.exception(
                        "media_fetch_crashed", message_id=fetch.message_id, index=fetch.index
                    )
                    later = utcnow() + timedelta(seconds=backoff(fetch.attempts + 1, None))
                    await self.store.save_fetch(attrs.evolve(fetch, due_at=later))

        await asyncio.gather(*(one(fetch) for fetch in due), return_exceptions=True)

    async def attempt(self, fetch: PendingFetch, client: httpx.AsyncClient) -> PendingFetch:
        """Fetch one item once; the fetch as it is afterwards (saved)."""
        fetch = attrs.evolve(fetch, attempts=fetch.attempts + 1)
        try:
            spec = await self._spec(fetch)
            fetched = await fetch_media(
                spec, self.config.media_max_bytes, self.config.media_fetch_private, client
            )
            declared = fetched.content_type
            if not declared or declared.startswith("application/octet-stream"):
                declared = fetch.media.content_type or declared
            stored = await self.keeper.keep_bytes(
                fetched.content, declared, fetched.filename or fetch.media.filename
            )
        except FetchFailed as failure:
            return await self._retry(fetch, str(failure), failure.retry_after)
        except (FetchRefused, InvalidInput) as refusal:
            reason = refusal.message if isinstance(refusal, InvalidInput) else str(refusal)
            return await self._give_up(fetch, reason)
        media = Media(
            url="",
            id=stored.id,
            content_type=stored.content_type,
            size=stored.size,
            filename=stored.filename,
            role=fetch.media.role,
            content_id=fetch.media.content_id,
        )
        # before the message names it: who may see the message may attach it (access.py)
        await self.store.add_holders(fetch.message_id, [stored.id])
        try:
            replaced = await self.inbox().replace_media(
                fetch.message_id, fetch.index, fetch.media.url, media
            )
        except NotFound:
            await self.keeper.forget([stored.id])
            return await self._give_up(fetch, "the message is gone")
        if replaced is None:
            # the message names something else there now (an earlier run's item, or the
            # contact was erased meanwhile): the item just kept is nobody's
            await self.keeper.forget([stored.id])
        done = attrs.evolve(
            fetch,
            state=FetchState.DONE,
            due_at=None,
            error=None,
            media_id=stored.id if replaced is not None else None,
            updated_at=utcnow(),
        )
        await self.store.save_fetch(done)  # forgotten meanwhile (an erasure): stays so
        log.info(
            "media_fetched",
            channel=fetch.channel,
            message_id=fetch.message_id,
            index=fetch.index,
            media_id=stored.id,
            size=stored.size,
            attempts=fetch.attempts,
        )
        return done

    async def _spec(self, fetch: PendingFetch) -> MediaFetch:
        """How the channel says to fetch the item; FetchRefused when it cannot say
        (unloaded, no hook, no answer), FetchFailed when it may later (not configured)."""
        channel = fetch.channel
        if not self.channels.loaded(channel):
            raise FetchFailed(f"channel {channel!r} is not loaded")
        try:
            spec = await self.channels.call(
                channel, "media_fetch", media=fetch.media, config=self.config
            )
        except HookNotImplemented:
            raise FetchRefused(f"channel {channel!r} has no media_fetch hook") from None
        except ChannelUnavailable as unavailable:
            raise FetchFailed(unavailable.message) from None
        except Exception as error:  # a plugin bug: logged, and tried again later
            log.exception("media_fetch_hook_crashed", channel=channel)
            raise FetchFailed(
                f"channel {channel!r} media_fetch failed: {type(error).__name__}"
            ) from None
        if spec is None:
            raise FetchRefused(f"channel {channel!r} does not fetch this media")
        if not isinstance(spec, MediaFetch):
            raise FetchRefused(
                f"channel {channel!r} media_fetch returned {type(spec).__name__}, not MediaFetch"
            )
        return spec

    async def _retry(
        self, fetch: PendingFetch, reason: str, retry_after: float | None
    ) -> PendingFetch:
        now = utcnow()
        failing_since = fetch.failing_since or now
        due = now + timedelta(seconds=backoff(fetch.attempts, retry_after))
        if due > failing_since + timedelta(seconds=self.config.media_fetch_retry_seconds):
            return await self._give_up(attrs.evolve(fetch, failing_since=failing_since), reason)
        retrying = attrs.evolve(
            fetch, due_at=due, failing_since=failing_since, error=reason, updated_at=now
        )
        await self.store.save_fetch(retrying)
        log.info(
            "media_fetch_retrying",
            channel=fetch.channel,
            message_id=fetch.message_id,
            index=fetch.index,
            attempts=fetch.attempts,
            reason=reason,
        )
        return retrying

    async def _give_up(self, fetch: PendingFetch, reason: str) -> PendingFetch:
        now = utcnow()
        failed = attrs.evolve(
            fetch,
            state=FetchState.FAILED,
            due_at=None,
            failing_since=fetch.failing_since or now,
            error=reason,
            updated_at=now,
        )
        await self.store.save_fetch(failed)
        log.warning(
            "media_fetch_failed",
            channel=fetch.channel,
            message_id=fetch.message_id,
            index=fetch.index,
            attempts=fetch.attempts,
            reason=reason,
        )
        return failed

"""Mail from an IMAP folder, by the job runner: the ``email.imap`` job and its store.

With ``EMAIL_IMAP_HOST`` set, one job (a singleton: one runner at a time across the
servers sharing the store) keeps a session to the folder ``EMAIL_IMAP_FOLDER``
(:mod:`omnichannel_email.imap_client`). It takes every mail above its position, oldest
first: the size first, and a mail over ``EMAIL_MAX_MESSAGE_BYTES`` is skipped, logged and
recorded with the reason; else its source (flags untouched), parsed as the webhook's
(:func:`~omnichannel_email.parse.mail_result`, in a thread of its own) and stored through
the channel's :class:`~omnichannel_core.channel.ChannelInbox`, which returns once it is
durable. Then it waits: IDLE when the server offers it (the server says when mail comes),
else ``EMAIL_IMAP_POLL_SECONDS``; after a wait that brought no news it selects the folder
again (a poll), which also shows a UIDVALIDITY changed under a session that was not told.

**Exactly once.** The position (UIDVALIDITY, UID; :mod:`omnichannel_email.imap_store`)
moves only past mail that is stored (written at most about once a second, and at the end
of each round), so a restart or a takeover fetches again at most the last second's mail;
the inbox stores a mail once per ``Message-ID`` (the webhook's too), so that is no
duplicate. When the folder's UIDVALIDITY changes (the mailbox was recreated or restored),
every old UID means nothing: the whole folder is read again, and the same dedupe keeps
what was stored. A mail the parser refuses (no mail at all) is skipped and recorded like
one too large, so it does not stop the folder; anything else that fails (the server, the
store) is tried again after a pause that doubles up to a minute, from the position: no
mail is passed over. Except a poison mail: when parsing or storing the same mail (its
UIDVALIDITY and UID) fails :data:`MAX_ATTEMPTS` times in a row with an error its content
can trip (:data:`MAIL_FAULTS`: a ``ValueError`` such as a ``UnicodeError``, a
``TypeError``, a ``KeyError``, the ``email`` package's own...), it is skipped and
recorded with the error, so one mail that trips a bug never stalls the folder. Any other
error is the store's or a server's (``OSError``, ``sqlite3.Error``, Google's API errors, a
timeout): never counted, however long it lasts, since a store that is down says nothing
about the mail. The count is kept
in the job's memory (a restarted runner counts again); the pause before the next attempt
starts again at a second only once a mail is stored or a session lasted a minute, so the
attempts at one mail are spread over at least 1 + 2 s. A skipped mail stays in the folder,
untouched, to be filed again once the cause is fixed.

**Health.** The job's report in ``/health`` is read from the store (the web server
answers it, not the runner): ``idle``, ``polling``, ``fetching`` or ``error``, since when,
the last error, the position and how many mails were skipped.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from email.errors import MessageError

import structlog

from omnichannel_core.module import (
    ChannelInbox,
    InvalidInput,
    Job,
    JobControl,
    JobReport,
    ModuleContext,
    StoreSpec,
    format_timestamp,
    utcnow,
)
from omnichannel_email.imap_client import ImapError, ImapSession, mailbox_name
from omnichannel_email.imap_store import (
    STORE,
    ImapStore,
    PollerState,
    PollerStatus,
    Position,
    SkippedMail,
)
from omnichannel_email.parse import mail_result
from omnichannel_email.settings import EmailSettings, MailServer

log = structlog.get_logger("omnichannel.email.imap")

IDLE_SECONDS = 5 * 60.0
"""How long one IDLE lasts before it is renewed: RFC 2177 allows 29 minutes, but NAT
gateways and some servers drop a connection silent for much less."""
FIRST_PAUSE_SECONDS = 1.0
LONGEST_PAUSE_SECONDS = 60.0
POSITION_WRITE_SECONDS = 1.0
"""At most one write of the position per this many seconds while a backlog is taken."""
MAX_ATTEMPTS = 3
"""Failures in a row at parsing or storing one mail before it is skipped as poison."""
MAIL_FAULTS: tuple[type[Exception], ...] = (
    ArithmeticError,
    AssertionError,
    AttributeError,
    InvalidInput,
    LookupError,
    MessageError,
    NotImplementedError,
    RecursionError,
    TypeError,
    ValueError,
)
"""What a mail's content can make the code that parses or stores it raise, the same at
every attempt: only these count toward skipping it. The store's and the servers' errors
(``OSError``, ``sqlite3.Error``, ``google.api_core`` errors, ``httpx`` errors) subclass
none of them."""
MAX_REASON_CHARS = 500


def stores() -> list[StoreSpec]:
    """The poller's store: registered whether IMAP is configured or not, so its tables
    exist when it is."""
    return [STORE]


def jobs(context: ModuleContext) -> list[Job]:
    """The ``<channel>.imap`` job, when ``EMAIL_IMAP_HOST`` (and its login) is set."""
    settings = EmailSettings.from_config(context.config)
    server = settings.imap
    if server is None or server.username is None or server.password is None:
        return []
    poller = ImapPoller(context, settings, server)
    return [
        Job(
            f"{context.owner}.imap",
            poller.run,
            description=f"takes mail from {poller.mailbox} (IMAP)",
            health=poller.report,
        )
    ]


class _Progress:
    """The position of one round, written once a second at most, and at its end."""

    def __init__(self, store: ImapStore, mailbox: str, uidvalidity: int) -> None:
        self.store = store
        self.mailbox = mailbox
        self.uidvalidity = uidvalidity
        self.taken: int | None = None
        self.written_at = time.monotonic()

    async def took(self, uid: int) -> None:
        self.taken = uid
        if time.monotonic() - self.written_at >= POSITION_WRITE_SECONDS:
            await self.write()

    async def skipped(self, skipped: SkippedMail) -> None:
        await self.store.skip(self.mailbox, skipped)  # advances past it: nothing to write
        self.taken = None
        self.written_at = time.monotonic()

    async def write(self) -> None:
        if self.taken is not None:
            await self.store.advance(self.mailbox, Position(self.uidvalidity, self.taken))
            self.taken = None
        self.written_at = time.monotonic()


class ImapPoller:
    """The job's work (:meth:`run`) and its report (:meth:`report`)."""

    def __init__(self, context: ModuleContext, settings: EmailSettings, server: MailServer):
        self.context = context
        self.settings = settings
        self.server = server
        self.folder = settings.imap_folder
        self.mailbox = mailbox_name(server, settings.imap_folder)
        self.store = context.store(ImapStore)
        self._status: PollerStatus | None = None
        self._failing: tuple[int, int] | None = None
        """The mail (UIDVALIDITY, UID) that failed last, and how many times in a row."""
        self._failures = 0
        self._stored_since_failure = False
        """A mail was stored since the last failure: the next pause is the first again."""

    # the work ---------------------------------------------------------------------------

    async def run(self, control: JobControl) -> None:
        """Keep a session to the folder until the runner stops; after a failure, open one
        again after a pause that doubles up to a minute."""
        inbox = self.context.channel_inbox()
        parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="email-imap-parse")
        pause = FIRST_PAUSE_SECONDS
        try:
            while not control.stopping:
                connected_at: float | None = None
                try:
                    async with ImapSession.open(
                        self.server, self.folder, self.settings.ca_file
                    ) as session:
                        log.info("imap_connected", mailbox=self.mailbox, idle=session.can_idle)
                        connected_at = time.monotonic()
                        await self._set(PollerState.FETCHING)
                        await self._serve(session, control, inbox, parser)
                except ImapError as error:
                    log.warning("imap_failed", mailbox=self.mailbox, error=str(error))
                    await self._failed(str(error))
                except Exception as error:
                    log.exception("imap_failed", mailbox=self.mailbox)
                    await self._failed(f"{type(error).__name__}: {error}")
                else:
                    continue
                served = connected_at is not None and (
                    time.monotonic() - connected_at > LONGEST_PAUSE_SECONDS
                )
                if self._stored_since_failure or served:  # it went on a while: start over
                    pause, self._stored_since_failure = FIRST_PAUSE_SECONDS, False
                if not await control.sleep(pause):
                    break
                pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
        finally:
            parser.shutdown(wait=False, cancel_futures=True)

    async def _serve(
        self,
        session: ImapSession,
        control: JobControl,
        inbox: ChannelInbox,
        parser: ThreadPoolExecutor,
    ) -> None:
        """Take new mail, then wait for more, until the runner stops."""
        poll_seconds = self.settings.imap_poll_seconds
        while not control.stopping:
            await self._take_new(session, control, inbox, parser)
            if control.stopping:
                return
            if session.can_idle:
                await self._set(PollerState.IDLE)
                if await session.wait_for_mail(IDLE_SECONDS, control):
                    continue
            else:
                await self._set(PollerState.POLLING)
                if not await control.sleep(poll_seconds):
                    return
            if not control.stopping:
                await session.select_again()  # a folder recreated may go unannounced

    async def _take_new(
        self,
        session: ImapSession,
        control: JobControl,
        inbox: ChannelInbox,
        parser: ThreadPoolExecutor,
    ) -> None:
        """Take every mail above the position, in UID order, until a listing finds none
        new and the server announced none meanwhile: a mail that came while others were
        taken was announced (EXISTS) with the answer to one of those commands, and the
        IDLE after would not announce it again (it would wait for the next mail, or the
        end of the IDLE)."""
        position = await self.store.position(self.mailbox)
        after = 0
        if position is not None and position.uidvalidity == session.uidvalidity:
            after = position.last_uid
        elif position is not None:
            log.warning(
                "imap_uidvalidity_changed",
                mailbox=self.mailbox,
                was=position.uidvalidity,
                now=session.uidvalidity,
            )
        progress = _Progress(self.store, self.mailbox, session.uidvalidity)
        try:
            while not control.stopping:
                uids = await session.uids_after(after)
                if not uids and not session.announced:
                    break
                for uid in uids:
                    if control.stopping:
                        break
                    await self._take(session, uid, inbox, parser, progress)
                    after = uid
        finally:
            await progress.write()

    async def _take(
        self,
        session: ImapSession,
        uid: int,
        inbox: ChannelInbox,
        parser: ThreadPoolExecutor,
        progress: _Progress,
    ) -> None:
        """Store the mail ``uid`` (or skip it, with the reason), then move past it."""
        limit = self.settings.max_message_bytes
        size = await session.size(uid)
        if size is not None and size > limit:
            reason = f"too large: {size} bytes, over EMAIL_MAX_MESSAGE_BYTES ({limit})"
            await self._skip(progress, uid, reason, size)
            return
        raw = None if size is None else await session.fetch(uid)
        if raw is None:  # deleted since it was listed: nothing to take
            await progress.took(uid)
            return
        try:
            refused = await self._store_mail(raw, inbox, parser)
        except Exception as error:  # a bug the mail trips, or the store failing: see _poison
            if not await self._poison(progress, uid, error, len(raw)):
                raise
            return
        self._failing, self._failures = None, 0
        if refused is not None:
            await self._skip(progress, uid, f"not a mail we can read: {refused}", len(raw))
            return
        log.info("imap_mail_stored", mailbox=self.mailbox, uid=uid, size=len(raw))
        self._stored_since_failure = True
        await progress.took(uid)

    async def _store_mail(
        self, raw: bytes, inbox: ChannelInbox, parser: ThreadPoolExecutor
    ) -> str | None:
        """Parse ``raw`` (in the parser's thread) and store it: None once stored, or why
        the parser refuses it."""
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(parser, mail_result, raw, self.settings)
        except InvalidInput as error:
            return error.message
        await inbox.receive(result)
        return None

    async def _poison(self, progress: _Progress, uid: int, error: Exception, size: int) -> bool:
        """Count a failure at the mail ``uid``; at the :data:`MAX_ATTEMPTS`-th in a row,
        skip it (True). Only :data:`MAIL_FAULTS` count: anything else is the store's or a
        server's fault, not the mail's."""
        if not isinstance(error, MAIL_FAULTS) or isinstance(error, OSError):
            return False
        mail = (progress.uidvalidity, uid)
        self._failures = self._failures + 1 if self._failing == mail else 1
        self._failing = mail
        if self._failures < MAX_ATTEMPTS:
            return False
        log.error("imap_mail_poison", mailbox=self.mailbox, uid=uid, exc_info=error)
        reason = f"failed {self._failures} times: {type(error).__name__}: {error}"
        await self._skip(progress, uid, reason[:MAX_REASON_CHARS], size)
        self._failing, self._failures = None, 0
        return True

    async def _skip(self, progress: _Progress, uid: int, reason: str, size: int | None) -> None:
        log.warning("imap_mail_skipped", mailbox=self.mailbox, uid=uid, reason=reason)
        skipped = SkippedMail(progress.uidvalidity, uid, reason, size, utcnow())
        await progress.write()  # the mails before it first
        await progress.skipped(skipped)

    # the state it reports ---------------------------------------------------------------

    async def _set(self, state: PollerState) -> None:
        """Keep ``state`` in the store when it changed (the last error is kept with it)."""
        last = self._status
        if last is not None and last.state is state:
            return
        error, error_at = (last.error, last.error_at) if last is not None else (None, None)
        await self._save(PollerStatus(state, utcnow(), error, error_at))

    async def _failed(self, error: str) -> None:
        now = utcnow()
        try:
            await self._save(PollerStatus(PollerState.ERROR, now, error, now))
        except Exception:
            log.exception("imap_status_not_saved", mailbox=self.mailbox)

    async def _save(self, status: PollerStatus) -> None:
        await self.store.save_status(self.mailbox, status)
        self._status = status

    async def report(self) -> JobReport:
        """The job's report in ``/health``, from the store."""
        status = await self.store.status(self.mailbox)
        position = await self.store.position(self.mailbox)
        figures: dict[str, object] = {
            "mailbox": self.mailbox,
            "uidvalidity": position.uidvalidity if position else None,
            "last_uid": position.last_uid if position else None,
            "skipped": await self.store.count_skipped(self.mailbox),
        }
        if status is None:
            return JobReport(ok=True, detail="not started yet", figures=figures)
        figures |= {
            "state": status.state.value,
            "connected": status.state is not PollerState.ERROR,
            "idle": status.state is PollerState.IDLE,
            "since": format_timestamp(status.since),
            "last_error": status.error,
            "last_error_at": format_timestamp(status.error_at) if status.error_at else None,
        }
        return JobReport(
            ok=status.state is not PollerState.ERROR,
            detail=_DETAILS[status.state].format(
                seconds=self.settings.imap_poll_seconds, error=status.error
            ),
            figures=figures,
        )


_DETAILS = {
    PollerState.FETCHING: "connected, taking mail",
    PollerState.IDLE: "connected, waiting for mail (IDLE)",
    PollerState.POLLING: "connected, asking for mail every {seconds:g} s (no IDLE)",
    PollerState.ERROR: "failing, trying again: {error}",
}

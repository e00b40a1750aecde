"""Mail taken from a real IMAP server (Dovecot) by the real server's job runner: each mail
stored once, however the poller is stopped, restarted or the folder renumbered, and never
marked read; what it cannot take skipped with the reason, and its state in ``/health``.
"""

from __future__ import annotations

import asyncio
import email
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from dovecot import PASSWORD, Dovecot
from google.api_core.exceptions import ServiceUnavailable
from omnichannel_email.imap import MAX_ATTEMPTS, ImapPoller
from omnichannel_email.imap_client import ImapError, ImapSession
from omnichannel_email.imap_store import STORE, ImapStore, Position, SkippedMail
from omnichannel_email.settings import MailServer, Security, parse_settings
from smtp_server import INBOUND_SECRET, email_env, serving
from test_email_parse import CORPUS, MESSAGES, OWN_ADDRESS

from omnichannel_core.channel import Config, WebhookResult
from omnichannel_core.module import JobControl, ModuleContext
from omnichannel_core.testing import run_store
from omnichannel_core.testing.inbox_reader import InboxReader
from omnichannel_core.testing.server import ServerProcess, WorkerProcess

WAIT_SECONDS = 20.0
MAX_MESSAGE_BYTES = 256 * 1024
"""The servers here take mail up to this size, so a mail too large is quick to make."""
JOB = "email.imap"


def mail(text: str = "Hello from IMAP", *, sender: str | None = None, **headers: str) -> bytes:
    """A plain mail with a Message-ID of its own (``headers`` may override any header)."""
    fields = {
        "From": sender or f"Ana {uuid.uuid4().hex[:8]} <ana-{uuid.uuid4().hex[:8]}@example.org>",
        "To": "support@example.test",
        "Subject": "A question",
        "Date": "Mon, 02 Jun 2025 09:30:00 +0000",
        "Message-ID": f"<{uuid.uuid4().hex}@mail.example.org>",
        **{name.replace("_", "-"): value for name, value in headers.items()},
    }
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items() if value)
    return (head + "\r\n" + text + "\r\n").encode()


def message_id(source: bytes) -> str:
    """The provider message id the channel gives ``source``: its Message-ID, bare."""
    return str(email.message_from_bytes(source)["Message-ID"]).strip().strip("<>")


def imap_env(dovecot: Dovecot, **overrides: str | None) -> dict[str, str | None]:
    """A server reading ``dovecot``'s INBOX for the corpus's business, taking mail up to
    :data:`MAX_MESSAGE_BYTES`."""
    settings = {
        **dovecot.env(),
        "EMAIL_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
        "EMAIL_FROM_ADDRESS": OWN_ADDRESS,
    }
    return email_env(None, **{**settings, **overrides})


def wait_for(reader: InboxReader, provider_id: str, seconds: float = WAIT_SECONDS) -> dict:
    """The one message stored with ``provider_id``, once it is."""
    deadline = time.monotonic() + seconds
    while True:
        found = reader.messages_with_provider_id("email", provider_id)
        if found:
            assert len(found) == 1, found
            return found[0]
        assert time.monotonic() < deadline, f"{provider_id} not stored in {seconds} s"
        time.sleep(0.05)


def job_report(server: ServerProcess) -> dict:
    """The IMAP job's report in ``/health``."""
    with server.client() as client:
        return client.get("/health").json()["jobs"][JOB]["report"]


def wait_for_report(server: ServerProcess, check, seconds: float = WAIT_SECONDS) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        report = job_report(server)
        if check(report):
            return report
        assert time.monotonic() < deadline, f"the job's report never changed: {report}"
        time.sleep(0.1)


def logged(path: Path, event: str, offset: int = 0) -> list[dict]:
    """The JSON log lines of ``event`` in the log at ``path``, after ``offset`` bytes."""
    lines = path.read_bytes()[offset:].decode(errors="replace").splitlines()
    events = []
    for line in lines:
        with_event = line.startswith("{") and f'"{event}"' in line
        if with_event:
            events.append(json.loads(line))
    return [entry for entry in events if entry.get("event") == event]


@pytest.fixture(scope="module")
def imap_server(
    tmp_path_factory: pytest.TempPathFactory, dovecot: Dovecot
) -> Iterator[ServerProcess]:
    """The real server (with its job runner) reading Dovecot's INBOX."""
    with serving(tmp_path_factory.mktemp("imap"), imap_env(dovecot)) as server:
        yield server


@pytest.fixture
def inbox(imap_server: ServerProcess) -> Iterator[InboxReader]:
    with imap_server.client() as client:
        yield InboxReader(client, "email")


def test_mail_in_the_folder_is_stored_quickly_with_idle(imap_server, dovecot, inbox):
    """A mail filed into the folder is stored within a few seconds, the server telling the
    waiting poller (IDLE); its text and sender are the mail's, and it stays unread in the
    mailbox (fetched with BODY.PEEK)."""
    wait_for_report(imap_server, lambda report: report["figures"].get("state") == "idle")
    source = mail("Is my order on its way?", sender="Ana Lima <ana.lima@example.org>")
    started = time.monotonic()
    dovecot.append(source)
    message = wait_for(inbox, message_id(source))
    assert time.monotonic() - started < 5
    assert message["text"] == "Is my order on its way?"
    assert message["direction"] == "inbound"
    conversation = inbox.conversation_of("ana.lima@example.org")
    assert conversation["id"] == message["conversation_id"]
    assert all("\\Seen" not in flags for flags in dovecot.flags().values())


def test_health_says_connected_and_idle(imap_server, dovecot, inbox):
    """``/health`` shows the job connected and idle, its position in the folder, and no
    error."""
    source = mail()
    dovecot.append(source)
    wait_for(inbox, message_id(source))
    report = wait_for_report(
        imap_server,
        lambda report: (
            report["figures"]["last_uid"] == max(dovecot.flags())
            and report["figures"]["state"] == "idle"
        ),
    )
    assert report["ok"] is True
    assert report["detail"] == "connected, waiting for mail (IDLE)"
    figures = report["figures"]
    assert (figures["connected"], figures["idle"]) == (True, True)
    assert figures["uidvalidity"] == dovecot.uidvalidity()
    assert figures["mailbox"].endswith("/INBOX")
    assert PASSWORD not in json.dumps(report)


def test_a_mail_too_large_is_skipped_recorded_and_passed(imap_server, dovecot, inbox):
    """A mail over EMAIL_MAX_MESSAGE_BYTES is not stored: it is logged with the reason,
    counted in the job's report, and the mails after it are stored."""
    before = job_report(imap_server)["figures"]["skipped"]
    offset = imap_server.log_path.stat().st_size
    large = mail("x" * (MAX_MESSAGE_BYTES + 1000))
    after = mail("After the large one")
    dovecot.append(large)
    dovecot.append(after)
    wait_for(inbox, message_id(after))
    assert inbox.messages_with_provider_id("email", message_id(large)) == []
    wait_for_report(imap_server, lambda report: report["figures"]["skipped"] == before + 1)
    [skipped] = logged(imap_server.log_path, "imap_mail_skipped", offset)
    assert "too large" in skipped["reason"] and str(MAX_MESSAGE_BYTES) in skipped["reason"]


def test_a_mail_the_parser_refuses_is_skipped_and_the_next_stored(imap_server, dovecot, inbox):
    """A mail with no sender (no From) cannot be stored: it is skipped with the parser's
    reason and does not hold up the folder."""
    offset = imap_server.log_path.stat().st_size
    dovecot.append(mail("Nobody sent this", From=""))
    after = mail("Somebody sent this")
    dovecot.append(after)
    wait_for(inbox, message_id(after))
    [skipped] = logged(imap_server.log_path, "imap_mail_skipped", offset)
    assert "not a mail we can read" in skipped["reason"]


def test_the_corpus_filed_in_the_folder_is_stored_as_its_clients_wrote_it(
    imap_server, dovecot, inbox
):
    """Each mail of the corpus (test_email_parse.py), filed as a mail server files it (CRLF
    line ends), is stored with the text and subject the parser tests expect, and its whole
    source kept as it was fetched (role ``original``)."""
    sources = {}
    for expected in MESSAGES:
        raw = (CORPUS / expected.file).read_bytes().replace(b"\r\n", b"\n")
        sources[expected.file] = raw.replace(b"\n", b"\r\n")
        dovecot.append(sources[expected.file])
    for expected in MESSAGES:
        source = sources[expected.file]
        message = wait_for(inbox, message_id(source))
        assert message["text"] == expected.text, expected.file
        assert message["metadata"]["email"]["subject"] == expected.subject
        [original] = [item for item in message["media"] if item["role"] == "original"]
        with imap_server.client() as client:
            assert client.get(original["url"]).content == source


def test_a_mail_posted_and_fetched_is_stored_once(imap_server, dovecot, inbox):
    """The same mail posted to the webhook and filed in the folder is stored once."""
    source = mail("Sent both ways")
    with imap_server.client(None) as client:
        posted = client.post(
            "/api/channels/email/webhook",
            content=source,
            headers={
                "Authorization": f"Bearer {INBOUND_SECRET}",
                "Content-Type": "message/rfc822",
            },
        )
    assert posted.status_code == 200, posted.text
    wait_for(inbox, message_id(source))
    dovecot.append(source)
    uid = max(dovecot.flags())
    wait_for_report(imap_server, lambda report: (report["figures"]["last_uid"] or 0) >= uid)
    assert len(inbox.messages_with_provider_id("email", message_id(source))) == 1


def test_a_new_uidvalidity_rereads_the_folder_without_loss_or_duplicate(tmp_path_factory, dovecot):
    """When the folder is recreated (a new UIDVALIDITY, every UID renumbered), the poller
    reads it again from the start: the mails it had stored are not stored again, and the
    new one, with a UID it had passed already, is stored."""
    folder = f"Recreated{uuid.uuid4().hex[:6]}"
    dovecot.create(folder)
    env = imap_env(dovecot, EMAIL_IMAP_FOLDER=folder)
    first, second, third = mail("one"), mail("two"), mail("three")
    with serving(tmp_path_factory.mktemp("uidvalidity"), env) as server:
        with server.client() as client:
            reader = InboxReader(client, "email")
            dovecot.append(first, folder)
            dovecot.append(second, folder)
            wait_for(reader, message_id(first))
            wait_for(reader, message_id(second))
            old = dovecot.uidvalidity(folder)
            wait_for_report(server, lambda report: report["figures"]["last_uid"] == 2)

            dovecot.delete(folder)  # the server ends the poller's session, which fails to
            wait_for_report(server, lambda report: report["figures"]["state"] == "error")
            dovecot.create(folder)  # reopen the folder until it is back, renumbered
            assert dovecot.uidvalidity(folder) != old
            dovecot.append(first, folder)
            dovecot.append(second, folder)
            dovecot.append(third, folder)  # UID 3: above the old position, but a new numbering

            wait_for(reader, message_id(third))
            new = dovecot.uidvalidity(folder)
            report = wait_for_report(
                server,
                lambda report: (
                    (report["figures"]["uidvalidity"], report["figures"]["last_uid"]) == (new, 3)
                ),
            )
            assert report["figures"]["skipped"] == 0
            for source in (first, second, third):
                assert len(reader.messages_with_provider_id("email", message_id(source))) == 1
        assert logged(server.log_path, "imap_uidvalidity_changed")


def test_a_restarted_worker_goes_on_from_its_position(tmp_path_factory, dovecot):
    """The job runner stopped and started again (``omnichannel worker``) takes only the mail
    that came meanwhile: nothing is stored twice, nothing fetched again."""
    folder = f"Restart{uuid.uuid4().hex[:6]}"
    dovecot.create(folder)
    env = imap_env(dovecot, EMAIL_IMAP_FOLDER=folder)
    server = ServerProcess(tmp_path_factory.mktemp("restart"), env, job_runner=False).start()
    try:
        with server.client() as client:
            reader = InboxReader(client, "email")
            first, second, later = mail("first"), mail("second"), mail("while stopped")
            worker = WorkerProcess(server).start()
            try:
                dovecot.append(first, folder)
                dovecot.append(second, folder)
                wait_for(reader, message_id(first))
                wait_for(reader, message_id(second))
                wait_for_report(server, lambda report: report["figures"]["last_uid"] == 2)
            finally:
                worker.stop()
            dovecot.append(later, folder)
            offset = worker.log_path.stat().st_size
            worker = WorkerProcess(server).start()
            try:
                wait_for(reader, message_id(later))
            finally:
                worker.stop()
            stored = logged(worker.log_path, "imap_mail_stored", offset)
            assert [entry["uid"] for entry in stored] == [3]
            for source in (first, second, later):
                assert len(reader.messages_with_provider_id("email", message_id(source))) == 1
    finally:
        server.stop()


def test_a_server_without_idle_is_asked_every_poll_seconds(tmp_path_factory, dovecot_without_idle):
    """With a server that does not offer IDLE, the poller asks every
    EMAIL_IMAP_POLL_SECONDS, and says so in ``/health``."""
    env = imap_env(dovecot_without_idle, EMAIL_IMAP_POLL_SECONDS="1")
    with serving(tmp_path_factory.mktemp("polling"), env) as server:
        report = wait_for_report(server, lambda report: report["figures"].get("state") == "polling")
        assert report["detail"] == "connected, asking for mail every 1 s (no IDLE)"
        assert report["figures"]["idle"] is False
        source = mail("Polled")
        dovecot_without_idle.append(source)
        with server.client() as client:
            started = time.monotonic()
            wait_for(InboxReader(client, "email"), message_id(source))
            assert time.monotonic() - started < 5


def test_a_refused_login_shows_in_health_and_is_tried_again(tmp_path_factory, dovecot):
    """A wrong password: the job's report says it is failing, with the server's refusal
    (never the password), and ``/health`` is degraded."""
    wrong = "wrong imap password"
    env = imap_env(dovecot, EMAIL_IMAP_PASSWORD=wrong)
    with serving(tmp_path_factory.mktemp("refused"), env) as server:
        report = wait_for_report(server, lambda report: report["figures"].get("state") == "error")
        assert report["ok"] is False
        assert "login refused" in report["figures"]["last_error"]
        assert wrong not in json.dumps(report) and wrong not in server.log()
        with server.client() as client:
            assert client.get("/health").json()["status"] == "degraded"


def _session(dovecot: Dovecot, security: Security, ca_file: Path | None, password: str = PASSWORD):
    port = dovecot.imaps_port if security is Security.SSL else dovecot.imap_port
    server = MailServer("127.0.0.1", port, security, "support@example.test", password)

    async def open_and_check() -> int:
        async with ImapSession.open(server, "INBOX", ca_file) as session:
            return session.uidvalidity

    return asyncio.run(open_and_check())


@pytest.mark.parametrize("security", [Security.SSL, Security.STARTTLS, Security.NONE])
def test_the_session_speaks_tls_starttls_or_plain(dovecot, security):
    """The poller's session opens over TLS from the start, over STARTTLS, or in the clear,
    and sees the folder's UIDVALIDITY."""
    assert _session(dovecot, security, dovecot.certificates.ca_file) == dovecot.uidvalidity()


@pytest.mark.parametrize("security", [Security.SSL, Security.STARTTLS])
def test_an_untrusted_certificate_is_refused(dovecot, security):
    """Without the test CA (EMAIL_TLS_CA_FILE), the server's certificate is refused, and
    the error says where a private CA goes."""
    with pytest.raises(ImapError, match="EMAIL_TLS_CA_FILE"):
        _session(dovecot, security, None)


def test_an_unreachable_server_is_an_imap_error(dovecot):
    """A port nobody listens on is an ImapError naming the server, not a crash."""
    server = MailServer("127.0.0.1", 1, Security.NONE, "support@example.test", PASSWORD)

    async def open_session() -> None:
        async with ImapSession.open(server, "INBOX", None):
            pass

    with pytest.raises(ImapError, match=r"127\.0\.0\.1:1\b"):
        asyncio.run(open_session())


class _FailingInbox:
    """The channel inbox as the poller uses it, storing every mail but one, on which it
    fails with ``error`` (every time, or the first ``times``), as a bug storing that mail,
    or a lost connection, would (the server's own inbox cannot be made to fail here: every
    mail known to have made it fail is fixed)."""

    def __init__(
        self, poison: str | None, error: Exception | None = None, times: int | None = None
    ) -> None:
        self.poison = poison
        self.error = error
        self.times = times
        self.attempts = 0
        self.stored: list[str] = []

    async def receive(self, result: WebhookResult) -> None:
        for inbound in result.messages:
            if inbound.provider_message_id == self.poison and self.error is not None:
                self.attempts += 1
                if self.times is None or self.attempts <= self.times:
                    raise self.error
            self.stored.append(inbound.provider_message_id)


class _JobContext:
    """What the poller asks of its module context: the configuration, its store, its
    channel's inbox."""

    owner = "email"

    def __init__(self, config: Config, store: ImapStore, inbox: _FailingInbox) -> None:
        self.config = config
        self._store = store
        self._inbox = inbox

    def store(self, interface: type) -> ImapStore:
        return self._store

    def channel_inbox(self) -> _FailingInbox:
        return self._inbox


def _run_poller(
    dovecot: Dovecot,
    database: object,
    inbox: _FailingInbox,
    sources: list[bytes],
    folder: str | None = None,
    until: str | None = None,
    seconds: float = WAIT_SECONDS,
) -> tuple[list[SkippedMail], Position | None]:
    """The poller as a unit, on the real Dovecot (``folder``, or one of its own, holding
    ``sources``) and the real SQLite store, until ``inbox`` stored ``until`` (the last of
    ``sources``), or ``seconds`` passed: the mails it skipped, and its position."""
    if folder is None:
        folder = f"Poison{uuid.uuid4().hex[:6]}"
        dovecot.create(folder)
    for source in sources:
        dovecot.append(source, folder)
    environ = imap_env(dovecot, EMAIL_IMAP_FOLDER=folder)
    config = Config.from_environ({k: v for k, v in environ.items() if v is not None}, dotenv=None)
    settings = parse_settings(config)
    assert settings.imap is not None
    last = until or message_id(sources[-1])

    async def scenario(store: ImapStore) -> tuple[list[SkippedMail], Position | None]:
        context = cast("ModuleContext", _JobContext(config, store, inbox))
        poller = ImapPoller(context, settings, settings.imap)
        control = JobControl()
        job = asyncio.create_task(poller.run(control))
        deadline = time.monotonic() + seconds
        while last not in inbox.stored and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        control.stop()
        await asyncio.wait_for(job, WAIT_SECONDS)
        return await store.skipped(poller.mailbox, 10), await store.position(poller.mailbox)

    return run_store(STORE, database, scenario)


def test_a_mail_that_fails_to_store_three_times_is_skipped_not_retried_forever(
    dovecot, sqlite_database
):
    """A mail whose storing fails with anything but a connection error (a bug it trips) is
    tried again after the usual pauses, then, at the third failure, skipped and recorded
    with the error, and the poller goes on with the mail after it: one poison mail never
    stalls the folder."""
    poison, after = mail("Poison"), mail("After the poison")
    error = UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")
    inbox = _FailingInbox(message_id(poison), error)
    skipped, position = _run_poller(dovecot, sqlite_database, inbox, [poison, after], seconds=60)
    assert inbox.stored == [message_id(after)]
    assert inbox.attempts == MAX_ATTEMPTS == 3
    [record] = skipped
    assert record.uid == 1
    assert record.reason.startswith("failed 3 times: UnicodeEncodeError")
    assert position is not None and position.last_uid == 2


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError("reset"),
        sqlite3.OperationalError("database is locked"),
        ServiceUnavailable("503 the Firestore backend is unavailable"),
    ],
    ids=["connection lost", "sqlite locked", "firestore unavailable"],
)
def test_a_mail_whose_storing_fails_in_the_store_is_never_skipped(dovecot, sqlite_database, error):
    """The store's errors (a lost connection, a locked database, Firestore's 503) are not
    the mail's fault: however many times they come, the mail is tried again after the
    usual pauses and stored once the store answers, never skipped."""
    mail_lost, after = mail("Stored once the store is back"), mail("After it")
    inbox = _FailingInbox(message_id(mail_lost), error, times=MAX_ATTEMPTS + 1)
    started = time.monotonic()
    skipped, position = _run_poller(dovecot, sqlite_database, inbox, [mail_lost, after], seconds=60)
    assert inbox.stored == [message_id(mail_lost), message_id(after)]
    assert skipped == []
    assert position is not None and position.last_uid == 2
    # four failures with no mail stored between them: pauses of 1 + 2 + 4 + 8 s
    assert time.monotonic() - started >= 15


class _ArrivalInbox(_FailingInbox):
    """Stores every mail; while it stores the first, a new mail is filed in the folder (as
    mail comes while the poller takes a backlog)."""

    def __init__(self, dovecot: Dovecot, folder: str, arriving: bytes) -> None:
        super().__init__(None)
        self.dovecot, self.folder, self.arriving = dovecot, folder, arriving

    async def receive(self, result: WebhookResult) -> None:
        if not self.stored:
            await asyncio.to_thread(self.dovecot.append, self.arriving, self.folder)
        await super().receive(result)


def test_a_mail_that_comes_while_others_are_taken_is_taken_at_once(dovecot, sqlite_database):
    """A mail filed while the poller takes others is announced (EXISTS) with the answer to
    one of its commands, and never again by the IDLE that follows: the folder is listed
    again before the IDLE, so it is taken at once, not at the next mail or after the
    IDLE's five minutes."""
    folder = f"Arrival{uuid.uuid4().hex[:6]}"
    dovecot.create(folder)
    first, second, arriving = mail("first"), mail("second"), mail("came meanwhile")
    inbox = _ArrivalInbox(dovecot, folder, arriving)
    _, position = _run_poller(
        dovecot, sqlite_database, inbox, [first, second], folder, until=message_id(arriving)
    )
    assert inbox.stored == [message_id(first), message_id(second), message_id(arriving)]
    assert position is not None and position.last_uid == 3

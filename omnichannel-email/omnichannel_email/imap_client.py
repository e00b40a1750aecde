"""One IMAP session of the poller (:mod:`omnichannel_email.imap`), over aioimaplib: connect
(TLS from the start, STARTTLS, or neither), log in, select the folder, list its mail by UID,
fetch a mail's size then its source, and wait for news with IDLE.

aioimaplib rather than the standard library's ``imaplib`` in a thread: IDLE (which
``imaplib`` lacks before Python 3.14) is built in, and a wait is an awaitable the runner can
cancel at once when the job's lease is lost, where a thread blocked in a socket read cannot
be. What aioimaplib lacks is added here: STARTTLS (the connection is upgraded in place with
``loop.start_tls``), and noticing a connection the server dropped during IDLE.

Mail is fetched with ``BODY.PEEK[]``, which leaves its flags (``\\Seen``) as they were, one
mail at a time, after its ``RFC822.SIZE`` says it is not too large. Errors are
:class:`ImapError`, whose message names what failed and never a password.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

from aioimaplib import IMAP4, STOP_WAIT_SERVER_PUSH, AioImapException, Command

from omnichannel_core.module import JobControl
from omnichannel_email.settings import MailServer, Security
from omnichannel_email.tls import certificate_problem, tls_context

COMMAND_SECONDS = 30.0
"""The longest a command (or a pause in a fetch's data) is waited for."""
UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.IGNORECASE)
FETCH_LINE = re.compile(rb"^\d+ FETCH \(", re.IGNORECASE)
UID = re.compile(rb"\bUID (\d+)", re.IGNORECASE)
SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)", re.IGNORECASE)
BODY_LITERAL = re.compile(rb"\bBODY\[\] \{\d+\}$", re.IGNORECASE)


class ImapError(Exception):
    """The IMAP server could not be used: a sentence naming what failed."""


def mailbox_name(server: MailServer, folder: str) -> str:
    """``user@host:port/folder``: the mailbox the poller reads, as its store names it."""
    return f"{server.username}@{server.host}:{server.port}/{folder}"


def _quoted(name: str) -> str:
    """A mailbox name as an IMAP quoted string."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(lines: list[bytes | bytearray]) -> str:
    """The server's own words (its last line), for an error message."""
    last = lines[-1] if lines else b""
    return bytes(last).decode("utf-8", "replace").strip() or "no reason given"


class ImapSession:
    """A logged-in session with ``folder`` selected; :meth:`open` makes one."""

    def __init__(self, client: IMAP4, folder: str, uidvalidity: int, lost: asyncio.Event):
        self.client = client
        self.folder = folder
        self.uidvalidity = uidvalidity
        """The folder's UIDVALIDITY, as the server said when it was last selected."""
        self._lost = lost
        self.announced = False
        """The server announced new mail (EXISTS) during the last :meth:`uids_after`."""

    @property
    def can_idle(self) -> bool:
        """Whether the server offers IDLE (else it is asked again every so often)."""
        return self.client.has_capability("IDLE")

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, server: MailServer, folder: str, ca_file: Path | None
    ) -> AsyncIterator[ImapSession]:
        """Connect, log in and select ``folder``; log out (as far as the server still
        listens) at the end."""
        lost = asyncio.Event()
        context = tls_context(ca_file) if server.security is not Security.NONE else None
        client = IMAP4(
            server.host,
            server.port,
            timeout=COMMAND_SECONDS,
            conn_lost_cb=lambda error: lost.set(),
            ssl_context=context if server.security is Security.SSL else None,
        )
        try:
            try:
                await client.wait_hello_from_server()
                if server.security is Security.STARTTLS:
                    assert context is not None
                    await _starttls(client, context, server.host)
                await _login(client, server)
                session = cls(client, folder, await _select(client, folder), lost)
            except (OSError, TimeoutError, AioImapException) as error:
                where = f"{server.host}:{server.port}"
                raise ImapError(
                    certificate_problem(error) or f"cannot reach {where}: {_describe(error)}"
                ) from error
            yield session
        finally:
            await _close(client, lost)

    async def uids_after(self, uid: int) -> list[int]:
        """The UIDs of the folder's mails above ``uid``, in order; :attr:`announced` tells
        whether the server announced new mail meanwhile, which the search may not list and
        the next IDLE will not announce again. aioimaplib drops an announcement that comes
        while no NOOP is pending, so one goes along with the search to catch it."""
        search = self._command(self.client.uid_search(f"UID {uid + 1}:*", charset=None))
        response, noop = await asyncio.gather(search, self._command(self.client.noop()))
        self.announced = any(bytes(line).upper().endswith(b"EXISTS") for line in noop.lines)
        numbers = (number for line in response.lines[:-1] for number in bytes(line).split())
        found = {int(number) for number in numbers if number.isdigit()}
        return sorted(number for number in found if number > uid)  # "n:*" names the last too

    async def size(self, uid: int) -> int | None:
        """The mail's size in bytes (``RFC822.SIZE``); None when it is gone."""
        response = await self._command(self.client.uid("fetch", str(uid), "(RFC822.SIZE)"))
        for line in response.lines:
            if isinstance(line, bytes) and FETCH_LINE.match(line):
                uid_match, size = UID.search(line), SIZE.search(line)
                if uid_match and size and int(uid_match.group(1)) == uid:
                    return int(size.group(1))
        return None

    async def fetch(self, uid: int) -> bytes | None:
        """The mail's source, its flags untouched (``BODY.PEEK[]``); None when it is gone."""
        response = await self._command(self.client.uid("fetch", str(uid), "(BODY.PEEK[])"))
        lines = response.lines
        for index, line in enumerate(lines[:-1]):
            if isinstance(line, bytes) and BODY_LITERAL.search(line):
                return bytes(lines[index + 1])
        return None

    async def select_again(self) -> None:
        """Select the folder again, for a fresh view of it and its UIDVALIDITY: a session
        may keep an old view of a folder recreated under it, and tell nothing."""
        try:
            self.uidvalidity = await _select(self.client, self.folder)
        except (OSError, TimeoutError, AioImapException) as error:
            raise ImapError(f"the server did not answer: {_describe(error)}") from error

    async def wait_for_mail(self, seconds: float, control: JobControl) -> bool:
        """IDLE until the server says the folder has new mail (True), ``seconds`` pass
        (servers drop a session idle for 30 minutes) or the runner stops (False);
        ImapError when the server drops the connection meanwhile."""
        try:
            idle = await asyncio.wait_for(self.client.idle_start(timeout=seconds), COMMAND_SECONDS)
        except (AioImapException, TimeoutError) as error:
            raise ImapError(f"IDLE refused: {_describe(error)}") from error
        stopping = asyncio.ensure_future(control.sleep(seconds))
        lost = asyncio.ensure_future(self._lost.wait())
        news = False
        try:
            while True:
                push = asyncio.ensure_future(self.client.wait_server_push(seconds + 5))
                await asyncio.wait({push, stopping, lost}, return_when=asyncio.FIRST_COMPLETED)
                if not push.done():
                    push.cancel()
                    break
                lines = push.result()
                if lines == STOP_WAIT_SERVER_PUSH:
                    break  # the IDLE's time is up
                if any(bytes(line).upper().startswith(b"BYE") for line in lines):
                    raise ImapError(f"the server ended the session: {_text(lines)}")
                if any(bytes(line).upper().endswith(b"EXISTS") for line in lines):
                    news = True
                    break
        except TimeoutError:
            pass  # no word at all in seconds + 5: DONE tells whether it still listens
        finally:
            stopping.cancel()
            lost.cancel()
        if self._lost.is_set():
            raise ImapError("the server closed the connection")
        self.client.idle_done()
        try:
            await asyncio.wait_for(idle, COMMAND_SECONDS)
        except (AioImapException, TimeoutError) as error:
            raise ImapError(f"IDLE did not end: {_describe(error)}") from error
        queue = self.client.protocol.idle_queue
        while not queue.empty():  # what came after the wake-up: fetched anyway
            queue.get_nowait()
        return news

    async def _command(self, pending: Awaitable[Any]) -> Any:
        """Await a command; its response (aioimaplib's), or ImapError unless the server
        answered OK."""
        try:
            response = await pending
        except (OSError, TimeoutError, AioImapException) as error:
            raise ImapError(f"the server did not answer: {_describe(error)}") from error
        if response.result != "OK":
            raise ImapError(f"the server refused: {_text(response.lines)}")
        return response


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def _starttls(client: IMAP4, context: ssl.SSLContext, host: str) -> None:
    """Upgrade the connection to TLS (RFC 3501's STARTTLS), then ask the capabilities again,
    as the RFC wants: the server may offer more once the connection is private."""
    protocol = client.protocol
    if "STARTTLS" not in protocol.capabilities:
        raise ImapError(f"{host} does not offer STARTTLS (EMAIL_IMAP_SECURITY)")
    command = Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
    response = await asyncio.wait_for(protocol.execute(command), COMMAND_SECONDS)
    if response.result != "OK":
        raise ImapError(f"STARTTLS refused: {_text(response.lines)}")
    loop = asyncio.get_running_loop()
    protocol.transport = await loop.start_tls(
        protocol.transport, protocol, context, server_hostname=host
    )
    await asyncio.wait_for(protocol.capability(), COMMAND_SECONDS)


async def _login(client: IMAP4, server: MailServer) -> None:
    assert server.username is not None and server.password is not None  # settings check it
    login = await client.login(server.username, server.password)
    if login.result != "OK":
        raise ImapError(f"login refused (EMAIL_IMAP_USERNAME): {_text(login.lines)}")
    await asyncio.wait_for(client.protocol.capability(), COMMAND_SECONDS)  # may differ now


async def _select(client: IMAP4, folder: str) -> int:
    """Select ``folder``; its UIDVALIDITY."""
    selected = await client.select(_quoted(folder))
    if selected.result != "OK":
        raise ImapError(f"cannot open folder {folder!r}: {_text(selected.lines)}")
    for line in selected.lines:
        found = UIDVALIDITY.search(bytes(line))
        if found:
            return int(found.group(1))
    raise ImapError(f"the server gave folder {folder!r} no UIDVALIDITY")


async def _close(client: IMAP4, lost: asyncio.Event) -> None:
    """Log out when the server still listens; then close the connection in any case."""
    with contextlib.suppress(Exception):
        if not lost.is_set() and client.get_state() in ("AUTH", "SELECTED"):
            await asyncio.wait_for(client.logout(), 5)
    transport = client.protocol.transport
    if transport is not None:
        transport.close()

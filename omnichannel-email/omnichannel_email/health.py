"""The email channel's health: what is missing or unusable, and whether the mail servers
take our logins.

The SMTP server is asked as a send would (TLS or STARTTLS, then AUTH when a username is set,
then QUIT: no mail is sent); the IMAP server, when ``EMAIL_IMAP_HOST`` is set, with a LOGIN
then LOGOUT. Each answer is kept a minute per settings in each gunicorn worker, single-flight,
through the core's :class:`~omnichannel_core.channel.CredentialChecker`, and each check ends
within :data:`CHECK_SECONDS`: a load balancer polling ``/health`` never floods the mail
servers, and never waits on a slow one for long. ``checks`` holds ``smtp`` and ``imap``
(each's outcome) beside ``credentials`` (the worst of them).
"""

from __future__ import annotations

import asyncio
import imaplib
import ssl
import time
from contextlib import suppress

from omnichannel_core.channel import (
    ACCEPTED,
    CHECKING,
    REJECTED,
    UNREACHABLE,
    ChannelHealth,
    CredentialCheck,
    CredentialChecker,
    SendFailed,
    credentials_health,
)
from omnichannel_email.settings import EmailSettings, MailServer, Security
from omnichannel_email.smtp import LOGIN_STEP, smtp_session
from omnichannel_email.tls import certificate_problem, tls_context

CHECK_TTL_SECONDS = 60.0
CHECK_SECONDS = 4.0
"""The longest one check takes, under the core's 5 s limit on a health hook; the SMTP and
IMAP checks run side by side."""
COMMAND_SECONDS = 2.0
"""Each step of a check: connecting, the greeting, each command (the IMAP login gets what
is left of :data:`CHECK_SECONDS`, less :data:`LOGIN_MARGIN_SECONDS`)."""
LOGIN_MARGIN_SECONDS = 0.2
NOT_OFFERED = ("smtp_starttls_unavailable", "smtp_auth_unavailable")
SEVERITY = (ACCEPTED, CHECKING, UNREACHABLE, REJECTED)

_checker = CredentialChecker(CHECK_TTL_SECONDS, "login check in progress")


def _server_key(kind: str, server: MailServer, settings: EmailSettings) -> tuple[object, ...]:
    """What a check's answer depends on: a change to any of it is a new check."""
    return (
        kind,
        server.host,
        server.port,
        server.security,
        server.username,
        server.password,
        settings.ca_file,
        settings.message_id_domain,
    )


async def _ask_smtp(server: MailServer, settings: EmailSettings) -> CredentialCheck:
    what = "SMTP login" if server.username is not None else "SMTP server (no login set)"
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            async with smtp_session(server, settings, COMMAND_SECONDS):
                pass
    except SendFailed as error:
        # refused: the login answered 5xx, or the server cannot take a login as configured
        refused = not error.retryable and (
            error.details.get("smtp_step") == LOGIN_STEP or error.code in NOT_OFFERED
        )
        return CredentialCheck(REJECTED if refused else UNREACHABLE, f"{what}: {error.message}")
    except TimeoutError:
        return CredentialCheck(UNREACHABLE, f"{what}: no answer within {CHECK_SECONDS:g} s")
    return CredentialCheck(ACCEPTED, f"{what} accepted by {server.host}")


def imap_login(server: MailServer, context: ssl.SSLContext) -> CredentialCheck:
    """Log in to the IMAP server and out again (blocking: run it in a thread)."""
    where = f"IMAP server {server.host}:{server.port}"
    deadline = time.monotonic() + CHECK_SECONDS - LOGIN_MARGIN_SECONDS
    try:
        if server.security is Security.SSL:
            client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                server.host, server.port, ssl_context=context, timeout=COMMAND_SECONDS
            )
        else:
            client = imaplib.IMAP4(server.host, server.port, timeout=COMMAND_SECONDS)
        try:
            if server.security is Security.STARTTLS:
                if "STARTTLS" not in client.capabilities:
                    return CredentialCheck(
                        REJECTED, f"{where} does not offer STARTTLS (EMAIL_IMAP_SECURITY)"
                    )
                client.starttls(ssl_context=context)
            # a refused login is answered late on purpose (Dovecot waits 2 s): give the login
            # what is left of the check, not one step's COMMAND_SECONDS
            client.sock.settimeout(max(deadline - time.monotonic(), 0.5))
            client.login(server.username or "", server.password or "")
        finally:
            with suppress(imaplib.IMAP4.error, OSError):
                client.logout()
    except imaplib.IMAP4.abort as error:  # the connection broke: before IMAP4.error
        return CredentialCheck(UNREACHABLE, f"{where}: connection lost ({error})")
    except imaplib.IMAP4.error as error:
        said = error.args[0] if error.args else ""
        text = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
        return CredentialCheck(
            REJECTED,
            f"{where} refused the login ({text}); check EMAIL_IMAP_USERNAME and"
            " EMAIL_IMAP_PASSWORD",
        )
    except OSError as error:
        problem = certificate_problem(error)
        return CredentialCheck(
            UNREACHABLE, f"{where}: {problem or 'could not be reached: ' + type(error).__name__}"
        )
    return CredentialCheck(ACCEPTED, f"IMAP login accepted by {server.host}")


async def _ask_imap(server: MailServer, settings: EmailSettings) -> CredentialCheck:
    context = tls_context(settings.ca_file)
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            return await asyncio.to_thread(imap_login, server, context)
    except TimeoutError:  # the thread ends on its own socket timeouts
        return CredentialCheck(UNREACHABLE, "IMAP server: no answer in time")


def _combined(checks: dict[str, CredentialCheck]) -> CredentialCheck:
    """One answer for the report: the worst outcome, every detail, the oldest time."""
    worst = max(checks.values(), key=lambda check: SEVERITY.index(check.outcome))
    times = [check.checked_at for check in checks.values() if check.checked_at is not None]
    return CredentialCheck(
        outcome=worst.outcome,
        detail="; ".join(check.detail for check in checks.values()),
        checked_at=min(times) if len(times) == len(checks) else None,
        facts={kind: check.outcome for kind, check in checks.items()},
    )


async def channel_health(settings: EmailSettings) -> ChannelHealth:
    """The report: what is missing or invalid, then what the SMTP and IMAP servers said of
    the logins."""
    asks = {}
    if settings.smtp is not None:
        smtp = settings.smtp
        asks["smtp"] = _checker.check_async(
            _server_key("smtp", smtp, settings), lambda: _ask_smtp(smtp, settings)
        )
    if settings.imap is not None and settings.imap.username is not None:
        imap = settings.imap
        asks["imap"] = _checker.check_async(
            _server_key("imap", imap, settings), lambda: _ask_imap(imap, settings)
        )
    if not asks:
        return credentials_health(settings, None)
    answers = await asyncio.gather(*asks.values())
    return credentials_health(settings, _combined(dict(zip(asks, answers, strict=True))))

"""Submitting an answer over SMTP: one attempt, and what the server said of it in the terms
of the outbox (``send`` in ``omnichannel_core.hookspecs``), which retries and paces.

Each send opens its own session: TLS from the start (``ssl``) or upgraded with STARTTLS
(``starttls``; a server that does not offer it is refused, so neither the password nor the
mail ever crosses in clear), or neither (``none``), then AUTH when ``EMAIL_SMTP_USERNAME`` is
set. Certificates are verified (:mod:`omnichannel_email.tls`). Then ``MAIL FROM`` (our
address: bounces come back to the mailbox), ``RCPT TO``, ``DATA``. A recipient domain that
is not ASCII goes in its IDNA form, so no server needs SMTPUTF8.

How an attempt ends:

- the server took the mail (250 after the body): sent, with the provider id
  ``{message.id}@{domain}``, the Message-ID it carries;
- no connection, a lost connection or a timeout before the body was sent, or a 4xx answer
  at any step ("try later", RFC 5321 section 4.2.5: the server did not take it):
  :class:`SendFailed` ``retryable``, retried by the outbox;
- a 5xx answer at any step: :class:`SendFailed`, not retried, with the server's text. Its
  ``error_code`` is the enhanced status code when the server gave one (``5.1.1``: the
  mailbox does not exist, as a bounce for the same reason says), else ``smtp_`` and the
  reply code (``smtp_550``); ``smtp_code`` in the details is always the reply code;
- the connection lost, or no answer in time, once ``DATA`` was sent (a loss before its
  354 counts too: the safe side): the server may have the mail, and sending again could
  deliver it twice, so :class:`SendOutcomeUnknown` (the message is then in doubt until a
  bounce fails it or the confirmation deadline fails it as not confirmed);
- a configuration the server cannot work with: :class:`SendFailed` not retried, naming the
  setting: ``smtp_starttls_unavailable``, ``smtp_auth_unavailable``, ``smtp_tls_failed``
  (a certificate not trusted, TLS spoken to a plain port). No connection at all is
  ``smtp_unreachable`` (retried). Before any of it, :mod:`omnichannel_email.compose` may
  fail the message with ``invalid_recipient``, ``template_error``, ``media_not_found`` or
  ``message_too_large``.

Neither the password nor the mail is logged.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import aiosmtplib
from aiosmtplib import (
    SMTPException,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from omnichannel_core.channel import (
    ChannelInbox,
    OutboundMessage,
    Reach,
    SendFailed,
    SendOutcomeUnknown,
    SendPolicy,
    SendResult,
)
from omnichannel_email.compose import compose
from omnichannel_email.settings import EmailSettings, MailServer, Security
from omnichannel_email.tls import certificate_problem, tls_context

COMMAND_TIMEOUT_SECONDS = 30.0
"""Connecting, the greeting and each command's answer."""
DATA_TIMEOUT_SECONDS = 300.0
"""Sending the mail and the server's answer to it: a large mail on a slow link, and a
server that scans it before it answers."""
SEND_RATE = 2.0
"""Mails per second: within what submission servers take from one account (SES starts
at 1 a second in its sandbox, 14 after; Gmail and Microsoft 365 count per day). Raise it with
``OMNICHANNEL_SEND_RATES=email=10``."""
RETRY_SECONDS = 24 * 3600.0
"""Mail is not chat: an answer that waits for a server to come back is still worth sending
a day later (mail servers themselves retry for days)."""
CONFIRM_SECONDS = 3600.0
"""A mail in doubt has no delivery report to wait for, only a bounce: within the hour,
failed as not confirmed, for an agent to look and send again."""
ENHANCED_STATUS = re.compile(r"([245]\.\d{1,3}\.\d{1,3})(?:\s|$)")
HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\Z")


def smtp_refused(
    error: SMTPResponseException, what: str, hint: str = "", step: str = "data"
) -> SendFailed:
    """A server's answer other than success: failed with its code and text (and ``hint``)
    when it is 5xx; else retryable (4xx: the server did not take it and says to try later;
    an answer that is neither comes before the mail, which ``submit`` never sends after
    one). ``smtp_step`` in the details says which step it answered (connect, starttls,
    login, mail, rcpt, data)."""
    text = " ".join(error.message.split())
    enhanced = ENHANCED_STATUS.match(text)
    code = enhanced.group(1) if enhanced else f"smtp_{error.code}"
    retryable = not 500 <= error.code < 600
    return SendFailed(
        f"the SMTP server refused {what}: {error.code} {text}".rstrip()
        + ("" if retryable or not hint else f" ({hint})"),
        code=code,
        retryable=retryable,
        smtp_code=error.code,
        smtp_enhanced_status=enhanced.group(1) if enhanced else None,
        smtp_step=step,
    )


def _tls_mismatch(error: BaseException | None) -> bool:
    """A TLS handshake that failed for good (TLS spoken to a port that speaks plain SMTP,
    no protocol in common), not a connection lost during it."""
    transient = ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError
    for _ in range(8):
        if error is None:
            return False
        if isinstance(error, ssl.SSLError) and not isinstance(error, transient):
            return True
        error = error.__cause__ or error.__context__
    return False


def _unreachable(server: MailServer, error: BaseException) -> SendFailed:
    problem = certificate_problem(error)
    if problem is not None:
        return SendFailed(f"{server.host}:{server.port}: {problem}", code="smtp_tls_failed")
    if _tls_mismatch(error):
        return SendFailed(
            f"no TLS session with the SMTP server {server.host}:{server.port}"
            f" ({type(error).__name__}): do EMAIL_SMTP_SECURITY and EMAIL_SMTP_PORT match"
            " (ssl: 465, starttls: 587)?",
            code="smtp_tls_failed",
        )
    return SendFailed(
        f"the SMTP server {server.host}:{server.port} could not be reached: {type(error).__name__}",
        code="smtp_unreachable",
        retryable=True,
    )


LOGIN_STEP = "login"


def _session_problem(server: MailServer, error: Exception, step: str) -> SendFailed:
    """What went wrong opening the session (``step``: connect, starttls or login)."""
    if isinstance(error, SMTPResponseException):
        hint = "check EMAIL_SMTP_USERNAME and EMAIL_SMTP_PASSWORD" if step == LOGIN_STEP else ""
        return smtp_refused(error, f"the {step}", hint, step)
    return _unreachable(server, error)


def _not_offered(server: MailServer, what: str, advice: str, code: str) -> SendFailed:
    return SendFailed(
        f"the SMTP server {server.host}:{server.port} does not offer {what}; {advice}",
        code=code,
    )


async def _open(client: aiosmtplib.SMTP, server: MailServer) -> None:
    step = "connect"
    try:
        await client.connect()
        if server.security is Security.STARTTLS:
            step = "starttls"
            await client.ehlo()
            if not client.supports_extension("starttls"):
                raise _not_offered(
                    server,
                    "STARTTLS",
                    "set EMAIL_SMTP_SECURITY to ssl (port 465), or to none for a relay that"
                    " needs no encryption",
                    "smtp_starttls_unavailable",
                )
            await client.starttls()
        if server.username is not None:
            step = LOGIN_STEP
            await client.ehlo()
            if not client.supports_extension("auth"):
                raise _not_offered(
                    server,
                    "a login (AUTH)" + (" without TLS" if server.security is Security.NONE else ""),
                    "unset EMAIL_SMTP_USERNAME for a relay that needs none",
                    "smtp_auth_unavailable",
                )
            await client.login(server.username, server.password or "")
    except (SMTPException, OSError) as error:
        raise _session_problem(server, error, step) from None


@asynccontextmanager
async def smtp_session(
    server: MailServer, settings: EmailSettings, command_seconds: float = COMMAND_TIMEOUT_SECONDS
) -> AsyncIterator[aiosmtplib.SMTP]:
    """A connected session, secured as ``EMAIL_SMTP_SECURITY`` says and logged in when a
    username is set; SendFailed when it cannot be had. Ended with QUIT when the server is
    still talking to us (it answered, even with a refusal), else just closed."""
    client = aiosmtplib.SMTP(
        hostname=server.host,
        port=server.port,
        use_tls=server.security is Security.SSL,
        start_tls=False,  # _open does it, and refuses a server that does not offer it
        tls_context=tls_context(settings.ca_file),
        local_hostname=_ehlo_name(settings),
        timeout=command_seconds,
    )
    try:
        await _open(client, server)
        yield client
    except SendFailed:
        await _quit(client, command_seconds)
        raise
    except BaseException:  # lost, timed out, in doubt, cancelled: nothing more to say
        client.close()
        raise
    else:
        await _quit(client, command_seconds)


def _ehlo_name(settings: EmailSettings) -> str | None:
    """The name we greet with: the Message-ID domain (a container's own name is often no
    fully qualified name, which a server may refuse); this machine's name without one."""
    name = settings.message_id_domain
    return name if name is not None and HOST_NAME.match(name) else None


async def _quit(client: aiosmtplib.SMTP, seconds: float) -> None:
    if client.is_connected:
        with suppress(SMTPException, OSError):
            await client.quit(timeout=seconds)
    client.close()


async def submit(
    server: MailServer,
    settings: EmailSettings,
    sender: str,
    mail: bytes,
    recipient: str,
) -> None:
    """One SMTP transaction: the mail to ``recipient``; raises as the module says."""
    async with smtp_session(server, settings) as client:
        options = [f"SIZE={len(mail)}"] if client.supports_extension("size") else []
        step = "mail"
        try:
            await client.mail(sender, options=options)
            step = "rcpt"
            await client.rcpt(recipient)
        except SMTPResponseException as error:
            what = "the recipient" if step == "rcpt" else "the sender"
            raise smtp_refused(error, what, step=step) from None
        except (SMTPServerDisconnected, SMTPTimeoutError, OSError) as error:
            raise _unreachable(server, error) from None
        try:
            await client.data(mail, timeout=DATA_TIMEOUT_SECONDS)
        except SMTPResponseException as error:
            if 400 <= error.code < 600:  # an answer: the server did not take it
                raise smtp_refused(error, "the mail", step="data") from None
            raise _in_doubt(f"an answer the client could not read ({error.code})") from None
        except (SMTPServerDisconnected, SMTPTimeoutError, OSError) as error:
            raise _in_doubt(type(error).__name__) from None


def _in_doubt(why: str) -> SendOutcomeUnknown:
    return SendOutcomeUnknown(
        f"the SMTP server's answer to the mail was lost ({why}); it may have been sent:"
        " a bounce will fail it, else it is failed as not confirmed after the deadline"
    )


async def deliver(
    message: OutboundMessage, settings: EmailSettings, channel: str, inbox: ChannelInbox
) -> SendResult:
    """Send ``message`` once, threaded on its conversation (:mod:`omnichannel_email.compose`);
    ChannelUnavailable when sending is not configured."""
    sender, server = settings.require_sending(channel)
    outgoing = await compose(message, settings, inbox)
    await submit(server, settings, sender, outgoing.raw, outgoing.recipient)
    return SendResult(provider_message_id=f"{message.id}@{settings.message_id_domain}")


def send_policy(settings: EmailSettings) -> SendPolicy:
    """One pace for the channel (one SMTP account), a day of retries, an hour of doubt, and
    never sent again in doubt: SMTP does not dedupe, a second submission is a second mail."""
    return SendPolicy(
        rate=SEND_RATE,
        retry_for=RETRY_SECONDS,
        confirm_within=CONFIRM_SECONDS,
        resend_safe=False,
        reaches=(Reach("email", subject=True),),
    )

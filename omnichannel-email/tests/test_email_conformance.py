"""The email channel passes the conformance suite every channel runs
(omnichannel_core.testing.ChannelConformance): the real server, a real SMTP server
(aiosmtpd, STARTTLS and AUTH required, as ``smtp_server.py`` runs it) as the provider, and
raw mails posted to the webhook as a mail provider posts them (``message/rfc822`` with
``Authorization: Bearer <EMAIL_INBOUND_SECRET>``).

Email has no delivery receipts (a bounce comes as a mail, through ``receive``), so the
channel has no ``status`` hook and the suite's status test is skipped; its generic status
route answers 501. The suite sends only in that test, so a send through the messages
route is checked here as well, against the SMTP server.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import attrs
import httpx
from smtp_server import (
    FROM_ADDRESS,
    FROM_NAME,
    HOST,
    INBOUND_SECRET,
    SmtpServer,
    make_certificates,
)

from omnichannel_core.testing import ChannelConformance, WebhookCall

EMAIL_VARIABLES = (
    "EMAIL_FROM_ADDRESS",
    "EMAIL_FROM_NAME",
    "EMAIL_MESSAGE_ID_DOMAIN",
    "EMAIL_SMTP_HOST",
    "EMAIL_SMTP_PORT",
    "EMAIL_SMTP_SECURITY",
    "EMAIL_SMTP_USERNAME",
    "EMAIL_SMTP_PASSWORD",
    "EMAIL_INBOUND_SECRET",
    "EMAIL_IMAP_HOST",
    "EMAIL_IMAP_PORT",
    "EMAIL_IMAP_SECURITY",
    "EMAIL_IMAP_USERNAME",
    "EMAIL_IMAP_PASSWORD",
    "EMAIL_IMAP_FOLDER",
    "EMAIL_IMAP_POLL_SECONDS",
    "EMAIL_MAX_MESSAGE_BYTES",
    "EMAIL_DEFAULT_SUBJECT",
    "EMAIL_TEMPLATES_DIR",
    "EMAIL_TLS_CA_FILE",
)
"""Every setting of the channel (docs/channels/email.md), unset on the unconfigured server."""


@attrs.frozen
class SmtpProvider:
    """The provider the suite starts: the SMTP server, and a URL naming it."""

    url: str
    server: SmtpServer


_RUNNING: dict[str, SmtpServer] = {}
"""The SMTP servers started by :meth:`TestEmailConformance.provider`, by their URL: the
suite hands ``environ`` the URL only, and the settings need the server's CA file too."""


def mail(message_id: str, sender: str, text: str) -> bytes:
    """A plain mail from ``sender`` to the business, as a mail provider forwards it."""
    head = {
        "From": f"Conformance <{sender}>",
        "To": f"{FROM_NAME} <{FROM_ADDRESS}>",
        "Subject": "Conformance",
        "Date": "Mon, 07 Dec 2026 09:00:00 +0000",
        "Message-ID": f"<{message_id}>",
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=utf-8",
    }
    lines = [f"{name}: {value}" for name, value in head.items()]
    return "\r\n".join([*lines, "", text, ""]).encode()


def posted(body: bytes, secret: str | None = INBOUND_SECRET) -> WebhookCall:
    """``body`` posted to the webhook, with ``secret`` as the bearer token (None: none)."""
    headers = {"Content-Type": "message/rfc822"}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    return WebhookCall("webhook", body, headers)


class TestEmailConformance(ChannelConformance):
    channel = "email"

    @contextmanager
    def provider(self) -> Iterator[SmtpProvider]:
        """The SMTP server, with a certificate of a CA of its own (``EMAIL_TLS_CA_FILE``)."""
        with (
            tempfile.TemporaryDirectory(prefix="conformance-smtp-") as folder,
            SmtpServer(make_certificates(Path(folder))) as server,
        ):
            url = f"smtp://{HOST}:{server.port}"
            _RUNNING[url] = server
            try:
                yield SmtpProvider(url, server)
            finally:
                del _RUNNING[url]

    def environ(self, provider_url: str) -> Mapping[str, str | None]:
        return {
            "EMAIL_FROM_ADDRESS": FROM_ADDRESS,
            "EMAIL_FROM_NAME": FROM_NAME,
            "EMAIL_INBOUND_SECRET": INBOUND_SECRET,
            **_RUNNING[provider_url].env(),
        }

    def unconfigured_environ(self) -> Mapping[str, str | None]:
        return dict.fromkeys(EMAIL_VARIABLES)

    def new_address(self) -> str:
        return f"conformance-{uuid.uuid4().hex[:16]}@customer.example.org"

    def new_provider_message_id(self) -> str:
        """A Message-ID, without its brackets: how the channel names a mail it took."""
        return f"conformance-{uuid.uuid4().hex}@mail.example.org"

    def inbound(self, provider_message_id: str, sender: str, text: str) -> WebhookCall:
        return posted(mail(provider_message_id, sender, text))

    def forge(self, call: WebhookCall) -> WebhookCall:
        """The mail with a bearer token that is not the inbound secret."""
        return posted(call.body, "not-the-inbound-secret-0123456789")

    def unsign(self, call: WebhookCall) -> WebhookCall:
        """The mail without an Authorization header."""
        return posted(call.body, None)

    def test_sent_message_reaches_the_smtp_server(
        self,
        conformance_public: httpx.Client,
        conformance_api: httpx.Client,
        conformance_hooks: frozenset[str],
        conformance_provider: SmtpProvider,
    ) -> None:
        """A message sent through the messages route (after the customer wrote) is taken
        by the SMTP server once, to the customer, under the Message-ID that is its
        provider id, threaded under the customer's mail."""
        recipient = self.new_address()
        message = self._sent(conformance_public, conformance_api, conformance_hooks, recipient)
        [received] = conformance_provider.server.wait_for(recipient)
        assert received.recipients == (recipient,)
        assert received.mail_from == FROM_ADDRESS
        headers = received.message
        assert headers["Message-ID"] == f"<{message['provider_message_id']}>"
        assert headers["In-Reply-To"] is not None, "the answer is not threaded"

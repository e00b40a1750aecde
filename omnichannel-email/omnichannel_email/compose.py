"""An answer as a MIME message, threaded under the conversation's earlier mail.

- ``Message-ID: <{message.id}@{domain}>``: ours, deterministic, so a bounce or a reply
  naming it finds the message even when the SMTP answer was lost;
- ``In-Reply-To``, ``References`` and ``Subject``: :mod:`omnichannel_email.thread_headers`.

A message flagged ``automated`` is sent with ``Auto-Submitted: auto-generated`` (RFC 3834),
so the customer's robots do not answer it; an agent's answer carries none. Media the media
store keeps are attached; a link to media it does not keep goes in the body.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import SMTP, EmailPolicy
from email.utils import format_datetime
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import attrs
import structlog

from omnichannel_core.channel import (
    ChannelInbox,
    Media,
    NotFound,
    OutboundMessage,
    SendFailed,
)
from omnichannel_email.settings import EmailSettings
from omnichannel_email.templates import Bodies, Link, message_template, render_bodies
from omnichannel_email.thread_headers import (
    earlier_messages,
    email_metadata,
    subject_of,
    thread_ids,
)

log = structlog.get_logger("omnichannel.email")

MIME_TYPE = re.compile(r"([a-z0-9][a-z0-9!#$&^_.+-]*)/([a-z0-9][a-z0-9!#$&^_.+-]*)\Z")
FILENAME_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]+")


class MessageIdsHeader(UnstructuredHeader):
    """``In-Reply-To`` and ``References``: msg-ids folded only at the spaces between them.

    The email package folds an unstructured header that has a token longer than a line
    (a long Message-ID, as Gmail's are) into RFC 2047 encoded words, which no client reads
    back as a Message-ID: the answer would lose its thread.
    """

    name: str  # BaseHeader's, which the registry mixes in

    def fold(self, *, policy: Any) -> str:
        lines, line = [], f"{self.name}:"
        for token in str(self).split():
            if len(line) + 1 + len(token) > policy.max_line_length and line != f"{self.name}:":
                lines.append(line)
                line = ""
            line += f" {token}"
        lines.append(line)
        return str(policy.linesep.join(lines) + policy.linesep)


def _policy() -> EmailPolicy[EmailMessage]:
    registry = HeaderRegistry()  # our own: never the email package's shared one
    for name in ("in-reply-to", "references"):
        registry.map_to_type(name, cast("type[BaseHeader]", MessageIdsHeader))
    # 7bit: text goes quoted-printable or base64, so no server needs 8BITMIME
    return SMTP.clone(header_factory=registry, cte_type="7bit")


POLICY = _policy()


@attrs.frozen
class Outgoing:
    """A composed answer: the bytes to submit and how."""

    raw: bytes
    recipient: str


@attrs.frozen
class Part:
    """An attachment's bytes and how to name them."""

    content: bytes
    maintype: str
    subtype: str
    filename: str


def recipient_of(to: str) -> str:
    """The addr-spec of ``to``, its domain in ASCII (IDNA: ``exämple.org`` is
    ``xn--exmple-cua.org``), so every server takes it; SendFailed (``invalid_recipient``)
    when it is no address, or has a local part that is not ASCII (RFC 6531, which not every
    server takes and the email package does not write)."""
    try:
        address = Address(addr_spec=to.strip())
        domain = address.domain.encode("idna").decode("ascii")
    except (HeaderParseError, ValueError, IndexError, UnicodeError):
        address = None
    if address is None or not address.username or "." not in address.domain:
        raise SendFailed(
            f"recipient {to!r} is not an email address like ana@example.com (with ASCII"
            " before the @)",
            code="invalid_recipient",
        )
    return Address(username=address.username, domain=domain).addr_spec


def _part_type(media: Media) -> tuple[str, str]:
    match = MIME_TYPE.match((media.content_type or "").split(";")[0].strip().lower())
    if match is None or match.group(1) in ("multipart", "message"):
        # a message or multipart body would need its own structure: sent as bytes
        return "application", "octet-stream"
    return match.group(1), match.group(2)


def _filename(media: Media, number: int) -> str:
    name = FILENAME_UNSAFE.sub("_", media.filename or "").strip(" .")
    if not name:
        name = FILENAME_UNSAFE.sub("_", unquote(urlsplit(media.url).path.rpartition("/")[2]))
    return name.strip(" .") or f"attachment-{number}"


async def attachments_of(
    inbox: ChannelInbox, message: OutboundMessage, max_bytes: int
) -> tuple[list[Part], tuple[Link, ...]]:
    """The media the store keeps, read as attachments (SendFailed ``message_too_large``
    past ``max_bytes`` in all, ``media_not_found`` for one the store lost), and links to the
    others."""
    parts: list[Part] = []
    links: list[Link] = []
    total = 0
    for number, media in enumerate(message.media, start=1):
        if media.id is None:
            if urlsplit(media.url).scheme in ("http", "https"):
                links.append(Link(_filename(media, number), media.url))
            continue
        if media.size is not None and total + media.size > max_bytes:
            raise _too_large(max_bytes)
        try:
            content = await inbox.read_media(media)
        except NotFound:
            raise SendFailed(
                f"attachment {media.id} is no longer in the media store", code="media_not_found"
            ) from None
        total += len(content)
        if total > max_bytes:
            raise _too_large(max_bytes)
        maintype, subtype = _part_type(media)
        parts.append(Part(content, maintype, subtype, _filename(media, number)))
    return parts, tuple(links)


def _too_large(max_bytes: int) -> SendFailed:
    return SendFailed(
        f"the attachments are larger than EMAIL_MAX_MESSAGE_BYTES ({max_bytes} bytes)",
        code="message_too_large",
    )


@attrs.frozen
class Envelope:
    """Everything of an answer but its bodies and attachments."""

    sender: Address
    recipient: str
    subject: str
    message_id: str
    in_reply_to: str | None
    references: tuple[str, ...]
    automated: bool


def build_mail(envelope: Envelope, bodies: Bodies, parts: Sequence[Part]) -> EmailMessage:
    """The MIME message: text and HTML alternatives, then the attachments."""
    mail = EmailMessage(policy=POLICY)
    mail["From"] = envelope.sender
    mail["To"] = envelope.recipient
    mail["Subject"] = envelope.subject
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = f"<{envelope.message_id}>"
    if envelope.in_reply_to is not None:
        mail["In-Reply-To"] = f"<{envelope.in_reply_to}>"
    if envelope.references:
        mail["References"] = " ".join(f"<{ref}>" for ref in envelope.references)
    if envelope.automated:
        mail["Auto-Submitted"] = "auto-generated"
        mail["X-Auto-Response-Suppress"] = "All"  # Exchange's own out-of-office rule
    mail.set_content(bodies.text)
    mail.add_alternative(bodies.html, subtype="html")
    for part in parts:
        mail.add_attachment(
            part.content, maintype=part.maintype, subtype=part.subtype, filename=part.filename
        )
    for inner in mail.walk():
        if inner is not mail:  # the email package repeats it on parts; it belongs on top
            del inner["MIME-Version"]
    return mail


async def compose(
    message: OutboundMessage, settings: EmailSettings, inbox: ChannelInbox
) -> Outgoing:
    """``message`` as the mail to submit, threaded on its conversation; SendFailed for a
    recipient that is no address, a template that fails or attachments too large."""
    from_address, domain = settings.from_address, settings.message_id_domain
    assert from_address is not None and domain is not None  # checked by require_sending
    recipient = recipient_of(message.to)
    email = email_metadata(message.metadata)
    template = message_template(email)
    earlier = await earlier_messages(inbox, message, domain)
    in_reply_to, references = thread_ids(earlier, domain)
    subject = subject_of(message, earlier, settings.default_subject)
    parts, links = await attachments_of(inbox, message, settings.max_message_bytes)
    envelope = Envelope(
        sender=Address(display_name=settings.from_name or "", addr_spec=from_address),
        recipient=recipient,
        subject=subject,
        message_id=f"{message.id}@{domain}",
        in_reply_to=in_reply_to,
        references=references,
        automated=message.metadata.get("automated") is True,
    )

    def render() -> bytes:  # CPU work (templates, base64 of the attachments): off the loop
        bodies = render_bodies(
            message.text,
            subject=subject,
            from_address=from_address,
            from_name=settings.from_name,
            templates_dir=settings.templates_dir,
            template=template,
            links=links,
        )
        return build_mail(envelope, bodies, parts).as_bytes()

    raw = await asyncio.to_thread(render)
    return Outgoing(raw=raw, recipient=recipient)

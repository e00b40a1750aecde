"""A raw mail (RFC 5322, MIME) as what the core stores: a message, or a status update.

Both ways mail comes in (the raw MIME webhook and the IMAP poller) hand the bytes to
:func:`mail_result`:

- A delivery report or read receipt about one of our mails becomes that message's status
  (:mod:`omnichannel_email.bounces`), and nothing else.
- Our own mail coming back (``From`` our address, Message-ID on our domain: a copy the
  mailbox received) is dropped.
- Anything else is an :class:`InboundMessage`:

  - ``provider_message_id``: the ``Message-ID`` without its brackets, exactly as written;
    ``sha256:<hex of the raw bytes>`` for a mail without one (or with one longer than the
    store takes).
  - ``sender``: the first ``From`` address, **the whole address lower-cased** (mail systems
    treat local parts case-blind in practice, and the contact is found by it, so
    ``Jane@Example.com`` and ``jane@example.com`` are one customer); ``sender_name``: its
    decoded display name. When ``From`` is the business's own address (its support address
    is a Google Group, which writes "'Jane' via Support" <support@...>), its
    ``X-Original-From`` is the sender; never otherwise (anyone can write that header).
    ``reply_to``: the ``Reply-To`` address when it is another (a web form's mail), where
    answers then go.
  - ``text``: the new text only (:mod:`omnichannel_email.text`); ``sent_at``: the ``Date``
    header (ignored when unparsable).
  - ``media``: an :class:`Attachment` for every attachment and inline image (``INLINE``
    with its ``content_id``, brackets stripped as the HTML's ``cid:`` names it), and the
    whole source as ``original.eml`` (``ORIGINAL``) so an agent can always open the mail as
    sent. Signature parts (``.p7s``, ``.asc`` of signed mail) and empty parts are left out;
    at most :data:`omnichannel_email.parts.MAX_ATTACHMENTS`.
  - ``thread``: ``refs`` are ``In-Reply-To`` then ``References`` from the last, brackets
    stripped, deduped (at most :data:`MAX_REFS`); ``participants`` are the ``To``, ``Cc``
    and ``Reply-To`` addresses, lower-cased, less the business's and the sender's.
  - ``automated``: :mod:`omnichannel_email.automated`.
  - ``metadata["email"]``: ``subject`` (None when absent), ``from``, ``to``, ``cc``
    (``Name <address>`` as decoded), ``date`` (as written), ``message_id``, ``references``
    (header order), ``in_reply_to``, ``html`` (the text came from an HTML body, there being
    no plain one); ``truncated`` when the text was cut, ``parts_left_out`` when the limits
    left parts out (they are in the original).

Mail larger than ``EMAIL_MAX_MESSAGE_BYTES``, empty, or without any sender address is
refused with :class:`InvalidInput`.

A mail over the bounds of :mod:`omnichannel_email.bounds` is *kept unread*: stored from its
headers alone. The MIME parts are sorted by :mod:`omnichannel_email.parts`.
"""

from __future__ import annotations

import hashlib
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any, BinaryIO

from omnichannel_core.channel import (
    MAX_ID_LENGTH,
    Attachment,
    InboundMessage,
    InvalidInput,
    MediaRole,
    Thread,
    WebhookResult,
)
from omnichannel_email.automated import is_automated
from omnichannel_email.bounces import report_result
from omnichannel_email.bounds import (
    delimiter_lines,
    has_too_many_lines,
    has_too_many_part_headers,
    has_too_many_parts,
    header_block,
    headers_read,
    read_mail,
)
from omnichannel_email.headers import (
    Mailbox,
    addresses,
    core_message_id,
    header_text,
    mail_date,
    message_id,
    message_ids,
    raw_header,
)
from omnichannel_email.parts import PartWalk, distinct
from omnichannel_email.settings import EmailSettings
from omnichannel_email.text import mail_text

MAX_REFS = 100
MAX_ADDRESSES = 100
"""Of To and Cc, the addresses kept (in metadata, and as participants)."""
MAX_SUBJECT = 998


def parse_mail(raw: bytes, headers_only: bool = False) -> EmailMessage:
    """``raw`` parsed by the standard library (``policy.default``), which keeps going on
    malformed mail and notes defects rather than raising; ``headers_only``: the body left
    as one string."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw, headersonly=headers_only)
    except Exception as error:  # the parser is meant not to raise; never a 500 if it does
        raise InvalidInput(f"the body is not a mail: {type(error).__name__}") from None
    assert isinstance(message, EmailMessage)
    return message


def provider_message_id(message: Message, raw: bytes) -> str:
    """The mail's ``Message-ID`` without brackets, exactly as written; for a mail without a
    usable one, ``sha256:`` and the hex digest of its bytes."""
    found = message_id(raw_header(message, "message-id"))
    if found and len(found) <= MAX_ID_LENGTH:
        return found
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def thread_refs(message: Message) -> tuple[str, ...]:
    """What the mail answers, nearest first: ``In-Reply-To``, then ``References`` from the
    last, deduped, without the mail's own id."""
    own = message_id(raw_header(message, "message-id"))
    refs: dict[str, None] = {}  # ordered, and quick to test on a hostile thousand-id header
    candidates = message_ids(raw_header(message, "in-reply-to")) + list(
        reversed(message_ids(raw_header(message, "references")))
    )
    for ref in candidates:
        if len(refs) == MAX_REFS:
            break
        if ref != own and len(ref) <= MAX_ID_LENGTH:
            refs.setdefault(ref)
    return tuple(refs)


# the parts ------------------------------------------------------------------------------


def _sender(message: Message, own_address: str | None) -> Mailbox:
    """Who wrote ``message``: its first ``From`` address (else ``Sender``, ``Reply-To``,
    ``Return-Path``). ``X-Original-From`` only when ``From`` is the business's own address:
    its support address is a list (a Google Group) that rewrote ``From`` to itself for
    DMARC. Anyone can write ``X-Original-From`` and ``List-Id``, so a list header is never
    reason enough: a stranger would be stored as the customer they name.

    A ``From`` of several mailboxes names its author in ``Sender`` (RFC 5322 3.6.2); without
    one it is refused: which of them wrote is anyone's guess, and DMARC does not check such
    a mail either."""
    for name in ("from", "sender", "reply-to", "return-path"):
        found = addresses(message, name)
        if found:
            break
    else:
        raise InvalidInput("the mail has no sender address (From)", field="From")
    if name == "from" and len({mailbox.address.lower() for mailbox in found}) > 1:
        sender = addresses(message, "sender")
        if len(sender) != 1:
            raise InvalidInput(
                "the mail's From names several mailboxes and no single Sender: its author"
                " is unknown",
                field="From",
            )
        return sender[0]
    if name == "from" and own_address and found[0].address.lower() == own_address.lower():
        original = addresses(message, "x-original-from")
        if original:
            return original[0]
    return found[0]


def _participants(
    mailboxes: list[Mailbox], sender: str, own_address: str | None
) -> tuple[str, ...]:
    seen = {sender, (own_address or "").lower()}
    participants: list[str] = []
    for mailbox in mailboxes:
        address = mailbox.address.lower()
        if address not in seen:
            seen.add(address)
            participants.append(address)
    return tuple(participants[:MAX_ADDRESSES])


def _is_echo(message: Message, sender: str, settings: EmailSettings) -> bool:
    """Our own mail come back to the mailbox: from our address, with one of our ids."""
    own = message_id(raw_header(message, "message-id"))
    return (
        settings.from_address is not None
        and sender == settings.from_address.lower()
        and own is not None
        and core_message_id(own, settings.message_id_domain) is not None
    )


def inbound_message(
    raw: bytes,
    message: Message,
    settings: EmailSettings,
    read_body: bool = True,
    headers_left_out: int = 0,
) -> InboundMessage | None:
    """``message`` (parsed from ``raw``) as the customer's message; None for our own mail
    come back. Without ``read_body`` (a mail over a bound), only its headers are read: no
    text, its source kept as the original; ``headers_left_out``: the header lines not
    read."""
    mailbox = _sender(message, settings.from_address)
    sender = mailbox.address.lower()
    if _is_echo(message, sender, settings):
        return None
    subject = header_text(message, "subject")
    if subject is not None:
        subject = subject[:MAX_SUBJECT]
    found = PartWalk()
    if read_body:
        found.collect(message, body=True, related=False)
    else:
        found.skipped = max(delimiter_lines(raw), 1)
    text = mail_text(found.bodies, subject)
    to, cc = addresses(message, "to"), addresses(message, "cc")
    reply_to = addresses(message, "reply-to")
    answer_to = reply_to[0].address.lower() if reply_to else None
    if answer_to in (sender, (settings.from_address or "").lower()):
        answer_to = None
    own_id = message_id(raw_header(message, "message-id"))
    email: dict[str, Any] = {
        "subject": subject,
        "from": mailbox.display,
        "to": [item.display for item in to[:MAX_ADDRESSES]],
        "cc": [item.display for item in cc[:MAX_ADDRESSES]],
        "date": header_text(message, "date"),
        "message_id": own_id,
        "references": message_ids(raw_header(message, "references"))[-MAX_REFS:],
        "in_reply_to": next(iter(message_ids(raw_header(message, "in-reply-to"))), None),
        "html": text.from_html,
    }
    if text.truncated:
        email["truncated"] = True
    if found.skipped:
        email["parts_left_out"] = found.skipped
    if headers_left_out:
        email["headers_left_out"] = headers_left_out
    original = Attachment(
        content=raw, content_type="message/rfc822", filename="original.eml", role=MediaRole.ORIGINAL
    )
    refs = thread_refs(message)
    return InboundMessage(
        provider_message_id=provider_message_id(message, raw),
        sender=sender,
        sender_name=mailbox.name or None,
        text=text.text,
        media=(*distinct(found.attachments), original),
        sent_at=mail_date(message),
        metadata={"email": email},
        reply_to=answer_to,
        thread=Thread(
            refs=refs,
            participants=_participants(to + cc + reply_to, sender, settings.from_address),
            message_ids=_ours(refs, settings),
        ),
        automated=is_automated(message, mailbox, settings.from_address),
    )


def _ours(refs: tuple[str, ...], settings: EmailSettings) -> tuple[str, ...]:
    """The core's ids of the refs that are our own answers' Message-IDs: the thread is
    found by them even when an answer's SMTP reply was lost, its Message-ID unrecorded."""
    found = (core_message_id(ref, settings.message_id_domain) for ref in refs)
    return tuple(message_id for message_id in found if message_id is not None)


def mail_result(source: BinaryIO | bytes, settings: EmailSettings) -> WebhookResult:
    """A raw mail (a file at its start, or bytes) as what the core stores: a delivery
    report's status update, nothing for our own mail come back, else the message."""
    raw = read_mail(source, settings.max_message_bytes)
    end, too_long = header_block(raw)
    left_out = 0
    if too_long:
        head, left_out = headers_read(raw[:end])
        read_body = False
    else:
        head = raw[:end] + b"\n"
        read_body = not (
            has_too_many_lines(raw)
            or has_too_many_parts(raw)
            or has_too_many_part_headers(raw, end)
        )
    message = parse_mail(raw) if read_body else parse_mail(head, headers_only=True)
    report = report_result(message, settings) if read_body else None
    if report is not None:
        return report
    inbound = inbound_message(raw, message, settings, read_body, left_out)
    return WebhookResult(messages=(inbound,) if inbound is not None else ())

"""Delivery reports about the mail we sent: bounces (DSN, RFC 3464) and read receipts
(MDN, RFC 8098), as status updates of the message they report on.

A report is traced to our message by the Message-ID of the mail it returns: the
``message/rfc822`` (or ``text/rfc822-headers``) part, the MDN's ``Original-Message-ID``,
else the report's own ``In-Reply-To`` and ``References``. Ours are ``{message.id}@{domain}``
(``EMAIL_MESSAGE_ID_DOMAIN``), so the status names the message even when its send never
recorded a provider id.

- A DSN with a recipient whose ``Action`` is ``failed`` fails the message: ``error_code`` is
  the recipient's ``Status`` (``5.1.1``), else the SMTP code of its ``Diagnostic-Code``;
  ``error_message`` is the ``Diagnostic-Code`` text (the recipient's address first when
  several failed), shortened. A report without any ``Action`` field (Gmail sends such) fails
  it too, unless its subject speaks of a delay.
- ``Action: delayed`` (the server still tries), ``relayed`` or ``expanded`` change nothing;
  ``delivered`` (when success reports were asked for) marks it delivered.
- An MDN whose ``Disposition`` says ``displayed`` marks the message read; other dispositions
  change nothing.

Such a report is not stored as a message: what it says shows on the message it reports on,
and a mailer-daemon is no customer. A report we cannot trace to one of our Message-IDs (a
bounce of mail someone sent from the mailbox by hand) is not handled here: it is stored as
an automated message, so no failure goes unseen.
"""

from __future__ import annotations

import re
from email import policy
from email.message import Message
from email.parser import Parser

from omnichannel_core.channel import DeliveryStatus, StatusUpdate, WebhookResult
from omnichannel_email.charsets import part_text
from omnichannel_email.headers import (
    core_message_id,
    header_text,
    mail_date,
    message_id,
    message_ids,
    raw_header,
)
from omnichannel_email.settings import EmailSettings

MAX_ERROR_MESSAGE = 500
_STATUS_CODE = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")
_SMTP_CODE = re.compile(r"\b[245]\d\d\b")
_WHITESPACE = re.compile(r"\s+")
_DELAY_SUBJECT = re.compile(r"delay|verzögert|retard|retras", re.IGNORECASE)


def _parts(report: Message) -> list[Message]:
    payload = report.get_payload()
    return (
        [part for part in payload if isinstance(part, Message)] if isinstance(payload, list) else []
    )


def _header_blocks(text: str) -> list[Message]:
    blocks = re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").strip())
    parser = Parser(policy=policy.default)
    return [parser.parsestr(block, headersonly=True) for block in blocks if block.strip()]


def _field_blocks(part: Message) -> list[Message]:
    """The field groups of a ``message/delivery-status`` or
    ``message/disposition-notification`` part (per message, then per recipient). The parser
    splits a delivery-status into them, and reads a disposition-notification as one mail
    whose body holds any group after a blank line: that body is read as groups too."""
    payload = part.get_payload()
    if isinstance(payload, str):
        return _header_blocks(payload)
    blocks: list[Message] = []
    for block in payload if isinstance(payload, list) else []:
        if isinstance(block, Message):
            blocks.append(block)
            rest = block.get_payload()
            if isinstance(rest, str) and rest.strip():
                blocks.extend(_header_blocks(rest))
    return blocks


def _returned_message_id(report: Message) -> str | None:
    """The Message-ID of the mail a report returns, from its ``message/rfc822`` or
    ``text/rfc822-headers`` part."""
    for part in _parts(report):
        content_type = part.get_content_type()
        if content_type in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            original = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(original, Message):
                found = message_id(raw_header(original, "message-id"))
                if found:
                    return found
        elif content_type in ("text/rfc822-headers", "message/global-headers"):
            headers = Parser(policy=policy.default).parsestr(part_text(part), headersonly=True)
            found = message_id(raw_header(headers, "message-id"))
            if found:
                return found
    return None


def _reported_message_id(report: Message, blocks: list[Message]) -> str | None:
    for block in blocks:
        found = message_id(raw_header(block, "original-message-id"))
        if found:
            return found
    found = _returned_message_id(report)
    if found:
        return found
    for name in ("in-reply-to", "references"):
        ids = message_ids(raw_header(report, name))
        if ids:
            return ids[-1] if name == "references" else ids[0]
    return None


def _shorten(text: str) -> str:
    text = _WHITESPACE.sub(" ", text).strip()
    if len(text) <= MAX_ERROR_MESSAGE:
        return text
    return text[: MAX_ERROR_MESSAGE - 1].rstrip() + "…"


def _diagnostic(block: Message) -> str:
    """The ``Diagnostic-Code`` text without its type (``smtp;``)."""
    value = header_text(block, "diagnostic-code") or ""
    kind, separator, text = value.partition(";")
    return (text if separator and " " not in kind.strip() else value).strip()


def _recipient(block: Message) -> str:
    value = header_text(block, "final-recipient") or header_text(block, "original-recipient")
    return (value or "").partition(";")[2].strip() or (value or "").strip()


def _failure(failed: list[Message]) -> tuple[str | None, str]:
    """The error code and message of the failed recipients' blocks."""
    first = failed[0]
    status = _STATUS_CODE.search(header_text(first, "status") or "")
    smtp = _SMTP_CODE.search(_diagnostic(first))
    code = status.group(0) if status else smtp.group(0) if smtp else None
    texts = []
    for block in failed:
        detail = _diagnostic(block) or f"delivery failed ({header_text(block, 'status') or '?'})"
        texts.append(f"{_recipient(block)}: {detail}" if len(failed) > 1 else detail)
    return code, _shorten("; ".join(texts))


def _delivery_update(
    report: Message, blocks: list[Message], provider_id: str, ours: str
) -> StatusUpdate | None:
    """Failed when a recipient failed (or when no recipient is named, unless the subject
    says delay), delivered when one was delivered; else None."""
    recipients = [block for block in blocks if raw_header(block, "action") is not None]
    actions = [(header_text(block, "action") or "").lower() for block in recipients]
    failed = [
        block for block, action in zip(recipients, actions, strict=True) if "failed" in action
    ]
    at = mail_date(report)
    if not recipients:  # Gmail's reports may carry no fields: a failure unless it says delay
        if _DELAY_SUBJECT.search(header_text(report, "subject") or ""):
            return None
        return StatusUpdate(
            provider_message_id=provider_id,
            status=DeliveryStatus.FAILED,
            error_message=_shorten(header_text(report, "subject") or "delivery failed"),
            at=at,
            message_id=ours,
        )
    if failed:
        code, text = _failure(failed)
        return StatusUpdate(
            provider_message_id=provider_id,
            status=DeliveryStatus.FAILED,
            error_code=code,
            error_message=text,
            at=at,
            message_id=ours,
        )
    if any(action.startswith("delivered") for action in actions):
        return StatusUpdate(
            provider_message_id=provider_id, status=DeliveryStatus.DELIVERED, at=at, message_id=ours
        )
    return None


def _read_update(
    report: Message, blocks: list[Message], provider_id: str, ours: str
) -> StatusUpdate | None:
    """Read when a ``Disposition`` says ``displayed`` (``manual-action/MDN-sent-manually;
    displayed``)."""
    for block in blocks:
        disposition = (header_text(block, "disposition") or "").lower()
        if "displayed" in disposition.partition(";")[2]:
            return StatusUpdate(
                provider_message_id=provider_id,
                status=DeliveryStatus.READ,
                at=mail_date(report),
                message_id=ours,
            )
    return None


def report_result(report: Message, settings: EmailSettings) -> WebhookResult | None:
    """For a delivery report or read receipt about one of our mails: its status update
    (none for a delay); None for any other mail, which is stored as a message."""
    if report.get_content_type() != "multipart/report":
        return None
    kind = str(report.get_param("report-type", "") or "").lower()
    if kind not in ("delivery-status", "disposition-notification"):
        return None
    wanted = (
        ("message/delivery-status", "message/global-delivery-status")
        if kind == "delivery-status"
        else ("message/disposition-notification", "message/global-disposition-notification")
    )
    blocks = [
        block
        for part in _parts(report)
        if part.get_content_type() in wanted
        for block in _field_blocks(part)
    ]
    provider_id = _reported_message_id(report, blocks)
    ours = core_message_id(provider_id, settings.message_id_domain) if provider_id else None
    if provider_id is None or ours is None:
        return None
    if kind == "delivery-status":
        update = _delivery_update(report, blocks, provider_id, ours)
    else:
        update = _read_update(report, blocks, provider_id, ours)
    return WebhookResult(statuses=(update,) if update else ())

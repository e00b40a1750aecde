"""Sending through Twilio's Messages API: checks first, one attempt, clear errors (the
outbox retries what may be retried, at the pace of :func:`send_policy`).

``message.to`` is the conversation's address: ``whatsapp:+1555...`` goes out on WhatsApp from
``whatsapp:`` + ``TWILIO_WHATSAPP_NUMBER``; ``+1555...`` as SMS from ``TWILIO_PHONE_NUMBER`` or
through ``TWILIO_MESSAGING_SERVICE_SID``. Every send sets the status callback URL. Neither the
auth token nor message bodies are ever logged.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import attrs
import requests
import structlog
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from urllib3.exceptions import NameResolutionError, NewConnectionError

from omnichannel_core.channel import (
    DeliveryStatus,
    OutboundMessage,
    Reach,
    Sender,
    SendFailed,
    SendOutcomeUnknown,
    SendPolicy,
    SendResult,
)
from omnichannel_twilio.api_client import twilio_client
from omnichannel_twilio.settings import E164, WHATSAPP_PREFIX, TwilioSettings
from omnichannel_twilio.status_callbacks import map_status

log = structlog.get_logger("omnichannel.twilio")

MAX_BODY_CHARACTERS = 1600
MAX_MEDIA_URLS = 10
SMS_RATE = 1.0
WHATSAPP_RATE = 80.0
OUTSIDE_WHATSAPP_WINDOW = 63016
ERROR_PREFIXES = ("Unable to create record: ",)


@attrs.frozen
class Recipient:
    """Where a message goes: the address Twilio gets, its bare number and the kind."""

    address: str
    number: str
    kind: str  # "whatsapp" or "sms"


def recipient_of(to: str) -> Recipient:
    """The recipient of a conversation address; SendFailed unless the number is E.164."""
    kind = "whatsapp" if to.startswith(WHATSAPP_PREFIX) else "sms"
    number = to.removeprefix(WHATSAPP_PREFIX)
    if not E164.match(number):
        raise SendFailed(
            f"recipient {to!r} is not an E.164 number like +15551234567",
            code="invalid_recipient",
        )
    return Recipient(address=to, number=number, kind=kind)


def _template(metadata: dict[str, Any]) -> tuple[str | None, str | None]:
    """The Content SID and the JSON of its variables, when the message is a template."""
    content_sid = metadata.get("content_sid")
    variables = metadata.get("content_variables")
    if content_sid is None:
        return None, None
    if not isinstance(content_sid, str) or not content_sid.startswith("HX"):
        raise SendFailed("content_sid must be a Content SID (HX...)", code="invalid_template")
    if variables is not None and not isinstance(variables, dict):
        raise SendFailed("content_variables must be an object", code="invalid_template")
    return content_sid, json.dumps(variables) if variables is not None else None


def create_params(message: OutboundMessage, settings: TwilioSettings, channel: str) -> dict:
    """The keyword arguments of ``client.messages.create``, after every local check."""
    recipient = recipient_of(message.to)
    content_sid, content_variables = _template(message.metadata)
    if message.text and len(message.text) > MAX_BODY_CHARACTERS:
        raise SendFailed(
            f"message body is longer than {MAX_BODY_CHARACTERS} characters", code="body_too_long"
        )
    if len(message.media) > MAX_MEDIA_URLS:
        raise SendFailed(f"at most {MAX_MEDIA_URLS} media URLs", code="too_many_media")
    if any(not media.url.startswith("https://") for media in message.media):
        raise SendFailed("media URLs must be https", code="media_url_not_https")
    if not message.text and not message.media and not content_sid:
        raise SendFailed("nothing to send: give a body, media or a content_sid", code="empty")
    params: dict[str, Any] = {
        "to": recipient.address,
        # our id rides in the (signed) callback URL: the callback finds the message even
        # when Twilio's answer to this request, and so the SID, never arrives
        "status_callback": settings.status_callback_url(channel)
        + "?"
        + urlencode({"message_id": message.id}),
    }
    if recipient.kind == "whatsapp":
        params["from_"] = WHATSAPP_PREFIX + (settings.whatsapp_number or "")
    elif settings.messaging_service_sid:
        params["messaging_service_sid"] = settings.messaging_service_sid
    else:
        params["from_"] = settings.phone_number
    if message.text:
        params["body"] = message.text
    if message.media:
        params["media_url"] = [media.url for media in message.media]
    if content_sid:
        params["content_sid"] = content_sid
        if content_variables is not None:
            params["content_variables"] = content_variables
    return params


def _twilio_message(error: TwilioRestException | TwilioServiceException) -> str:
    if isinstance(error, TwilioServiceException):
        text = error.detail or error.title or ""
    else:
        text = str(error.msg or "")
    for prefix in ERROR_PREFIXES:
        text = text.removeprefix(prefix)
    return text or f"Twilio answered {error.status}"


def rejected(error: TwilioRestException | TwilioServiceException) -> SendFailed:
    """A 4xx from Twilio as SendFailed carrying Twilio's code and message (422)."""
    message = _twilio_message(error)
    if error.code == OUTSIDE_WHATSAPP_WINDOW:
        message += (
            " (WhatsApp allows free-form messages only within 24 hours of the customer's"
            " last message: use a template (content_sid) instead)"
        )
    return SendFailed(
        message,
        code=str(error.code or error.status),
        retryable=False,
        twilio_status=error.status,
    )


def _never_reached_twilio(error: Exception) -> bool:
    """True when the request provably never left: no connection could be made."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(error, requests.exceptions.ConnectionError):
        reason = getattr(error.args[0], "reason", None) if error.args else None
        return isinstance(reason, NewConnectionError | NameResolutionError)
    return False


def _is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def deliver(message: OutboundMessage, settings: TwilioSettings, channel: str) -> SendResult:
    """Send ``message`` once; raises SendFailed (``retryable`` for 429, 5xx and failures to
    connect: the outbox retries them), or SendOutcomeUnknown when Twilio got the request but
    its answer was lost (the status callback, whose URL names our message id, settles it)."""
    settings.require_configured(channel)
    params = create_params(message, settings, channel)
    client = twilio_client(settings)
    try:
        created = client.messages.create(**params)
    except (TwilioRestException, TwilioServiceException) as error:
        if not _is_retryable_status(error.status):
            raise rejected(error) from None
        raise SendFailed(
            f"Twilio did not take the message: {_twilio_message(error)}",
            code=str(error.code or error.status),
            retryable=True,
            throttled=error.status == 429,
            twilio_status=error.status,
        ) from None
    except ValueError:  # a 2xx whose body is not Twilio's JSON: the answer is lost
        raise SendOutcomeUnknown(
            "Twilio's answer could not be read; the message may have been sent: its status"
            " callback will settle it",
            channel=channel,
        ) from None
    except (requests.exceptions.RequestException, TwilioException) as error:
        if not _never_reached_twilio(error):
            # The request went out and the answer was lost (a read timeout, a connection
            # dropped after sending): Twilio may have taken the message, and sending it
            # again could deliver it twice.
            raise SendOutcomeUnknown(
                f"Twilio's answer was lost ({type(error).__name__}); the message may have"
                " been sent: its status callback will settle it",
                channel=channel,
            ) from None
        raise SendFailed(
            f"Twilio could not be reached: {type(error).__name__}",
            code="unreachable",
            retryable=True,
        ) from None
    return _send_result(created, channel)


def send_policy(settings: TwilioSettings) -> SendPolicy:
    """Twilio's published limits: SMS from a US long code 1 message per second per number
    (short codes, toll-free and 10DLC numbers take more: set ``OMNICHANNEL_SEND_RATES``),
    WhatsApp 80 per second per sender; each sender is paced apart. Twilio queues what it
    takes, so a message in doubt waits an hour for its status callback."""

    def sender(address: str) -> Sender | None:
        if address.startswith(WHATSAPP_PREFIX):
            number = settings.whatsapp_number or "unset"
            return Sender(f"{WHATSAPP_PREFIX}{number}", rate=WHATSAPP_RATE)
        return Sender(settings.messaging_service_sid or settings.phone_number or "sms")

    reaches = (
        Reach("sms"),
        Reach("whatsapp", prefix=WHATSAPP_PREFIX, window_hours=24, templates=True),
    )
    return SendPolicy(
        rate=SMS_RATE, sender=sender, retry_for=3600, confirm_within=3600, reaches=reaches
    )


def _send_result(created: Any, channel: str) -> SendResult:
    sid = getattr(created, "sid", None)
    if not isinstance(sid, str) or not sid:
        # Twilio answered 2xx, so it may well have the message: in doubt, not resent.
        raise SendOutcomeUnknown(
            "Twilio's answer named no message SID; the message may have been sent: its"
            " status callback will settle it",
            channel=channel,
        )
    status = map_status(getattr(created, "status", None)) or DeliveryStatus.QUEUED
    return SendResult(provider_message_id=sid, status=status)

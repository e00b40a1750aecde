"""Twilio's message status callbacks as the core's StatusUpdate.

Twilio posts ``MessageSid`` and ``MessageStatus`` (with ``ErrorCode`` and ``ErrorMessage``
when it failed) to the ``StatusCallback`` URL set on every send. ``receiving`` and
``received`` belong to inbound messages and change nothing; a status Twilio adds later and
this table does not know is acknowledged and logged, not applied.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from omnichannel_core.channel import (
    DeliveryStatus,
    InvalidInput,
    StatusUpdate,
    WebhookResponse,
    WebhookResult,
)
from omnichannel_twilio.signature import first

log = structlog.get_logger("omnichannel.twilio")

STATUS_MAP: dict[str, DeliveryStatus | None] = {
    "accepted": DeliveryStatus.QUEUED,
    "scheduled": DeliveryStatus.QUEUED,
    "queued": DeliveryStatus.QUEUED,
    "sending": DeliveryStatus.SENDING,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "failed": DeliveryStatus.FAILED,
    "canceled": DeliveryStatus.FAILED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "receiving": None,
    "received": None,
}
"""Twilio's ``MessageStatus`` -> ours; None: an inbound message's status, no update."""

ACKNOWLEDGED = WebhookResponse(200, b"", "text/plain")


def map_status(twilio_status: str | None) -> DeliveryStatus | None:
    """Our status for Twilio's, or None when it carries no update (or is unknown)."""
    return STATUS_MAP.get((twilio_status or "").strip().lower())


def status_result(params: Mapping[str, list[str]], message_id: str | None = None) -> WebhookResult:
    """The update a verified status callback carries (none for inbound or unknown statuses).

    ``message_id`` is our id from the callback URL's query (set on every send, covered by
    the signature). InvalidInput when ``MessageSid`` or ``MessageStatus`` is missing.
    """
    sid = first(params, "MessageSid") or first(params, "SmsSid")
    twilio_status = first(params, "MessageStatus") or first(params, "SmsStatus")
    if not sid:
        raise InvalidInput("MessageSid: required", field="MessageSid")
    if not twilio_status:
        raise InvalidInput("MessageStatus: required", field="MessageStatus")
    status = map_status(twilio_status)
    if status is None:
        if twilio_status.strip().lower() not in STATUS_MAP:
            log.warning("twilio_status_unknown", twilio_status=twilio_status[:64])
        return WebhookResult(response=ACKNOWLEDGED)
    try:
        update = StatusUpdate(
            provider_message_id=sid,
            status=status,
            error_code=first(params, "ErrorCode") or None,
            error_message=first(params, "ErrorMessage") or None,
            message_id=message_id or None,
        )
    except (TypeError, ValueError) as error:  # a SID longer than the core accepts
        raise InvalidInput(f"MessageSid: {error}", field="MessageSid") from None
    return WebhookResult(statuses=(update,), response=ACKNOWLEDGED)

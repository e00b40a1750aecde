"""How a failed send is recorded on its message, and told back to a caller who waited for
it (``Prefer: wait``): one place for both directions."""

from __future__ import annotations

from typing import Any

from omnichannel_core.channel import ChannelUnavailable, SendFailed, SendOutcomeUnknown
from omnichannel_core.module import (
    ChannelFailed,
    Conflict,
    DeliveryStatus,
    Message,
    OmnichannelError,
    RecipientOptedOut,
)
from omnichannel_core.modules.inbox.store.outbox import Failure


def failure_code(error: OmnichannelError) -> str:
    """The ``error_code`` a message that could not be sent keeps: the provider's code when
    it gave one, else the kind of failure, named as the API's error answer names it
    (``omnichannel_core.web.errors``): ``send_rejected`` or ``provider_unavailable`` (the
    provider refused, or could not be reached), ``channel_unavailable`` (e.g. the channel
    is not configured), ``channel_failed`` (the channel crashed or answered nonsense)."""
    if isinstance(error, SendFailed):
        if error.code:
            return str(error.code)
        return "provider_unavailable" if error.retryable else "send_rejected"
    if isinstance(error, ChannelUnavailable):
        return "channel_unavailable"
    if isinstance(error, ChannelFailed):
        return "channel_failed"
    if isinstance(error, RecipientOptedOut):
        return "recipient_opted_out"
    return "send_failed"


def failure_of_error(error: OmnichannelError) -> Failure:
    """How ``error`` is kept on its message: its code (:func:`failure_code`), its text, and
    its details with whether it could be retried."""
    retryable = isinstance(error, SendFailed) and error.retryable
    details = {**_plain(error.details), "retryable": retryable}
    return Failure(failure_code(error), error.message, details)


def _plain(details: dict[str, Any]) -> dict[str, Any]:
    """The details that are JSON values (a channel may put anything in them)."""
    return {
        key: value
        for key, value in details.items()
        if isinstance(value, str | int | float | bool) or value is None
    }


def failure_of(message: Message) -> OmnichannelError:
    """The error a failed (or retrying, or in doubt) message stands for, as the send would
    have raised it, with the details the channel gave: what the API answers a caller who
    waited (422, 502, 503 or 504)."""
    text = message.error_message or "not sent"
    details = {k: v for k, v in message.error_details.items() if k not in ("retryable", "code")}
    details.setdefault("channel", message.channel)
    if message.in_doubt:
        return SendOutcomeUnknown(text, **details)
    if message.status is DeliveryStatus.CANCELLED:
        return Conflict("the message was cancelled before it was sent", **details)
    if message.status is DeliveryStatus.UNDELIVERED:  # the provider said so, later
        return SendFailed(text, code=message.error_code, **details)
    code = message.error_code
    if code == "channel_unavailable":
        return ChannelUnavailable(text, **details)
    if code == "channel_failed":
        return ChannelFailed(text, **details)
    if code == "recipient_opted_out":
        return RecipientOptedOut(text, **details)
    retryable = message.error_details.get("retryable", code == "provider_unavailable")
    if retryable or message.status != "failed":
        provider_code = None if code == "provider_unavailable" else code
        return SendFailed(text, code=provider_code, retryable=True, **details)
    return SendFailed(text, code=None if code == "send_rejected" else code, **details)

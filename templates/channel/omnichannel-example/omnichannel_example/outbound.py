"""Sending: one ``POST {base}/v1/messages`` per call, through httpx.

The provider takes ``{"to", "text", "attachments"}`` with ``Authorization: Bearer <token>``
and answers ``{"id": "<its message id>"}``; its status callbacks name that id. Every request
carries the core's message id as ``Idempotency-Key``, and the provider keeps one message
however often the same request reaches it (for a day).

``send`` makes one attempt and says how it went; the core's outbox does the rest (retries
with backoff, at the pace :data:`SEND_POLICY` declares):

- taken (2xx with an id): ``SendResult``;
- refused for good (4xx): ``SendFailed(code=<the provider's code>)``: the message fails;
- a rate limit (429, ``throttled`` with its ``Retry-After``), an outage (5xx), or no
  connection made: ``SendFailed(retryable=True)``: the outbox tries again later;
- the request went out but no answer came back: ``SendOutcomeUnknown``: the message is in
  doubt. The provider dedupes on the key, so the policy says ``resend_safe`` and the outbox
  sends it again with the same key; for a provider that does not, a status callback would
  have to settle it. Guessing here could lose the message or send it twice.
"""

from __future__ import annotations

from typing import Any

import httpx
from omnichannel_core.channel import (
    OutboundMessage,
    SendFailed,
    SendOutcomeUnknown,
    SendPolicy,
    SendResult,
)

from omnichannel_example.settings import ExampleSettings

SEND_PATH = "/v1/messages"
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
SEND_POLICY = SendPolicy(rate=20.0, retry_for=3600, confirm_within=3600, resend_safe=True)
"""The provider's published limits: 20 messages a second per account; it keeps each
Idempotency-Key a day, so a message in doubt may be sent again for an hour."""

NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Failures before the request left: the provider cannot have taken the message."""


def request_body(message: OutboundMessage) -> dict[str, Any]:
    """What the provider's send API takes."""
    return {
        "to": message.to,
        "text": message.text,
        "attachments": [
            {"url": media.url, "content_type": media.content_type} for media in message.media
        ],
    }


def retry_after(response: httpx.Response) -> float | None:
    """The seconds of the provider's ``Retry-After`` (it sends whole seconds), if any."""
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def refusal(response: httpx.Response) -> SendFailed:
    """The provider's error answer as SendFailed, retryable for a rate limit or an outage.
    The provider answers ``{"error": {"code": ..., "message": ...}}``."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code") if isinstance(error, dict) else None
    detail = error.get("message") if isinstance(error, dict) else None
    throttled = response.status_code == 429
    return SendFailed(
        f"the provider answered {response.status_code}" + (f": {detail}" if detail else ""),
        code=str(code or response.status_code),
        retryable=throttled or response.status_code >= 500,
        throttled=throttled,
        retry_after=retry_after(response),
    )


def _provider_id(response: httpx.Response, channel: str) -> str:
    try:
        provider_id = response.json().get("id")
    except (ValueError, AttributeError):
        provider_id = None
    if not isinstance(provider_id, str) or not provider_id:
        raise SendOutcomeUnknown(
            f"the provider took the message ({response.status_code}) but named no id",
            channel=channel,
        )
    return provider_id


async def deliver(message: OutboundMessage, settings: ExampleSettings, channel: str) -> SendResult:
    """One attempt to send ``message``: its provider id, or the errors of the module's
    docstring."""
    base_url, token = settings.require_api(channel)
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": message.id}
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as client:
        try:
            response = await client.post(SEND_PATH, json=request_body(message), headers=headers)
        except NOT_SENT as error:
            raise SendFailed(
                f"the provider could not be reached: {type(error).__name__}",
                code="unreachable",
                retryable=True,
            ) from None
        except httpx.HTTPError as error:
            raise SendOutcomeUnknown(
                f"the provider's answer was lost ({type(error).__name__}); the message may"
                " have been sent",
                channel=channel,
            ) from None
    if response.is_success:
        return SendResult(provider_message_id=_provider_id(response, channel))
    raise refusal(response)

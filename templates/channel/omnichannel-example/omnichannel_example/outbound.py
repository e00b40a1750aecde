"""Sending: one ``POST {base}/v1/messages`` per message, through httpx.

The provider takes ``{"to", "text", "attachments"}`` with ``Authorization: Bearer <token>``
and answers ``{"id": "<its message id>"}``; its status callbacks name that id. Every request
carries the core's message id as ``Idempotency-Key``, so the provider keeps one message
however often the same request reaches it: that makes a retry after a rate limit (429) or
an outage (5xx) safe, and a few are made here before giving up.

What the provider said decides what the core answers the API client:

- refused for good (4xx): ``SendFailed(code=<the provider's code>)``, 422;
- still refusing after the retries (429, 5xx, unreachable): ``SendFailed(retryable=True)``,
  502;
- the request went out but no answer came back: ``SendOutcomeUnknown``, 504; the message
  stays ``sending`` and a status callback settles it. Guessing either way could lose the
  message or send it twice.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from omnichannel_core.channel import (
    OutboundMessage,
    SendFailed,
    SendOutcomeUnknown,
    SendResult,
)

from omnichannel_example.settings import ExampleSettings

SEND_PATH = "/v1/messages"
SEND_ATTEMPTS = 3
RETRY_DELAY_SECONDS = 0.5
"""Doubled after each attempt: 0.5 s, then 1 s."""
TIMEOUT = httpx.Timeout(10.0, connect=5.0)

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


def refusal(response: httpx.Response) -> SendFailed:
    """The provider's error answer as SendFailed, retryable for a rate limit or an outage.
    The provider answers ``{"error": {"code": ..., "message": ...}}``."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code") if isinstance(error, dict) else None
    detail = error.get("message") if isinstance(error, dict) else None
    return SendFailed(
        f"the provider answered {response.status_code}" + (f": {detail}" if detail else ""),
        code=str(code or response.status_code),
        retryable=response.status_code == 429 or response.status_code >= 500,
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
    """Send ``message``: its provider id, or the errors of the module's docstring."""
    base_url, token = settings.require_api(channel)
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": message.id}
    failure = SendFailed("not sent", retryable=True)
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as client:
        for attempt in range(SEND_ATTEMPTS):
            if attempt:
                await asyncio.sleep(RETRY_DELAY_SECONDS * 2 ** (attempt - 1))
            try:
                response = await client.post(SEND_PATH, json=request_body(message), headers=headers)
            except NOT_SENT as error:
                failure = SendFailed(
                    f"the provider could not be reached: {type(error).__name__}",
                    code="unreachable",
                    retryable=True,
                )
                continue
            except httpx.HTTPError as error:
                raise SendOutcomeUnknown(
                    f"the provider's answer was lost ({type(error).__name__}); the message may"
                    " have been sent",
                    channel=channel,
                ) from None
            if response.is_success:
                return SendResult(provider_message_id=_provider_id(response, channel))
            failure = refusal(response)
            if not failure.retryable:
                raise failure
    raise failure

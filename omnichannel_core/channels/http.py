"""The generic HTTP channel: a real integration point for custom systems.

Inbound: ``POST /api/channels/http/webhook`` with a JSON message (or ``{"messages": [...]}``),
signed with ``X-Omnichannel-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` using
``WEBHOOK_SECRET``. Status callbacks: ``POST /api/channels/http/status``, signed the same way.
Outbound: each message is POSTed as JSON to ``HTTP_CHANNEL_SEND_URL``, signed the same way,
with the message id as ``Idempotency-Key``; a 2xx answer may name the remote id as ``{"id"}``.

This module is the example plugin authors read first: four hooks, no state.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import httpx

from omnichannel_core.channel import (
    ChannelHealth,
    ChannelUnavailable,
    Config,
    DeliveryStatus,
    InboundMessage,
    InvalidInput,
    OutboundMessage,
    SendFailed,
    SendResult,
    StatusUpdate,
    WebhookRejected,
    WebhookRequest,
    WebhookResult,
    hookimpl,
    parse_json,
    parse_timestamp,
    read_media,
)

SIGNATURE_HEADER = "X-Omnichannel-Signature"
SEND_ATTEMPTS = 3
SEND_TIMEOUT_SECONDS = 10.0
RETRY_DELAY_SECONDS = 0.25


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _secret(config: Config) -> str:
    secret = config.environ.get("WEBHOOK_SECRET", "")
    if not secret:
        raise ChannelUnavailable("WEBHOOK_SECRET is not set", channel="http")
    return secret


def _verify(request: WebhookRequest, config: Config) -> Any:
    """Check the signature, then parse the body; returns the JSON value."""
    secret = _secret(config)
    presented = request.header(SIGNATURE_HEADER) or ""
    if not hmac.compare_digest(presented.encode(), sign(secret, request.body).encode()):
        raise WebhookRejected(f"missing or wrong {SIGNATURE_HEADER}")
    return parse_json(request.body)


def _items(data: Any, plural: str) -> list[dict[str, Any]]:
    items = data.get(plural) if isinstance(data, dict) and plural in data else [data]
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise InvalidInput(f"body must be an object or {{{plural!r}: [objects]}}")
    return items


def _text(item: dict[str, Any], field: str) -> str | None:
    value = item.get(field)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{field}: must be a string")
    return value


def _required_text(item: dict[str, Any], field: str) -> str:
    value = item.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field}: required, must be a string")
    return value


def _inbound(item: dict[str, Any]) -> InboundMessage:
    timestamp = _text(item, "timestamp")
    try:
        sent_at = parse_timestamp(timestamp) if timestamp else None
    except ValueError:
        raise InvalidInput("timestamp: must be ISO 8601") from None
    message = InboundMessage(
        provider_message_id=_required_text(item, "id"),
        sender=_required_text(item, "from"),
        sender_name=_text(item, "name"),
        text=_text(item, "text"),
        media=read_media(item.get("media")),
        sent_at=sent_at,
    )
    if not message.text and not message.media:
        raise InvalidInput("text: give a text or at least one media item")
    return message


def _delivery_status(item: dict[str, Any]) -> DeliveryStatus:
    value = item.get("status")
    refused = InvalidInput("status: must be one of sent, delivered, read, failed, ...")
    if not isinstance(value, str):
        raise refused
    try:
        return DeliveryStatus(value)
    except ValueError:
        raise refused from None


def _status_update(item: dict[str, Any]) -> StatusUpdate:
    status = _delivery_status(item)
    return StatusUpdate(
        provider_message_id=_required_text(item, "id"),
        status=status,
        error_code=_text(item, "error_code"),
        error_message=_text(item, "error_message"),
    )


@hookimpl
async def receive(request: WebhookRequest, config: Config) -> WebhookResult:
    data = _verify(request, config)
    return WebhookResult(messages=tuple(_inbound(item) for item in _items(data, "messages")))


@hookimpl
async def status(request: WebhookRequest, config: Config) -> WebhookResult:
    data = _verify(request, config)
    return WebhookResult(statuses=tuple(_status_update(i) for i in _items(data, "statuses")))


def _send_url(config: Config) -> str:
    url = config.environ.get("HTTP_CHANNEL_SEND_URL", "")
    if not url:
        raise ChannelUnavailable("HTTP_CHANNEL_SEND_URL is not set", channel="http")
    return url


@hookimpl
async def send(message: OutboundMessage, config: Config) -> SendResult:
    url, secret = _send_url(config), _secret(config)
    body = json.dumps(
        {
            "id": message.id,
            "conversation_id": message.conversation_id,
            "to": message.to,
            "text": message.text,
            "media": [
                {"url": m.url, "content_type": m.content_type, "filename": m.filename}
                for m in message.media
            ],
            "metadata": message.metadata,
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body),
        "Idempotency-Key": message.id,
    }
    failure = SendFailed("not sent")
    async with httpx.AsyncClient(timeout=SEND_TIMEOUT_SECONDS) as client:
        for attempt in range(SEND_ATTEMPTS):
            if attempt:
                await asyncio.sleep(RETRY_DELAY_SECONDS * 2 ** (attempt - 1))
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as error:
                failure = SendFailed(
                    f"could not reach the receiver: {type(error).__name__}", retryable=True
                )
                continue
            if response.is_success:
                return SendResult(provider_message_id=_remote_id(response) or message.id)
            retryable = response.status_code == 429 or response.status_code >= 500
            failure = SendFailed(
                f"receiver answered {response.status_code}",
                code=str(response.status_code),
                retryable=retryable,
            )
            if not retryable:
                break
    raise failure


def _remote_id(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    remote = data.get("id") if isinstance(data, dict) else None
    return remote if isinstance(remote, str) and remote else None


@hookimpl
def health(config: Config) -> ChannelHealth:
    missing = [
        name for name in ("WEBHOOK_SECRET", "HTTP_CHANNEL_SEND_URL") if not config.environ.get(name)
    ]
    if missing:
        return ChannelHealth(
            ok=False, detail=f"not configured: {', '.join(missing)}", checks={"missing": missing}
        )
    return ChannelHealth(ok=True, detail="configured")

"""The generic HTTP channel: a real integration point for custom systems.

Inbound: ``POST /api/channels/http/webhook`` with a JSON message (or ``{"messages": [...]}``),
signed with ``X-Omnichannel-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` using
``WEBHOOK_SECRET``. Status callbacks: ``POST /api/channels/http/status``, signed the same way.
Outbound: each message is POSTed as JSON to ``HTTP_CHANNEL_SEND_URL``, signed the same way,
with the message id as ``Idempotency-Key``; a 2xx answer may name the remote id as ``{"id"}``.
One attempt per call: the outbox retries a 429, a 5xx or a refused connection, and sends a
message whose answer was lost again with the same key (receivers dedupe on it).

Both variables come from ``config.settings`` (the environment, or else what an admin stored
through the settings API), which the ``settings`` hook declares.

This module is the example plugin authors read first: six hooks, no state but a
connection pool.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import json
import weakref
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
    SendOutcomeUnknown,
    SendPolicy,
    SendResult,
    Setting,
    StatusUpdate,
    WebhookRejected,
    WebhookRequest,
    WebhookResult,
    hookimpl,
    parse_json,
    parse_timestamp,
    read_media,
    utcnow,
)

SIGNATURE_HEADER = "X-Omnichannel-Signature"
SEND_TIMEOUT_SECONDS = 10.0
DEFAULT_RATE = 50.0
"""Messages per second to the receiver, unless OMNICHANNEL_SEND_RATES says otherwise."""
SETTINGS = (
    Setting(
        "WEBHOOK_SECRET",
        "the shared secret every body is signed with (HMAC-SHA256), in and out",
        secret=True,
        required=True,
    ),
    Setting(
        "HTTP_CHANNEL_SEND_URL",
        "where the server POSTs each outbound message",
        required=True,
        storable=False,
    ),
)
"""The variables the channel reads; where it sends, from the environment only."""


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _secret(config: Config) -> str:
    secret = config.settings.get("WEBHOOK_SECRET", "")
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


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def _client() -> httpx.AsyncClient:
    """One client per event loop, its connections kept alive between sends."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = httpx.AsyncClient(timeout=SEND_TIMEOUT_SECONDS)
    return client


def _send_url(config: Config) -> str:
    url = config.settings.get("HTTP_CHANNEL_SEND_URL", "")
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
    try:
        response = await _client().post(url, content=body, headers=headers)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
        # no connection was made: the receiver cannot have it
        raise SendFailed(
            f"could not reach the receiver: {type(error).__name__}",
            code="unreachable",
            retryable=True,
        ) from None
    except httpx.HTTPError as error:
        # The request may have been written (a timeout, a connection closed after the body):
        # the receiver may have it. The outbox sends it again with the same Idempotency-Key
        # (send_policy: resend_safe), on which receivers dedupe.
        raise SendOutcomeUnknown(
            f"the receiver's answer was lost ({type(error).__name__})", channel="http"
        ) from None
    if response.is_success:
        return SendResult(provider_message_id=_remote_id(response) or message.id)
    throttled = response.status_code == 429
    raise SendFailed(
        f"receiver answered {response.status_code}",
        code=str(response.status_code),
        retryable=throttled or response.status_code >= 500,
        throttled=throttled,
        retry_after=retry_after(response.headers.get("Retry-After")),
    )


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds, or an HTTP date); None without
    one, or an unreadable one."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - utcnow()).total_seconds())


@hookimpl
def send_policy() -> SendPolicy:
    """Receivers dedupe on Idempotency-Key (the channel guide asks them to), so a message in
    doubt may be sent again with the same one. The rate is the server's default: set
    ``OMNICHANNEL_SEND_RATES=http=N`` to what the receiver takes."""
    return SendPolicy(rate=DEFAULT_RATE, retry_for=3600, confirm_within=600, resend_safe=True)


def _remote_id(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    remote = data.get("id") if isinstance(data, dict) else None
    return remote if isinstance(remote, str) and remote else None


@hookimpl
def health(config: Config) -> ChannelHealth:
    missing = [setting.name for setting in SETTINGS if not config.settings.get(setting.name)]
    if missing:
        return ChannelHealth(
            ok=False, detail=f"not configured: {', '.join(missing)}", checks={"missing": missing}
        )
    return ChannelHealth(ok=True, detail="configured")


@hookimpl
async def settings() -> list[Setting]:
    """The two variables of the module's docstring."""
    return list(SETTINGS)

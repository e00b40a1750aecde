"""Messenger webhooks as Facebook posts them, signed as Facebook signs them.

Facebook signs the raw body: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body,
keyed with the app secret>``. The signature is computed here with ``hmac`` directly, apart
from the channel's own code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

PAGE_TOKEN = "EAAGtestpagetoken0123456789abcdefZZ"
APP_SECRET = "test-app-secret-5d41402abc4b2a76"
VERIFY_TOKEN = "test-verify-token-7c6a180b36896a0a"
WRONG_TOKEN = "EAAGwrongpagetoken00000000000000"
WRONG_SECRET = "wrong-app-secret-000000000000"
PAGE_ID = "104729380000001"
WEBHOOK_PATH = "/api/channels/facebook/webhook"
SIGNATURE_HEADER = "X-Hub-Signature-256"


def hub_signature(body: bytes, app_secret: str = APP_SECRET) -> str:
    """The ``X-Hub-Signature-256`` Facebook sends with ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


def unique_psid() -> str:
    """A page-scoped id no other test uses (digits, as Messenger's are)."""
    return "7" + f"{random.randrange(10**15):015d}"


def new_mid() -> str:
    return "m_" + uuid.uuid4().hex


# the events -----------------------------------------------------------------------------


def _event(psid: str, timestamp: int | None, **body: Any) -> dict[str, Any]:
    return {
        "sender": {"id": psid},
        "recipient": {"id": PAGE_ID},
        "timestamp": now_ms() if timestamp is None else timestamp,
        **body,
    }


def text_event(
    psid: str, text: str = "hello", mid: str | None = None, timestamp: int | None = None
) -> dict[str, Any]:
    return _event(psid, timestamp, message={"mid": mid or new_mid(), "text": text})


def message_event(
    psid: str, message: dict[str, Any], timestamp: int | None = None
) -> dict[str, Any]:
    """A message event with any message body (a mid is added when it has none)."""
    return _event(psid, timestamp, message={"mid": new_mid(), **message})


def attachment(kind: str, url: str, **payload: Any) -> dict[str, Any]:
    return {"type": kind, "payload": {"url": url, **payload}}


def location_attachment(lat: float, long: float, title: str) -> dict[str, Any]:
    return {
        "type": "location",
        "title": title,
        "url": "https://l.facebook.com/l.php?u=https%3A%2F%2Fwww.bing.com%2Fmaps",
        "payload": {"coordinates": {"lat": lat, "long": long}},
    }


def fallback_attachment(url: str, title: str) -> dict[str, Any]:
    return {"type": "fallback", "title": title, "url": url, "payload": None}


def postback_event(
    psid: str,
    title: str,
    payload: str,
    mid: str | None = None,
    timestamp: int | None = None,
    referral: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A button tapped; ``mid`` None sends none (as older API versions do)."""
    postback: dict[str, Any] = {"title": title, "payload": payload}
    if mid is not None:
        postback["mid"] = mid
    if referral is not None:
        postback["referral"] = referral
    return _event(psid, timestamp, postback=postback)


def referral_event(
    psid: str, ref: str, source: str = "SHORTLINK", timestamp: int | None = None
) -> dict[str, Any]:
    return _event(psid, timestamp, referral={"ref": ref, "source": source, "type": "OPEN_THREAD"})


def delivery_event(
    psid: str, watermark: int, mids: list[str] | None = None, timestamp: int | None = None
) -> dict[str, Any]:
    delivery: dict[str, Any] = {"watermark": watermark}
    if mids is not None:
        delivery["mids"] = mids
    return _event(psid, timestamp, delivery=delivery)


def read_event(psid: str, watermark: int, timestamp: int | None = None) -> dict[str, Any]:
    return _event(psid, timestamp, read={"watermark": watermark})


def echo_event(
    psid: str, mid: str, text: str = "echoed", metadata: str | None = None
) -> dict[str, Any]:
    """The page's own message repeated: the page is the sender, the customer the recipient."""
    message: dict[str, Any] = {"is_echo": True, "app_id": 1517776481860111, "mid": mid}
    message["text"] = text
    if metadata is not None:
        message["metadata"] = metadata
    return {
        "sender": {"id": PAGE_ID},
        "recipient": {"id": psid},
        "timestamp": now_ms(),
        "message": message,
    }


def webhook(*events: dict[str, Any]) -> dict[str, Any]:
    """One entry holding ``events``."""
    return entries([*events])


def entries(*batches: list[dict[str, Any]], standby: bool = False) -> dict[str, Any]:
    """A webhook body with one entry per batch of events."""
    key = "standby" if standby else "messaging"
    return {
        "object": "page",
        "entry": [{"id": PAGE_ID, "time": now_ms(), key: batch} for batch in batches],
    }


# delivering them -------------------------------------------------------------------------


def post_webhook(
    client: httpx.Client,
    payload: Mapping[str, Any] | bytes,
    *,
    app_secret: str = APP_SECRET,
    signature: str | None = None,
) -> httpx.Response:
    """POST ``payload`` (JSON, or raw bytes) to the webhook, signed with ``app_secret``;
    ``signature`` replaces the computed one ("" sends no signature header)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    value = hub_signature(body, app_secret) if signature is None else signature
    headers = {"Content-Type": "application/json"}
    if value:
        headers[SIGNATURE_HEADER] = value
    return client.post(WEBHOOK_PATH, content=body, headers=headers)


def verify(client: httpx.Client, params: Mapping[str, str]) -> httpx.Response:
    """Facebook's subscription handshake: ``GET webhook`` with the ``hub.*`` parameters."""
    return client.get(WEBHOOK_PATH, params=dict(params))

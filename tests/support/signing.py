"""Signing and posting to the generic HTTP channel, computed independently of the core.

The channel expects ``X-Omnichannel-Signature: sha256=<hex HMAC-SHA256 of the raw body>``
keyed with ``WEBHOOK_SECRET``; these helpers build that header from scratch so a bug in the
core's own signing cannot hide behind the tests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx

from tests.conftest import WEBHOOK_SECRET

SIGNATURE_HEADER = "X-Omnichannel-Signature"
WEBHOOK_PATH = "/api/channels/http/webhook"
STATUS_PATH = "/api/channels/http/status"


def signature(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    """The header value the channel accepts for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def post_signed(
    client: httpx.Client, path: str, body: bytes, secret: str = WEBHOOK_SECRET
) -> httpx.Response:
    """POST raw ``body`` to ``path``, signed with ``secret``."""
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(body, secret)}
    return client.post(path, content=body, headers=headers)


def post_webhook(
    client: httpx.Client, payload: Any, secret: str = WEBHOOK_SECRET
) -> httpx.Response:
    """Deliver an inbound message (or ``{"messages": [...]}``) to the generic channel."""
    return post_signed(client, WEBHOOK_PATH, encode(payload), secret)


def post_status(client: httpx.Client, payload: Any, secret: str = WEBHOOK_SECRET) -> httpx.Response:
    """Deliver a status callback (or ``{"statuses": [...]}``) to the generic channel."""
    return post_signed(client, STATUS_PATH, encode(payload), secret)


def is_signed_by(body: bytes, header_value: str | None, secret: str = WEBHOOK_SECRET) -> bool:
    """True when ``header_value`` is the right signature of ``body``."""
    return header_value is not None and hmac.compare_digest(header_value, signature(body, secret))


def inbound_message(sender: str, text: str | None = "hello", **fields: Any) -> dict[str, Any]:
    """A valid inbound message from ``sender`` with a fresh provider id (override with id=)."""
    return {"id": unique("in"), "from": sender, "text": text, **fields}


def unique(prefix: str) -> str:
    """A value no other test uses: provider ids, addresses, idempotency keys."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"

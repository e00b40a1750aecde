"""Webhook authentication: the provider signs the raw body of every webhook and status
callback with HMAC-SHA256, keyed with the webhook secret, in ``X-Example-Signature:
sha256=<hex digest>``.

The signature is over the bytes as received (``request.body``), never over parsed and
re-encoded JSON, and compared in constant time so its value cannot be guessed a byte at a
time from response timings.
"""

from __future__ import annotations

import hashlib
import hmac

from omnichannel_core.channel import (
    WebhookRejected,
    WebhookRequest,
)

SIGNATURE_HEADER = "X-Example-Signature"
PREFIX = "sha256="


def sign(secret: str, body: bytes) -> str:
    """The header value the provider sends with ``body``."""
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(request: WebhookRequest, secret: str) -> None:
    """Return when the request carries the body's signature; else WebhookRejected, which the
    core answers with 403 and nothing stored."""
    presented = request.header(SIGNATURE_HEADER) or ""
    if not hmac.compare_digest(presented.encode(), sign(secret, request.body).encode()):
        raise WebhookRejected(f"missing or wrong {SIGNATURE_HEADER}")

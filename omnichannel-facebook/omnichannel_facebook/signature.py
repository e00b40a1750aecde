"""Facebook's webhook signature: ``X-Hub-Signature-256: sha256=<hex>``.

The hex is HMAC-SHA256 of the raw request body, keyed with the app secret. It is checked
over the body exactly as received (never a re-serialized JSON) and compared in constant
time; neither the expected nor the presented value ever goes into an error message.
"""

from __future__ import annotations

import hashlib
import hmac

from omnichannel_core.channel import (
    WebhookRejected,
    WebhookRequest,
)

SIGNATURE_HEADER = "X-Hub-Signature-256"
PREFIX = "sha256="


def compute_signature(app_secret: str, body: bytes) -> str:
    """The header value Facebook sends with ``body``: ``sha256=<lower-case hex>``."""
    return PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(request: WebhookRequest, app_secret: str) -> None:
    """Nothing when the request is signed with ``app_secret``; WebhookRejected (403) when the
    signature is missing or wrong."""
    presented = (request.header(SIGNATURE_HEADER) or "").strip()
    if not presented:
        raise WebhookRejected(f"missing {SIGNATURE_HEADER}")
    scheme, _, digest = presented.partition("=")
    given = (scheme.lower() + "=" + digest.lower()).encode("ascii", errors="replace")
    if not hmac.compare_digest(given, compute_signature(app_secret, request.body).encode()):
        raise WebhookRejected(f"wrong {SIGNATURE_HEADER}")

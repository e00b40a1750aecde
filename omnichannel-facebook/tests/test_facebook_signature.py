"""X-Hub-Signature-256 in process: the value Facebook sends, accepted; anything else refused
without the expected value in the message."""

from __future__ import annotations

import pytest
from messenger_events import APP_SECRET, hub_signature
from omnichannel_facebook.signature import compute_signature, verify_signature

from omnichannel_core.channel import (
    WebhookRejected,
    WebhookRequest,
)

BODY = b'{"object":"page","entry":[]}'


def request_with(headers: dict[str, str], body: bytes = BODY) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        url="https://omni.example.test/api/channels/facebook/webhook",
        path="/api/channels/facebook/webhook",
        headers={k.lower(): v for k, v in headers.items()},
        query={},
        body=body,
    )


def test_compute_matches_an_independent_hmac():
    """sha256= and the hex HMAC-SHA256 of the body keyed with the app secret."""
    assert compute_signature(APP_SECRET, BODY) == hub_signature(BODY)


def test_facebooks_signature_verifies_in_either_case():
    """The exact header verifies; so does the same digest in upper case."""
    verify_signature(request_with({"X-Hub-Signature-256": hub_signature(BODY)}), APP_SECRET)
    upper = "sha256=" + hub_signature(BODY).removeprefix("sha256=").upper()
    verify_signature(request_with({"X-Hub-Signature-256": upper}), APP_SECRET)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": ""},
        {"X-Hub-Signature-256": hub_signature(BODY + b" ")},
        {"X-Hub-Signature-256": hub_signature(BODY, "other-secret")},
        {"X-Hub-Signature": "sha1=" + "0" * 40},
        {"X-Hub-Signature-256": "sha256=ü"},
    ],
    ids=["none", "empty", "other-body", "other-secret", "sha1-only", "not-ascii"],
)
def test_anything_else_is_rejected_without_revealing_the_expected_value(headers):
    """Missing, empty, for another body or secret, only the old SHA-1 header, not ASCII:
    WebhookRejected, whose message holds no digest."""
    with pytest.raises(WebhookRejected) as raised:
        verify_signature(request_with(headers), APP_SECRET)
    assert compute_signature(APP_SECRET, BODY).removeprefix("sha256=") not in raised.value.message

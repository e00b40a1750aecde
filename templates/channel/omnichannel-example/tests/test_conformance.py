"""The channel passes the conformance suite every channel runs: the real server loads it
from its installed entry point (install the distribution first: ``pip install -e .``),
calls a fake of the provider's API over loopback, and takes webhooks signed as the
provider signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from omnichannel_core.channel import (
    DeliveryStatus,
)
from omnichannel_core.testing import (
    ChannelConformance,
    FakeProvider,
    RecordedRequest,
    ScriptedResponse,
    WebhookCall,
)

API_TOKEN = "test-api-token"
WEBHOOK_SECRET = "test-webhook-secret"
VERIFY_TOKEN = "test-verify-token"
SETTINGS = ("EXAMPLE_API_TOKEN", "EXAMPLE_WEBHOOK_SECRET", "EXAMPLE_VERIFY_TOKEN")


def provider_answer(request: RecordedRequest) -> ScriptedResponse:
    """The provider's API as its documentation describes it: the token checked, each send
    answered with a fresh message id."""
    if request.headers.get("authorization") != f"Bearer {API_TOKEN}":
        return ScriptedResponse.json(401, {"error": {"code": "unauthorized"}})
    if request.method == "GET" and request.path == "/v1/me":
        return ScriptedResponse.json(200, {"id": "account-1"})
    if request.method == "POST" and request.path == "/v1/messages":
        return ScriptedResponse.json(201, {"id": f"p-{uuid.uuid4().hex}"})
    return ScriptedResponse.json(404, {"error": {"code": "not_found"}})


def signed(path: str, payload: object) -> WebhookCall:
    """A request to the channel's ``path``, signed as the provider signs it (computed here
    from the provider's documentation, not with the channel's own code)."""
    body = json.dumps(payload).encode()
    digest = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Example-Signature": f"sha256={digest}"}
    return WebhookCall(path, body, headers)


class TestExampleConformance(ChannelConformance):
    channel = "example"

    @contextmanager
    def provider(self) -> Iterator[FakeProvider]:
        with FakeProvider(answer=provider_answer) as fake:
            yield fake

    def environ(self, provider_url: str) -> Mapping[str, str | None]:
        return {
            "EXAMPLE_API_TOKEN": API_TOKEN,
            "EXAMPLE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "EXAMPLE_VERIFY_TOKEN": VERIFY_TOKEN,
            "EXAMPLE_API_BASE_URL": provider_url,
        }

    def inbound(self, provider_message_id: str, sender: str, text: str) -> WebhookCall:
        message = {"id": provider_message_id, "from": sender, "text": text}
        return signed("webhook", {"messages": [message]})

    def status(
        self, provider_message_id: str, recipient: str, status: DeliveryStatus
    ) -> WebhookCall:
        update = {"message_id": provider_message_id, "status": status.value}
        return signed("status", {"statuses": [update]})

    def unconfigured_environ(self) -> Mapping[str, str | None]:
        return dict.fromkeys(SETTINGS)  # None: unset, whatever the test run's environment has

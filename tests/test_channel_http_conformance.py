"""The generic HTTP channel passes the conformance suite every channel runs
(omnichannel_core.testing.ChannelConformance), against the real server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from omnichannel_core.models import DeliveryStatus
from omnichannel_core.testing import (
    ChannelConformance,
    FakeProvider,
    RecordedRequest,
    ScriptedResponse,
    WebhookCall,
)
from tests.conftest import WEBHOOK_SECRET
from tests.support.signing import SIGNATURE_HEADER, encode, signature


def _accept(request: RecordedRequest) -> ScriptedResponse:
    """The receiver takes every message and names it with an id of its own."""
    return ScriptedResponse.json(200, {"id": f"remote-{uuid.uuid4().hex}"})


def _signed(path: str, payload: object) -> WebhookCall:
    body = encode(payload)
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(body)}
    return WebhookCall(path, body, headers)


class TestHttpChannelConformance(ChannelConformance):
    channel = "http"

    @contextmanager
    def provider(self) -> Iterator[FakeProvider]:
        with FakeProvider(answer=_accept) as receiver:
            yield receiver

    def environ(self, provider_url: str) -> Mapping[str, str | None]:
        return {"WEBHOOK_SECRET": WEBHOOK_SECRET, "HTTP_CHANNEL_SEND_URL": provider_url + "/in"}

    def inbound(self, provider_message_id: str, sender: str, text: str) -> WebhookCall:
        return _signed("webhook", {"id": provider_message_id, "from": sender, "text": text})

    def status(
        self, provider_message_id: str, recipient: str, status: DeliveryStatus
    ) -> WebhookCall:
        return _signed("status", {"id": provider_message_id, "status": status.value})

    def unconfigured_environ(self) -> Mapping[str, str | None]:
        return {"WEBHOOK_SECRET": None, "HTTP_CHANNEL_SEND_URL": None}

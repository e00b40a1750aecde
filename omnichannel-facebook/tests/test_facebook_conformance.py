"""The plugin kit's conformance suite, run on the Facebook channel against the fake Graph API."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from fake_graph import GRAPH_VERSION, FakeGraph
from messenger_events import (
    APP_SECRET,
    PAGE_ID,
    PAGE_TOKEN,
    SIGNATURE_HEADER,
    VERIFY_TOKEN,
    delivery_event,
    hub_signature,
    now_ms,
    read_event,
    text_event,
    webhook,
)

from omnichannel_core.channel import (
    DeliveryStatus,
)
from omnichannel_core.testing import ChannelConformance, WebhookCall

FACEBOOK_VARIABLES = (
    "FACEBOOK_PAGE_ACCESS_TOKEN",
    "FACEBOOK_APP_SECRET",
    "FACEBOOK_VERIFY_TOKEN",
    "FACEBOOK_GRAPH_API_VERSION",
    "FACEBOOK_GRAPH_API_BASE_URL",
)


def signed(body: dict[str, Any]) -> WebhookCall:
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: hub_signature(raw)}
    return WebhookCall("webhook", raw, headers)


class TestFacebookConformance(ChannelConformance):
    channel = "facebook"

    def provider(self) -> AbstractContextManager[FakeGraph]:
        return FakeGraph(PAGE_TOKEN, APP_SECRET, PAGE_ID)

    def environ(self, provider_url: str) -> Mapping[str, str | None]:
        return {
            "FACEBOOK_PAGE_ACCESS_TOKEN": PAGE_TOKEN,
            "FACEBOOK_APP_SECRET": APP_SECRET,
            "FACEBOOK_VERIFY_TOKEN": VERIFY_TOKEN,
            "FACEBOOK_GRAPH_API_VERSION": GRAPH_VERSION,
            "FACEBOOK_GRAPH_API_BASE_URL": provider_url,
        }

    def unconfigured_environ(self) -> Mapping[str, str | None]:
        return dict.fromkeys(FACEBOOK_VARIABLES)

    def new_address(self) -> str:
        """A PSID: Messenger's ids are digits, and the channel sends to nothing else."""
        return "8" + f"{random.randrange(10**15):015d}"

    def inbound(self, provider_message_id: str, sender: str, text: str) -> WebhookCall:
        return signed(webhook(text_event(sender, text, mid=provider_message_id)))

    def status(
        self, provider_message_id: str, recipient: str, status: DeliveryStatus
    ) -> WebhookCall:
        """Messenger's receipts: a read watermark, or a delivery naming the mid."""
        if status is DeliveryStatus.READ:
            return signed(webhook(read_event(recipient, now_ms())))
        return signed(webhook(delivery_event(recipient, now_ms(), mids=[provider_message_id])))

"""The Twilio channel passes the conformance suite every channel runs
(omnichannel_core.testing.ChannelConformance): the real server, the fake Twilio API, and
webhooks and status callbacks signed as Twilio signs them."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from fake_twilio import FakeTwilio
from twilio_signing import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FORM,
    PHONE_NUMBER,
    PUBLIC_URL,
    SIGNATURE_HEADER,
    sms_form,
    status_form,
    twilio_signature,
    unique_phone,
    unique_sid,
)

from omnichannel_core.channel import (
    DeliveryStatus,
)
from omnichannel_core.testing import ChannelConformance, WebhookCall

TWILIO_VARIABLES = (
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_PHONE_NUMBER",
    "TWILIO_WHATSAPP_NUMBER",
    "TWILIO_MESSAGING_SERVICE_SID",
    "TWILIO_API_BASE_URL",
)


def _signed(path: str, form: Mapping[str, str]) -> WebhookCall:
    """A form POSTed to the channel's ``path``, signed over the public URL as Twilio does."""
    signature = twilio_signature(f"{PUBLIC_URL}/api/channels/twilio/{path}", form)
    headers = {"Content-Type": FORM, SIGNATURE_HEADER: signature}
    return WebhookCall(path, urlencode(form).encode(), headers)


class TestTwilioConformance(ChannelConformance):
    channel = "twilio"

    def provider(self) -> FakeTwilio:
        return FakeTwilio(ACCOUNT_SID, AUTH_TOKEN)

    def environ(self, provider_url: str) -> Mapping[str, str | None]:
        return {
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_PHONE_NUMBER": PHONE_NUMBER,
            "TWILIO_API_BASE_URL": provider_url,
            "OMNICHANNEL_PUBLIC_URL": PUBLIC_URL,
        }

    def inbound(self, provider_message_id: str, sender: str, text: str) -> WebhookCall:
        return _signed("webhook", sms_form(sender, text, MessageSid=provider_message_id))

    def status(
        self, provider_message_id: str, recipient: str, status: DeliveryStatus
    ) -> WebhookCall:
        return _signed("status", status_form(provider_message_id, status.value, to=recipient))

    def unconfigured_environ(self) -> Mapping[str, str | None]:
        return dict.fromkeys(TWILIO_VARIABLES)

    def new_address(self) -> str:
        return unique_phone()

    def new_provider_message_id(self) -> str:
        return unique_sid()

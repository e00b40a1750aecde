"""Configuration variants through the real server: a messaging service for SMS, the WhatsApp
sender defaulting to the phone number, and sending without a public URL."""

from __future__ import annotations

from fake_twilio import FakeTwilio
from twilio_outbox import WAIT
from twilio_signing import (
    MESSAGING_SERVICE_SID,
    PHONE_NUMBER,
    PUBLIC_URL,
    STATUS_PATH,
    unique_phone,
)

SEND_SMS = "/api/channels/twilio/send/sms"
SEND_WHATSAPP = "/api/channels/twilio/send/whatsapp"


def test_sms_goes_through_the_messaging_service(messaging_service_server, fake_twilio):
    """With TWILIO_MESSAGING_SERVICE_SID, an SMS is sent with MessagingServiceSid and no
    From; Twilio's "accepted" answer is stored as queued."""
    phone = unique_phone()
    with messaging_service_server.client() as client:
        response = client.post(SEND_SMS, json={"to": phone, "message": "via service"}, headers=WAIT)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "queued"
    [sent] = fake_twilio.message_requests(to=phone)
    assert sent.param("MessagingServiceSid") == MESSAGING_SERVICE_SID
    assert "From" not in sent.form
    message_id = response.json()["id"]
    assert sent.param("StatusCallback") == f"{PUBLIC_URL}{STATUS_PATH}?message_id={message_id}"


def test_whatsapp_sender_defaults_to_the_phone_number(messaging_service_server, fake_twilio):
    """Without TWILIO_WHATSAPP_NUMBER, WhatsApp goes out from "whatsapp:" + the phone number
    (the messaging service is for SMS only)."""
    phone = unique_phone()
    with messaging_service_server.client() as client:
        response = client.post(SEND_WHATSAPP, json={"to": phone, "message": "hi"}, headers=WAIT)
    assert response.status_code == 201, response.text
    [sent] = fake_twilio.message_requests(to="whatsapp:" + phone)
    assert sent.param("From") == "whatsapp:" + PHONE_NUMBER


def test_send_without_public_url_is_503_and_nothing_sent(loopback_server, fake_twilio: FakeTwilio):
    """Without OMNICHANNEL_PUBLIC_URL there is no status callback URL: a send answers 503
    naming OMNICHANNEL_PUBLIC_URL and nothing reaches Twilio."""
    phone = unique_phone()
    with loopback_server.client() as client:
        response = client.post(SEND_SMS, json={"to": phone, "message": "x"})
        assert response.status_code == 503, response.text
        assert client.get("/api/contacts", params={"q": phone}).json()["items"] == []
    assert response.json()["error"] == "channel_unavailable"
    assert "OMNICHANNEL_PUBLIC_URL" in response.json()["message"]
    assert fake_twilio.message_requests(to=phone) == []

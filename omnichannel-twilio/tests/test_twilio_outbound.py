"""Outbound SMS and WhatsApp through the real server to the fake Twilio REST API: what Twilio
receives, the checks made before calling it, and how Twilio's errors come back."""

from __future__ import annotations

import json

import pytest
from fake_twilio import (
    ERROR_MESSAGES,
    INTERNAL_ERROR,
    INVALID_TO,
    OUTSIDE_WINDOW,
    TOO_MANY_REQUESTS,
    UNSUBSCRIBED,
    FakeTwilio,
    MessageAnswer,
    new_message_sid,
)
from twilio_signing import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PHONE_NUMBER,
    PUBLIC_URL,
    STATUS_PATH,
    WHATSAPP_NUMBER,
    post_webhook,
    sms_form,
    unique_phone,
    whatsapp_form,
)

SEND_SMS = "/api/channels/twilio/send/sms"
SEND_WHATSAPP = "/api/channels/twilio/send/whatsapp"
STATUS_CALLBACK = PUBLIC_URL + STATUS_PATH
MEDIA = [f"https://cdn.example.test/pictures/{n}.jpg" for n in range(3)]


def callback_for(message: dict) -> str:
    """The status callback URL set for a stored message: the public status route, with our
    message id in the query (signed by Twilio with the rest of the URL)."""
    return f"{STATUS_CALLBACK}?message_id={message['id']}"


def test_send_sms_route_calls_twilio_with_everything(client, fake_twilio: FakeTwilio):
    """POST send/sms reaches Twilio's Messages.json with basic auth, To, From = the SMS
    number, Body, every MediaUrl and the StatusCallback on the public URL; the answer is the
    stored message with Twilio's SID, status queued."""
    phone = unique_phone()
    sid = new_message_sid()
    fake_twilio.queue(MessageAnswer.accept(sid))
    payload = {"to": phone, "message": "Your order shipped", "media_urls": MEDIA}
    response = client.post(SEND_SMS, json=payload)
    assert response.status_code == 201, response.text

    [sent] = fake_twilio.message_requests(to=phone)
    assert sent.method == "POST"
    assert sent.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert sent.basic_auth == (ACCOUNT_SID, AUTH_TOKEN)
    assert sent.param("From") == PHONE_NUMBER
    assert sent.param("Body") == "Your order shipped"
    assert sent.form["MediaUrl"] == MEDIA
    message = response.json()
    assert sent.param("StatusCallback") == f"{STATUS_CALLBACK}?message_id={message['id']}"
    assert message["provider_message_id"] == sid
    assert message["status"] == "queued"
    assert message["direction"] == "outbound"
    assert message["channel"] == "twilio"
    assert message["text"] == "Your order shipped"
    assert [m["url"] for m in message["media"]] == MEDIA


def test_send_whatsapp_route_uses_the_whatsapp_addresses(client, inbox, fake_twilio):
    """POST send/whatsapp sends To "whatsapp:+1..." from "whatsapp:" + the WhatsApp number;
    the contact is the bare number and its conversation answers on WhatsApp."""
    phone = unique_phone()
    response = client.post(SEND_WHATSAPP, json={"to": phone, "message": "Hi on WhatsApp"})
    assert response.status_code == 201, response.text

    [sent] = fake_twilio.message_requests(to="whatsapp:" + phone)
    assert sent.param("From") == "whatsapp:" + WHATSAPP_NUMBER
    assert sent.param("Body") == "Hi on WhatsApp"
    assert sent.param("StatusCallback") == callback_for(response.json())
    assert inbox.contact_of(phone)["identities"] == [{"channel": "twilio", "address": phone}]
    assert inbox.conversation_of(phone)["address"] == "whatsapp:" + phone


def test_sms_and_whatsapp_sends_to_one_phone_share_the_contact(client, inbox):
    """Sending by SMS then by WhatsApp to one phone keeps one contact and one conversation."""
    phone = unique_phone()
    assert client.post(SEND_SMS, json={"to": phone, "message": "a"}).status_code == 201
    assert client.post(SEND_WHATSAPP, json={"to": phone, "message": "b"}).status_code == 201
    conversation = inbox.conversation_of(phone)
    assert [m["text"] for m in inbox.messages(conversation["id"])] == ["a", "b"]


def test_reply_in_conversation_goes_through_twilio(client, inbox, fake_twilio):
    """The core's reply route sends through Twilio with the text and every media URL."""
    phone = unique_phone()
    assert post_webhook(client, whatsapp_form(phone, "send me the photos")).status_code == 200
    conversation = inbox.conversation_of(phone)
    response = client.post(
        f"/api/conversations/{conversation['id']}/messages",
        json={"text": "here they are", "media": MEDIA},
    )
    assert response.status_code == 201, response.text
    [sent] = fake_twilio.message_requests(to="whatsapp:" + phone)
    assert sent.param("Body") == "here they are"
    assert sent.form["MediaUrl"] == MEDIA
    assert sent.param("StatusCallback") == callback_for(response.json())
    assert response.json()["provider_message_id"].startswith("SM")


# checks before Twilio is called -----------------------------------------------------------

INVALID_SENDS = {
    "to_without_plus": ({"to": "15551234567", "message": "x"}, "to"),
    "to_leading_zero": ({"to": "+05551234567", "message": "x"}, "to"),
    "to_too_long": ({"to": "+1234567890123456", "message": "x"}, "to"),
    "to_letters": ({"to": "+1555CALLNOW", "message": "x"}, "to"),
    "to_missing": ({"message": "x"}, "to"),
    "message_missing": ({"to": "+15551230001"}, "message"),
    "message_empty": ({"to": "+15551230001", "message": ""}, "message"),
    "message_not_text": ({"to": "+15551230001", "message": 42}, "message"),
    "message_too_long": ({"to": "+15551230001", "message": "x" * 1601}, "message"),
    "media_http": (
        {"to": "+15551230001", "message": "x", "media_urls": ["http://cdn.example.test/a.jpg"]},
        "media_urls",
    ),
    "media_eleven": (
        {
            "to": "+15551230001",
            "message": "x",
            "media_urls": [f"https://cdn.example.test/{n}.jpg" for n in range(11)],
        },
        "media_urls",
    ),
    "unknown_field": ({"to": "+15551230001", "message": "x", "priority": "high"}, "priority"),
    "content_sid_malformed": ({"to": "+15551230001", "content_sid": "SM123"}, "content_sid"),
    "variables_without_template": (
        {"to": "+15551230001", "message": "x", "content_variables": {"1": "Ada"}},
        "content_variables",
    ),
}


@pytest.mark.parametrize("route", [SEND_SMS, SEND_WHATSAPP])
@pytest.mark.parametrize("case", sorted(INVALID_SENDS))
def test_invalid_send_is_refused_before_anything_happens(
    client, inbox, fake_twilio: FakeTwilio, route, case
):
    """A non-E.164 recipient, a missing/empty/over-1600-character message, a non-https media
    URL, more than 10 media URLs, an unknown field, a malformed content_sid or
    content_variables without one: 400 invalid_input naming the field, nothing stored and
    nothing sent to Twilio."""
    payload, field = INVALID_SENDS[case]
    phone = unique_phone()
    if payload.get("to") == "+15551230001":
        payload = {**payload, "to": phone}
    before = len(fake_twilio.message_requests())
    response = client.post(route, json=payload)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_input"
    assert field in body.get("field", "") or field in body["message"]
    assert len(fake_twilio.message_requests()) == before
    assert inbox.contact_of(phone) is None


def test_message_of_1600_characters_is_sent(client, fake_twilio):
    """1600 characters is Twilio's limit and still allowed."""
    phone = unique_phone()
    response = client.post(SEND_SMS, json={"to": phone, "message": "y" * 1600})
    assert response.status_code == 201, response.text
    assert fake_twilio.message_requests(to=phone)[0].param("Body") == "y" * 1600


@pytest.mark.parametrize(
    "request_body",
    [
        {"text": "z" * 1601},
        {"text": "insecure media", "media": ["http://cdn.example.test/a.jpg"]},
    ],
    ids=["text_too_long", "http_media"],
)
def test_reply_the_channel_cannot_send_is_rejected_and_stored_failed(
    client, inbox, fake_twilio, request_body
):
    """Through the core's reply route, a body over 1600 characters or an http media URL is
    refused by the channel before Twilio is called: 422 send_rejected, message failed."""
    phone = unique_phone()
    assert post_webhook(client, sms_form(phone)).status_code == 200
    conversation = inbox.conversation_of(phone)
    response = client.post(f"/api/conversations/{conversation['id']}/messages", json=request_body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "send_rejected"
    assert inbox.message(response.json()["message_id"])["status"] == "failed"
    assert fake_twilio.message_requests(to=phone) == []


# Twilio's errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "route", "prefix"),
    [
        (INVALID_TO, SEND_SMS, ""),
        (UNSUBSCRIBED, SEND_SMS, ""),
        (OUTSIDE_WINDOW, SEND_WHATSAPP, "whatsapp:"),
    ],
)
def test_twilio_rejection_is_a_422_with_twilios_code_and_message(
    client, inbox, fake_twilio: FakeTwilio, code, route, prefix
):
    """Twilio's 400 errors (21211 invalid To, 21610 unsubscribed, 63016 outside the
    WhatsApp 24-hour window) answer 422 send_rejected with Twilio's code and message; the
    message is stored failed with that error code; nothing is retried."""
    phone = unique_phone()
    fake_twilio.queue(MessageAnswer.error(code))
    response = client.post(route, json={"to": phone, "message": "hello"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "send_rejected"
    assert body["code"] == str(code)
    assert ERROR_MESSAGES[code].format(to=prefix + phone) in body["message"]
    if code == OUTSIDE_WINDOW:
        assert "content_sid" in body["message"]
    stored = inbox.message(body["message_id"])
    assert stored["status"] == "failed"
    assert stored["error_code"] == str(code)
    assert len(fake_twilio.message_requests(to=prefix + phone)) == 1


def test_rate_limit_is_retried_then_sent(client, fake_twilio: FakeTwilio):
    """A 429 (code 20429) from Twilio is retried with backoff; the second attempt's 201 makes
    the send succeed with that attempt's SID."""
    phone = unique_phone()
    sid = new_message_sid()
    fake_twilio.queue(MessageAnswer.error(TOO_MANY_REQUESTS), MessageAnswer.accept(sid))
    response = client.post(SEND_SMS, json={"to": phone, "message": "eventually"})
    assert response.status_code == 201, response.text
    assert response.json()["provider_message_id"] == sid
    assert response.json()["status"] == "queued"
    assert len(fake_twilio.message_requests(to=phone)) == 2


def test_server_errors_three_times_fail_as_provider_unavailable(
    client, inbox, fake_twilio: FakeTwilio
):
    """Three 500s in a row: 3 attempts in all, then 502 provider_unavailable and the message
    stored failed with the reason."""
    phone = unique_phone()
    fake_twilio.queue(*[MessageAnswer.error(INTERNAL_ERROR)] * 3)
    response = client.post(SEND_SMS, json={"to": phone, "message": "outage"})
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["error"] == "provider_unavailable"
    assert len(fake_twilio.message_requests(to=phone)) == 3
    stored = inbox.message(body["message_id"])
    assert stored["status"] == "failed"
    assert stored["error_code"] == str(INTERNAL_ERROR)
    assert stored["error_message"]


def test_repeated_idempotency_key_sends_once(client, fake_twilio: FakeTwilio):
    """The same Idempotency-Key twice: 201 then 200 with the same message, one request to
    Twilio."""
    phone = unique_phone()
    headers = {"Idempotency-Key": "order-" + phone}
    payload = {"to": phone, "message": "once only"}
    first = client.post(SEND_SMS, json=payload, headers=headers)
    second = client.post(SEND_SMS, json=payload, headers=headers)
    assert first.status_code == 201, first.text
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert len(fake_twilio.message_requests(to=phone)) == 1


def test_idempotency_key_reused_for_another_message_is_a_conflict(client, fake_twilio):
    """An Idempotency-Key reused with a different message: 409, nothing more sent."""
    phone = unique_phone()
    headers = {"Idempotency-Key": "reuse-" + phone}
    assert client.post(SEND_SMS, json={"to": phone, "message": "a"}, headers=headers).is_success
    response = client.post(SEND_SMS, json={"to": phone, "message": "b"}, headers=headers)
    assert response.status_code == 409
    assert len(fake_twilio.message_requests(to=phone)) == 1


def test_whatsapp_template_sends_content_sid_and_variables_without_body(
    client, fake_twilio: FakeTwilio
):
    """A template send (content_sid + content_variables, no message) gives Twilio ContentSid
    and ContentVariables as JSON, and no Body."""
    phone = unique_phone()
    content_sid = "HX" + "b" * 32
    variables = {"1": "12/1", "2": "3pm"}
    response = client.post(
        SEND_WHATSAPP,
        json={"to": phone, "content_sid": content_sid, "content_variables": variables},
    )
    assert response.status_code == 201, response.text
    [sent] = fake_twilio.message_requests(to="whatsapp:" + phone)
    assert sent.param("ContentSid") == content_sid
    assert json.loads(sent.param("ContentVariables")) == variables
    assert "Body" not in sent.form
    assert sent.param("From") == "whatsapp:" + WHATSAPP_NUMBER
    assert sent.param("StatusCallback") == callback_for(response.json())


def test_secrets_and_bodies_stay_out_of_the_log(client, twilio_server, fake_twilio):
    """After sends and an error, the server log holds neither the auth token nor a body."""
    phone = unique_phone()
    secret_text = "private-body-" + phone
    assert client.post(SEND_SMS, json={"to": phone, "message": secret_text}).status_code == 201
    fake_twilio.queue(MessageAnswer.error(INVALID_TO))
    client.post(SEND_SMS, json={"to": phone, "message": secret_text + "-2"})
    log = twilio_server.log()
    assert AUTH_TOKEN not in log
    assert secret_text not in log

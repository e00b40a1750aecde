"""Inbound SMS and WhatsApp through the real server: signed as Twilio signs them, stored
once, threaded into one contact and one conversation per phone, answered with empty TwiML."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest
from fake_twilio import FakeTwilio
from twilio_outbox import WAIT
from twilio_signing import (
    AUTH_TOKEN,
    PHONE_NUMBER,
    PUBLIC_URL,
    WEBHOOK_PATH,
    WHATSAPP_NUMBER,
    post_form,
    post_webhook,
    sms_form,
    twilio_signature,
    unique_phone,
    whatsapp_form,
)

EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def test_sms_is_stored_with_contact_and_conversation(client, inbox):
    """A signed inbound SMS is stored as received text with Twilio's MessageSid; the contact
    is identified by the bare E.164 number and the conversation answers to that number."""
    phone = unique_phone()
    form = sms_form(phone, "I need help")
    response = post_webhook(client, form)
    assert response.status_code == 200, response.text

    contact = inbox.contact_of(phone)
    assert contact["identities"] == [{"channel": "twilio", "address": phone}]
    conversation = inbox.conversation_of(phone)
    assert conversation["address"] == phone
    assert conversation["unread_count"] == 1
    [message] = inbox.messages(conversation["id"])
    assert message["direction"] == "inbound"
    assert message["status"] == "received"
    assert message["text"] == "I need help"
    assert message["provider_message_id"] == form["MessageSid"]
    assert message["metadata"]["twilio"]["kind"] == "sms"
    assert message["metadata"]["twilio"]["to"] == PHONE_NUMBER
    assert message["metadata"]["twilio"]["num_segments"] == 1


def test_webhook_answers_empty_twiml(client):
    """Twilio gets a 200 with an empty TwiML document as text/xml, so it sends no reply."""
    response = post_webhook(client, sms_form(unique_phone()))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert response.content == EMPTY_TWIML
    root = ElementTree.fromstring(response.content)
    assert root.tag == "Response" and len(root) == 0


def test_whatsapp_message_names_contact_and_answers_on_whatsapp(client, inbox):
    """A WhatsApp message (From "whatsapp:+1...") makes a contact identified by the bare
    number, named from ProfileName, whose conversation answers to the whatsapp: address."""
    phone = unique_phone()
    form = whatsapp_form(phone, "hola", profile_name="Ada Lovelace")
    assert post_webhook(client, form).status_code == 200

    contact = inbox.contact_of(phone)
    assert contact["display_name"] == "Ada Lovelace"
    assert contact["identities"] == [{"channel": "twilio", "address": phone}]
    conversation = inbox.conversation_of(phone)
    assert conversation["address"] == "whatsapp:" + phone
    [message] = inbox.messages(conversation["id"])
    assert message["text"] == "hola"
    assert message["metadata"]["twilio"]["kind"] == "whatsapp"
    assert message["metadata"]["twilio"]["to"] == "whatsapp:" + WHATSAPP_NUMBER


def test_sms_and_whatsapp_from_one_phone_share_contact_and_conversation(client, inbox):
    """SMS and WhatsApp from the same phone land in one contact and one conversation, whose
    address follows the channel the customer last wrote on."""
    phone = unique_phone()
    assert post_webhook(client, sms_form(phone, "by sms")).status_code == 200
    first = inbox.conversation_of(phone)
    assert post_webhook(client, whatsapp_form(phone, "by whatsapp")).status_code == 200
    second = inbox.conversation_of(phone)
    assert second["id"] == first["id"]
    assert second["address"] == "whatsapp:" + phone
    assert post_webhook(client, sms_form(phone, "sms again")).status_code == 200
    third = inbox.conversation_of(phone)
    assert third["id"] == first["id"]
    assert third["address"] == phone
    texts = [m["text"] for m in inbox.messages(first["id"])]
    assert texts == ["by sms", "by whatsapp", "sms again"]


def test_reply_goes_to_the_channel_the_customer_last_used(client, inbox, fake_twilio: FakeTwilio):
    """A reply in the conversation goes to WhatsApp (from the WhatsApp sender) after a
    WhatsApp message, and to SMS (from the SMS number) after an SMS."""
    phone = unique_phone()
    assert post_webhook(client, whatsapp_form(phone)).status_code == 200
    conversation = inbox.conversation_of(phone)
    path = f"/api/conversations/{conversation['id']}/messages"
    assert client.post(path, json={"text": "on whatsapp"}, headers=WAIT).status_code == 201
    [sent] = fake_twilio.message_requests(to="whatsapp:" + phone)
    assert sent.param("From") == "whatsapp:" + WHATSAPP_NUMBER
    assert sent.param("Body") == "on whatsapp"

    assert post_webhook(client, sms_form(phone)).status_code == 200
    assert client.post(path, json={"text": "on sms"}, headers=WAIT).status_code == 201
    [sent] = fake_twilio.message_requests(to=phone)
    assert sent.param("From") == PHONE_NUMBER
    assert sent.param("Body") == "on sms"


def test_every_media_item_is_stored(client, inbox):
    """NumMedia=3 stores all three MediaUrl{i} with their MediaContentType{i}, not just the
    first; an empty Body is stored as no text."""
    phone = unique_phone()
    media = [
        ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", "image/jpeg"),
        ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2", "video/mp4"),
        ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME3", "audio/ogg"),
    ]
    fields = {"NumMedia": str(len(media))}
    for index, (url, content_type) in enumerate(media):
        fields[f"MediaUrl{index}"] = url
        fields[f"MediaContentType{index}"] = content_type
    assert post_webhook(client, whatsapp_form(phone, "", **fields)).status_code == 200

    [message] = inbox.messages(inbox.conversation_of(phone)["id"])
    assert message["text"] is None
    assert [(m["url"], m["content_type"]) for m in message["media"]] == media


def test_shared_location_is_kept_in_metadata(client, inbox):
    """A WhatsApp location keeps Latitude/Longitude as numbers and Address/Label as text."""
    phone = unique_phone()
    fields = {
        "Latitude": "37.7749",
        "Longitude": "-122.4194",
        "Address": "1 Market St, San Francisco",
        "Label": "Head office",
        "MessageType": "location",
    }
    assert post_webhook(client, whatsapp_form(phone, "", **fields)).status_code == 200

    [message] = inbox.messages(inbox.conversation_of(phone)["id"])
    assert message["metadata"]["location"] == {
        "latitude": 37.7749,
        "longitude": -122.4194,
        "address": "1 Market St, San Francisco",
        "label": "Head office",
    }


def test_message_without_text_or_media_is_still_stored(client, inbox):
    """Twilio sent it, so a message with an empty Body and no media is stored anyway."""
    phone = unique_phone()
    assert post_webhook(client, sms_form(phone, "")).status_code == 200
    [message] = inbox.messages(inbox.conversation_of(phone)["id"])
    assert message["text"] is None and message["media"] == []


def test_retried_webhook_stores_one_message(client, inbox):
    """Twilio retrying the same MessageSid is acknowledged each time and stored once."""
    phone = unique_phone()
    form = sms_form(phone, "only once")
    for _ in range(3):
        response = post_webhook(client, form)
        assert response.status_code == 200
        assert response.content == EMPTY_TWIML
    conversation = inbox.conversation_of(phone)
    assert conversation["unread_count"] == 1
    assert [m["text"] for m in inbox.messages(conversation["id"])] == ["only once"]


# signatures --------------------------------------------------------------------------------


def test_missing_signature_is_rejected_and_nothing_stored(client, inbox):
    """No X-Twilio-Signature: 403 webhook_rejected, no contact, no message."""
    phone = unique_phone()
    response = post_webhook(client, sms_form(phone), signature="")
    assert response.status_code == 403
    assert response.json()["error"] == "webhook_rejected"
    assert inbox.contact_of(phone) is None


@pytest.mark.parametrize(
    "tamper",
    ["wrong_token", "garbage", "changed_body", "loopback_url", "other_path", "query_added"],
)
def test_wrong_signature_is_rejected_and_nothing_stored(client, inbox, twilio_server, tamper):
    """A signature made with another auth token, a garbage one, one over different
    parameters, or one over another URL than the public one (the loopback URL the server is
    reached on, another path, an added query) gets 403 and nothing is stored."""
    phone = unique_phone()
    form = sms_form(phone, "let me in")
    if tamper == "wrong_token":
        response = post_webhook(client, form, auth_token="not-the-token")
    elif tamper == "garbage":
        response = post_webhook(client, form, signature="bm90IGEgc2lnbmF0dXJl")
    elif tamper == "changed_body":
        signature = twilio_signature(PUBLIC_URL + WEBHOOK_PATH, {**form, "Body": "other"})
        response = post_webhook(client, form, signature=signature)
    elif tamper == "loopback_url":
        response = post_webhook(client, form, signed_url=twilio_server.base_url + WEBHOOK_PATH)
    elif tamper == "other_path":
        response = post_webhook(client, form, signed_url=PUBLIC_URL + "/api/channels/x/webhook")
    else:
        response = post_webhook(client, form, signed_url=PUBLIC_URL + WEBHOOK_PATH + "?a=1")
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "webhook_rejected"
    assert AUTH_TOKEN not in response.text
    assert inbox.contact_of(phone) is None


def test_signature_covers_the_query_string(client, inbox):
    """Twilio signs the full URL it called, query included: a webhook configured with a
    query string is accepted when signed over the public URL with that query."""
    phone = unique_phone()
    response = post_form(client, WEBHOOK_PATH + "?tenant=a", sms_form(phone, "with query"))
    assert response.status_code == 200, response.text
    assert inbox.contact_of(phone) is not None


def test_forwarded_headers_are_not_trusted_by_default(client, inbox):
    """With OMNICHANNEL_PUBLIC_URL set and no trusted proxy, X-Forwarded-* headers cannot
    change the URL the signature is checked against."""
    phone = unique_phone()
    forged = "https://attacker.example.test" + WEBHOOK_PATH
    headers = {"X-Forwarded-Host": "attacker.example.test", "X-Forwarded-Proto": "https"}
    response = post_webhook(client, sms_form(phone), signed_url=forged, headers=headers)
    assert response.status_code == 403
    assert inbox.contact_of(phone) is None


def test_body_that_is_not_utf8_form_data_is_refused(client, inbox):
    """A body that is not UTF-8 form data is refused with a 4xx (400 or 403), never 5xx."""
    response = client.post(
        WEBHOOK_PATH,
        content=b"From=%2B15551234567&Body=\xff\xfe&MessageSid=SMx",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": "bm9wZQ==",
        },
    )
    assert response.status_code in (400, 403), response.text
    assert inbox.contact_of("+15551234567") is None


# STOP / START ----------------------------------------------------------------------------


def _send_sms(client, phone: str, text: str):
    """send/sms, answered once the first attempt is over (Prefer: wait)."""
    return client.post(
        "/api/channels/twilio/send/sms", json={"to": phone, "message": text}, headers=WAIT
    )


@pytest.mark.parametrize("keyword", ["STOP", " stop ", "Unsubscribe", "CANCEL", "end", "QUIT"])
def test_stop_keyword_opts_the_contact_out(client, inbox, fake_twilio: FakeTwilio, keyword):
    """A STOP keyword (trimmed, any case) marks the contact opted out of twilio; a later send
    is refused with 422 recipient_opted_out and nothing reaches Twilio."""
    phone = unique_phone()
    assert post_webhook(client, sms_form(phone, keyword)).status_code == 200
    assert inbox.contact_of(phone)["opted_out"] == ["twilio"]

    response = _send_sms(client, phone, "are you there?")
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "recipient_opted_out"
    conversation = inbox.conversation_of(phone)
    reply = client.post(f"/api/conversations/{conversation['id']}/messages", json={"text": "hi"})
    assert reply.status_code == 422
    assert reply.json()["error"] == "recipient_opted_out"
    assert fake_twilio.message_requests(to=phone) == []


def test_opt_out_type_param_opts_out_whatever_the_body(client, inbox):
    """Twilio's OptOutType=STOP (e.g. a custom opt-out keyword) opts the contact out even
    when the body is not one of the standard keywords."""
    phone = unique_phone()
    form = sms_form(phone, "arret", OptOutType="STOP")
    assert post_webhook(client, form).status_code == 200
    assert inbox.contact_of(phone)["opted_out"] == ["twilio"]


def test_start_keyword_opts_the_contact_back_in(client, inbox, fake_twilio: FakeTwilio):
    """START after STOP removes the opt-out: a send goes through to Twilio again."""
    phone = unique_phone()
    assert post_webhook(client, sms_form(phone, "STOP")).status_code == 200
    assert post_webhook(client, sms_form(phone, "START")).status_code == 200
    assert inbox.contact_of(phone)["opted_out"] == []
    response = _send_sms(client, phone, "welcome back")
    assert response.status_code == 201, response.text
    assert len(fake_twilio.message_requests(to=phone)) == 1


def test_ordinary_message_mentioning_stop_does_not_opt_out(client, inbox):
    """Only a body that is exactly a keyword opts out: "please don't stop" does not."""
    phone = unique_phone()
    assert post_webhook(client, sms_form(phone, "please don't stop")).status_code == 200
    assert inbox.contact_of(phone)["opted_out"] == []

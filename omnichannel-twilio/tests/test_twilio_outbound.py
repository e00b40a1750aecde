"""Outbound SMS and WhatsApp through the real server to the fake Twilio REST API: what Twilio
receives, the checks made before calling it, how Twilio's errors come back, and what the
outbox does with them (one attempt per send; retries, doubt and pace are the outbox's)."""

from __future__ import annotations

import itertools
import json
import time
from urllib.parse import parse_qs, urlsplit

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
from twilio_outbox import WAIT, WAIT_SECONDS, ended, message_when, taken
from twilio_signing import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PHONE_NUMBER,
    PUBLIC_URL,
    STATUS_PATH,
    WHATSAPP_NUMBER,
    post_form,
    post_status,
    post_webhook,
    sms_form,
    status_form,
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
    stored message with Twilio's SID, status queued (with Prefer: wait, 201 once Twilio
    took it)."""
    phone = unique_phone()
    sid = new_message_sid()
    fake_twilio.queue(MessageAnswer.accept(sid), to=phone)
    payload = {"to": phone, "message": "Your order shipped", "media_urls": MEDIA}
    response = client.post(SEND_SMS, json=payload, headers=WAIT)
    assert response.status_code == 201, response.text
    assert response.headers["Preference-Applied"] == f"wait={WAIT_SECONDS}"

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
    assert (message["attempts"], message["in_doubt"], message["error_code"]) == (1, False, None)


def test_send_is_answered_202_at_once_and_sent_by_the_outbox(client, fake_twilio: FakeTwilio):
    """Without Prefer: wait, send/sms answers 202 with the message stored queued, before
    anything reached Twilio; the outbox then sends it once, and the message gets the SID."""
    phone = unique_phone()
    sid = new_message_sid()
    fake_twilio.queue(MessageAnswer.accept(sid), to=phone)
    response = client.post(SEND_SMS, json={"to": phone, "message": "later"})
    assert response.status_code == 202, response.text
    assert "Preference-Applied" not in response.headers
    queued = response.json()
    assert (queued["status"], queued["provider_message_id"], queued["attempts"]) == (
        "queued",
        None,
        0,
    )
    sent = message_when(client, queued["id"], taken)
    assert (sent["provider_message_id"], sent["status"], sent["attempts"]) == (sid, "queued", 1)
    assert len(fake_twilio.message_requests(to=phone)) == 1


def test_send_whatsapp_route_uses_the_whatsapp_addresses(client, inbox, fake_twilio):
    """POST send/whatsapp sends To "whatsapp:+1..." from "whatsapp:" + the WhatsApp number;
    the contact is the bare number and its conversation answers on WhatsApp."""
    phone = unique_phone()
    response = client.post(
        SEND_WHATSAPP, json={"to": phone, "message": "Hi on WhatsApp"}, headers=WAIT
    )
    assert response.status_code == 201, response.text

    [sent] = fake_twilio.message_requests(to="whatsapp:" + phone)
    assert sent.param("From") == "whatsapp:" + WHATSAPP_NUMBER
    assert sent.param("Body") == "Hi on WhatsApp"
    assert sent.param("StatusCallback") == callback_for(response.json())
    assert inbox.contact_of(phone)["identities"] == [{"channel": "twilio", "address": phone}]
    assert inbox.conversation_of(phone)["address"] == "whatsapp:" + phone


def test_sms_and_whatsapp_sends_to_one_phone_share_the_contact(client, inbox):
    """Sending by SMS then by WhatsApp to one phone keeps one contact and one conversation
    (each send stored and answered 202 at once)."""
    phone = unique_phone()
    assert client.post(SEND_SMS, json={"to": phone, "message": "a"}).status_code == 202
    assert client.post(SEND_WHATSAPP, json={"to": phone, "message": "b"}).status_code == 202
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
        headers=WAIT,
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
    response = client.post(SEND_SMS, json={"to": phone, "message": "y" * 1600}, headers=WAIT)
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
    refused by the channel before Twilio is called: 422 send_rejected (with Prefer: wait),
    message failed at its first attempt, never retried."""
    phone = unique_phone()
    assert post_webhook(client, sms_form(phone)).status_code == 200
    conversation = inbox.conversation_of(phone)
    response = client.post(
        f"/api/conversations/{conversation['id']}/messages", json=request_body, headers=WAIT
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "send_rejected"
    assert body["stored_message"]["status"] == "failed"
    stored = inbox.message(body["message_id"])
    assert (stored["status"], stored["attempts"]) == ("failed", 1)
    assert stored["error_code"] in ("body_too_long", "media_url_not_https")
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
    WhatsApp 24-hour window) answer 422 send_rejected (with Prefer: wait) with Twilio's code
    and message; the message is stored failed with that error code; nothing is retried."""
    phone = unique_phone()
    fake_twilio.queue(MessageAnswer.error(code), to=prefix + phone)
    response = client.post(route, json={"to": phone, "message": "hello"}, headers=WAIT)
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
    assert stored["attempts"] == 1
    assert len(fake_twilio.message_requests(to=prefix + phone)) == 1


# the outbox's retries (the channel makes one attempt per send) ----------------------------


def test_rate_limit_is_retried_by_the_outbox_then_sent(client, fake_twilio: FakeTwilio):
    """A 429 (code 20429) from Twilio is not retried by the channel; the outbox tries again
    after its backoff, and the second attempt's 201 gives the message that attempt's SID
    with the 429's error cleared: two requests reached Twilio, two attempts counted."""
    phone = unique_phone()
    sid = new_message_sid()
    fake_twilio.queue(MessageAnswer.error(TOO_MANY_REQUESTS), MessageAnswer.accept(sid), to=phone)
    response = client.post(SEND_SMS, json={"to": phone, "message": "eventually"})
    assert response.status_code == 202, response.text
    sent = message_when(client, response.json()["id"], taken)
    assert sent["provider_message_id"] == sid
    assert sent["status"] == "queued"  # Twilio's own first status for a message it took
    assert (sent["error_code"], sent["error_message"], sent["in_doubt"]) == (None, None, False)
    assert sent["attempts"] == 2
    assert len(fake_twilio.message_requests(to=phone)) == 2


def test_server_errors_are_retried_by_the_outbox_until_twilio_takes_the_message(
    client, fake_twilio: FakeTwilio
):
    """Two 500s (code 20500) then a 201: the outbox's third attempt gets through, three
    requests in all, each the same message to the same recipient with the same callback."""
    phone = unique_phone()
    sid = new_message_sid()
    outage = [MessageAnswer.error(INTERNAL_ERROR)] * 2
    fake_twilio.queue(*outage, MessageAnswer.accept(sid), to=phone)
    response = client.post(SEND_SMS, json={"to": phone, "message": "after the outage"})
    assert response.status_code == 202, response.text
    message_id = response.json()["id"]
    sent = message_when(client, message_id, taken)
    assert (sent["provider_message_id"], sent["attempts"], sent["error_code"]) == (sid, 3, None)
    requests = fake_twilio.message_requests(to=phone)
    assert len(requests) == 3
    assert {(r.param("Body"), r.param("StatusCallback")) for r in requests} == {
        ("after the outage", f"{STATUS_CALLBACK}?message_id={message_id}")
    }


def test_server_errors_past_the_retry_deadline_fail_the_message(
    short_deadline_server, fake_twilio: FakeTwilio
):
    """Twilio answering 500 to every attempt: the outbox retries with backoff until Twilio's
    retry deadline (2 s on this server), then the message is failed with the last error; a
    caller who waited longer is answered 502 provider_unavailable (an outage, not a
    refusal) with that failed message. Each attempt is one request to Twilio, and none
    follows."""
    phone = unique_phone()
    fake_twilio.queue(*[MessageAnswer.error(INTERNAL_ERROR)] * 100, to=phone)
    with short_deadline_server.client() as client:
        response = client.post(SEND_SMS, json={"to": phone, "message": "outage"}, headers=WAIT)
        assert response.status_code == 502, response.text
        body = response.json()
        assert body["error"] == "provider_unavailable"
        given_up = body["stored_message"]
        assert (given_up["status"], given_up["error_code"]) == ("failed", str(INTERNAL_ERROR))
        assert given_up["error_details"]["retryable"] is True
        failed = message_when(client, body["message_id"], ended)
    assert failed["status"] == "failed"
    assert failed["error_code"] == str(INTERNAL_ERROR)
    assert failed["error_message"]
    assert failed["in_doubt"] is False
    assert failed["attempts"] >= 2
    assert len(fake_twilio.message_requests(to=phone)) == failed["attempts"]
    time.sleep(0.3)  # several backoffs: a failed message is never tried again
    assert len(fake_twilio.message_requests(to=phone)) == failed["attempts"]


# a lost answer: in doubt, settled by the status callback ----------------------------------


def callback_path(request) -> tuple[str, str]:
    """The path (with its query) of the status callback URL a send gave Twilio, and the
    message id that query names."""
    url = request.param("StatusCallback")
    assert url.startswith(STATUS_CALLBACK + "?"), url
    parts = urlsplit(url)
    [message_id] = parse_qs(parts.query)["message_id"]
    return f"{parts.path}?{parts.query}", message_id


def test_lost_answer_leaves_the_message_in_doubt_until_its_callback(
    client, fake_twilio: FakeTwilio
):
    """Twilio reads the request and hangs up without answering: the message may have been
    sent, so it is in doubt (504 send_outcome_unknown with Prefer: wait; status sending,
    no SID) and never sent again. Twilio's status callback, posted to the URL the send gave
    it (which names our message id), settles it without the SID ever having come back: the
    message is sent with that SID, no longer in doubt, and later callbacks by SID apply."""
    phone = unique_phone()
    fake_twilio.queue(MessageAnswer.lose(), to=phone)
    response = client.post(SEND_SMS, json={"to": phone, "message": "did it go?"}, headers=WAIT)
    assert response.status_code == 504, response.text
    body = response.json()
    assert body["error"] == "send_outcome_unknown"
    doubtful = body["stored_message"]
    assert (doubtful["status"], doubtful["in_doubt"], doubtful["provider_message_id"]) == (
        "sending",
        True,
        None,
    )
    [sent] = fake_twilio.message_requests(to=phone)
    path, named = callback_path(sent)
    assert named == body["message_id"]

    time.sleep(0.5)  # ten times the backoff: Twilio's sends are not resent while in doubt
    still = client.get(f"/api/messages/{named}").json()
    assert (still["status"], still["in_doubt"], still["attempts"]) == ("sending", True, 1)
    assert len(fake_twilio.message_requests(to=phone)) == 1

    sid = new_message_sid()
    callback = post_form(client, path, status_form(sid, "sent", to=phone))
    assert callback.status_code == 200, callback.text
    settled = client.get(f"/api/messages/{named}").json()
    assert (settled["status"], settled["in_doubt"], settled["provider_message_id"]) == (
        "sent",
        False,
        sid,
    )
    assert post_status(client, status_form(sid, "delivered", to=phone)).status_code == 200
    assert client.get(f"/api/messages/{named}").json()["status"] == "delivered"
    assert len(fake_twilio.message_requests(to=phone)) == 1


def test_lost_answer_without_callback_fails_as_not_confirmed(
    short_deadline_server, fake_twilio: FakeTwilio
):
    """A message in doubt that no callback settles within Twilio's confirmation deadline (1 s
    on this server) becomes failed with error_code not_confirmed; it was sent once only."""
    phone = unique_phone()
    fake_twilio.queue(MessageAnswer.lose(), to=phone)
    with short_deadline_server.client() as client:
        response = client.post(SEND_SMS, json={"to": phone, "message": "lost"}, headers=WAIT)
        assert response.status_code == 504, response.text
        failed = message_when(client, response.json()["message_id"], ended)
    assert (failed["status"], failed["error_code"], failed["in_doubt"]) == (
        "failed",
        "not_confirmed",
        False,
    )
    assert failed["attempts"] == 1
    assert len(fake_twilio.message_requests(to=phone)) == 1


# pace: Twilio's send_policy, per sender ---------------------------------------------------


@pytest.mark.alone  # gaps between arrivals: a loaded machine delays one send, not its slot
def test_sms_go_one_per_second_per_sender_while_whatsapp_is_not_held(
    paced_server, fake_twilio: FakeTwilio
):
    """At Twilio's own pace (no OMNICHANNEL_SEND_RATES): three SMS from the one SMS number
    reach Twilio about a second apart, while three WhatsApp messages sent after them (another
    sender, 80 per second) go out at once, without waiting behind the SMS."""
    sms_phones = [unique_phone() for _ in range(3)]
    whatsapp_phones = [unique_phone() for _ in range(3)]
    with paced_server.client() as client:
        for phone in sms_phones:
            assert client.post(SEND_SMS, json={"to": phone, "message": "s"}).status_code == 202
        for phone in whatsapp_phones:
            sent = client.post(SEND_WHATSAPP, json={"to": phone, "message": "w"})
            assert sent.status_code == 202, sent.text
    sms = sorted(fake_twilio.wait_for_requests(p, 1, seconds=20)[0].at for p in sms_phones)
    whatsapp = sorted(
        fake_twilio.wait_for_requests("whatsapp:" + p, 1, seconds=20)[0].at for p in whatsapp_phones
    )
    # a second apart, less the first send's own start-up: unpaced they would be ~10 ms apart
    assert min(later - earlier for earlier, later in itertools.pairwise(sms)) >= 0.5, sms
    assert sms[-1] - sms[0] >= 1.2, sms
    assert whatsapp[-1] - whatsapp[0] < 1.0, whatsapp
    assert whatsapp[-1] < sms[-1] - 0.5, (sms, whatsapp)


# idempotency -----------------------------------------------------------------------------


def test_repeated_idempotency_key_sends_once(client, fake_twilio: FakeTwilio):
    """The same Idempotency-Key twice: 201 (with Prefer: wait) then 200 with the same
    message, one request to Twilio."""
    phone = unique_phone()
    headers = {"Idempotency-Key": "order-" + phone}
    payload = {"to": phone, "message": "once only"}
    first = client.post(SEND_SMS, json=payload, headers={**headers, **WAIT})
    second = client.post(SEND_SMS, json=payload, headers=headers)
    assert first.status_code == 201, first.text
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert len(fake_twilio.message_requests(to=phone)) == 1


def test_idempotency_key_reused_for_another_message_is_a_conflict(client, fake_twilio):
    """An Idempotency-Key reused with a different message: 409, nothing more sent."""
    phone = unique_phone()
    headers = {"Idempotency-Key": "reuse-" + phone}
    first = client.post(SEND_SMS, json={"to": phone, "message": "a"}, headers={**headers, **WAIT})
    assert first.status_code == 201, first.text
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
        headers=WAIT,
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
    sent = client.post(SEND_SMS, json={"to": phone, "message": secret_text}, headers=WAIT)
    assert sent.status_code == 201, sent.text
    fake_twilio.queue(MessageAnswer.error(INVALID_TO), to=phone)
    refused = client.post(SEND_SMS, json={"to": phone, "message": secret_text + "-2"}, headers=WAIT)
    assert refused.status_code == 422, refused.text
    log = twilio_server.log()
    assert AUTH_TOKEN not in log
    assert secret_text not in log

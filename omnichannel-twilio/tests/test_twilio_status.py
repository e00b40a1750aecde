"""Twilio's status callbacks through the real server: signed, mapped to delivery statuses,
applied forward-only, parked when they beat the send's answer."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from fake_twilio import FakeTwilio, MessageAnswer, new_message_sid
from twilio_outbox import WAIT
from twilio_signing import post_status, status_form, unique_phone

SEND_SMS = "/api/channels/twilio/send/sms"


def send_sms(client: httpx.Client, fake: FakeTwilio) -> tuple[dict, str]:
    """Send an SMS the fake accepts with a known SID, waiting for Twilio's answer (Prefer:
    wait); returns the stored message and SID."""
    sid = new_message_sid()
    phone = unique_phone()
    fake.queue(MessageAnswer.accept(sid), to=phone)
    response = client.post(SEND_SMS, json={"to": phone, "message": "tracking"}, headers=WAIT)
    assert response.status_code == 201, response.text
    assert response.json()["provider_message_id"] == sid
    return response.json(), sid


def callback(client: httpx.Client, sid: str, status: str, **extra: str) -> None:
    response = post_status(client, status_form(sid, status, **extra))
    assert response.status_code == 200, response.text


def test_statuses_move_forward_to_read(client, inbox, fake_twilio):
    """sending, sent, delivered, read callbacks each move the message forward, acknowledged
    with 200 every time."""
    message, sid = send_sms(client, fake_twilio)
    assert message["status"] == "queued"
    for status in ("sending", "sent", "delivered", "read"):
        callback(client, sid, status)
        assert inbox.message(message["id"])["status"] == status


@pytest.mark.parametrize("twilio_status", ["accepted", "scheduled", "queued"])
def test_queued_like_statuses_keep_the_message_queued(client, inbox, fake_twilio, twilio_status):
    """accepted, scheduled and queued map to queued: a queued message stays queued."""
    message, sid = send_sms(client, fake_twilio)
    callback(client, sid, twilio_status)
    assert inbox.message(message["id"])["status"] == "queued"


def test_reordered_older_status_is_ignored(client, inbox, fake_twilio):
    """A "sent" callback that arrives after "delivered" does not move the message back."""
    message, sid = send_sms(client, fake_twilio)
    callback(client, sid, "delivered")
    callback(client, sid, "sent")
    callback(client, sid, "queued")
    assert inbox.message(message["id"])["status"] == "delivered"


@pytest.mark.parametrize(
    ("twilio_status", "stored_status", "error_code"),
    [("failed", "failed", "30008"), ("undelivered", "undelivered", "30003")],
)
def test_failure_is_terminal_with_the_error_code(
    client, inbox, fake_twilio, twilio_status, stored_status, error_code
):
    """failed and undelivered are stored with Twilio's ErrorCode and are terminal: a later
    delivered or read changes nothing."""
    message, sid = send_sms(client, fake_twilio)
    callback(client, sid, "sent")
    callback(client, sid, twilio_status, ErrorCode=error_code, ErrorMessage="Unreachable handset")
    stored = inbox.message(message["id"])
    assert stored["status"] == stored_status
    assert stored["error_code"] == error_code
    callback(client, sid, "delivered")
    callback(client, sid, "read")
    assert inbox.message(message["id"])["status"] == stored_status


def test_canceled_maps_to_failed(client, inbox, fake_twilio):
    """A canceled (scheduled) message is stored failed."""
    message, sid = send_sms(client, fake_twilio)
    callback(client, sid, "canceled")
    assert inbox.message(message["id"])["status"] == "failed"


@pytest.mark.parametrize("twilio_status", ["receiving", "received"])
def test_inbound_statuses_change_nothing(client, inbox, fake_twilio, twilio_status):
    """receiving/received are inbound statuses: acknowledged, no update."""
    message, sid = send_sms(client, fake_twilio)
    callback(client, sid, twilio_status)
    assert inbox.message(message["id"])["status"] == "queued"


def test_callback_for_unknown_sid_is_acknowledged_and_not_visible(client, twilio_server):
    """A callback for a SID the server never sent is answered 200, logged, and creates
    nothing that the message status route can find."""
    sid = new_message_sid()
    callback(client, sid, "delivered")
    response = client.get(f"/api/channels/twilio/message/{sid}/status")
    assert response.status_code == 404
    assert sid in twilio_server.log()


def test_callback_that_beats_the_send_answer_is_applied(client, inbox, fake_twilio):
    """Twilio may post "delivered" before its answer to the create reaches the server: the
    callback is acknowledged and, once the SID is recorded, the message ends up delivered.
    (The callback here names no message id, so it is parked until the SID is known.)"""
    phone = unique_phone()
    sid = new_message_sid()
    fake_twilio.queue(MessageAnswer.accept(sid, delay=1.5), to=phone)
    result: dict[str, httpx.Response] = {}

    def send() -> None:
        with httpx.Client(base_url=str(client.base_url), headers=client.headers, timeout=30) as own:
            result["response"] = own.post(
                SEND_SMS, json={"to": phone, "message": "race"}, headers=WAIT
            )

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.monotonic() + 10
    while not fake_twilio.message_requests(to=phone) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake_twilio.message_requests(to=phone), "the send never reached the fake"
    callback(client, sid, "delivered")
    assert sender.is_alive(), "the send answered before the callback: no race was tested"
    sender.join(timeout=30)

    response = result["response"]
    assert response.status_code == 201, response.text
    assert inbox.message(response.json()["id"])["status"] == "delivered"


@pytest.mark.parametrize("how", ["missing", "wrong_token"])
def test_badly_signed_callback_is_rejected_and_changes_nothing(client, inbox, fake_twilio, how):
    """A status callback without a signature, or signed with another token, gets 403 and
    the message keeps its status."""
    message, sid = send_sms(client, fake_twilio)
    form = status_form(sid, "delivered")
    if how == "missing":
        response = post_status(client, form, signature="")
    else:
        response = post_status(client, form, auth_token="not-the-token")
    assert response.status_code == 403
    assert response.json()["error"] == "webhook_rejected"
    assert inbox.message(message["id"])["status"] == "queued"

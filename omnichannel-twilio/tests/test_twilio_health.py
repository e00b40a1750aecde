"""The Twilio channel's health, and what an unconfigured channel answers, through the real
server: configuration present, credentials accepted by the (fake) Twilio API."""

from __future__ import annotations

import pytest
from fake_twilio import FakeTwilio
from twilio_signing import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    WRONG_TOKEN,
    post_status,
    post_webhook,
    sms_form,
    status_form,
    unique_phone,
)

HEALTH = "/api/channels/twilio/health"
REQUIRED = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER")


def test_configured_channel_with_accepted_credentials_is_healthy(client, fake_twilio: FakeTwilio):
    """Configuration present and the account fetch accepted with basic auth: 200, ok,
    checks configured=True and credentials "accepted"; the token is never shown."""
    response = client.get(HEALTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["channel"] == "twilio"
    assert body["ok"] is True
    assert body["checks"]["configured"] is True
    assert body["checks"]["credentials"] == "accepted"
    assert body["checks"]["checked_at"]
    assert AUTH_TOKEN not in response.text
    fetches = fake_twilio.account_requests()
    assert fetches, "health did not ask Twilio"
    assert fetches[-1].path == f"/2010-04-01/Accounts/{ACCOUNT_SID}.json"
    assert fetches[-1].basic_auth == (ACCOUNT_SID, AUTH_TOKEN)


def test_health_check_is_cached(client, fake_twilio: FakeTwilio):
    """Asking again right away answers from the cache: no new request to Twilio."""
    assert client.get(HEALTH).status_code == 200
    before = len(fake_twilio.account_requests())
    for _ in range(3):
        assert client.get(HEALTH).json()["ok"] is True
    assert len(fake_twilio.account_requests()) == before


def test_rejected_credentials_make_the_channel_unhealthy(wrong_token_server):
    """Twilio answering 401 to the account fetch: 503, not ok, credentials "rejected", and
    neither token appears in the answer."""
    with wrong_token_server.client() as client:
        response = client.get(HEALTH)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["ok"] is False
    assert body["checks"]["configured"] is True
    assert body["checks"]["credentials"] == "rejected"
    assert WRONG_TOKEN not in response.text and AUTH_TOKEN not in response.text
    assert WRONG_TOKEN not in wrong_token_server.log()


def test_rejected_credentials_on_send_are_a_422_with_twilios_code(wrong_token_server):
    """A send with credentials Twilio refuses: 422 send_rejected with code 20003."""
    with wrong_token_server.client() as client:
        response = client.post(
            "/api/channels/twilio/send/sms", json={"to": unique_phone(), "message": "x"}
        )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "20003"
    assert WRONG_TOKEN not in response.text


def test_unreachable_twilio_makes_the_channel_unhealthy(unreachable_server):
    """Nobody answering at TWILIO_API_BASE_URL: 503, not ok, credentials "unreachable"."""
    with unreachable_server.client() as client:
        response = client.get(HEALTH)
    assert response.status_code == 503, response.text
    assert response.json()["checks"]["credentials"] == "unreachable"


def test_send_to_unreachable_twilio_is_provider_unavailable(unreachable_server):
    """Connection errors are retried, then 502 provider_unavailable, message stored failed."""
    with unreachable_server.client() as client:
        response = client.post(
            "/api/channels/twilio/send/sms", json={"to": unique_phone(), "message": "x"}
        )
        assert response.status_code == 502, response.text
        body = response.json()
        assert body["error"] == "provider_unavailable"
        assert client.get(f"/api/messages/{body['message_id']}").json()["status"] == "failed"


# unconfigured -----------------------------------------------------------------------------


def test_unconfigured_channel_health_names_what_is_missing(unconfigured_server):
    """No TWILIO_* variables: the server runs, and the channel's health is 503 naming every
    missing required variable, with configured=False."""
    with unconfigured_server.client() as client:
        response = client.get(HEALTH)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["ok"] is False
    assert body["checks"]["configured"] is False
    for name in REQUIRED:
        assert name in body["detail"]


def test_server_health_lists_the_unconfigured_channel(unconfigured_server):
    """The server-wide /health still answers JSON and reports the twilio channel."""
    with unconfigured_server.client() as client:
        response = client.get("/health")
    assert response.status_code in (200, 503)
    assert "twilio" in response.json()["channels"]


@pytest.mark.parametrize(
    "path", ["/api/channels/twilio/send/sms", "/api/channels/twilio/send/whatsapp"]
)
def test_unconfigured_send_is_503_with_the_reason(unconfigured_server, path):
    """A send on an unconfigured channel: 503 channel_unavailable naming what is missing."""
    with unconfigured_server.client() as client:
        response = client.post(path, json={"to": unique_phone(), "message": "x"})
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "channel_unavailable"
    assert "TWILIO_ACCOUNT_SID" in body["message"]


def test_unconfigured_reply_is_503(unconfigured_server):
    """The core's generic messages route on an unconfigured channel: 503, not 500."""
    with unconfigured_server.client() as client:
        response = client.post(
            "/api/channels/twilio/messages", json={"to": unique_phone(), "text": "x"}
        )
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "channel_unavailable"


@pytest.mark.parametrize("hook", ["webhook", "status"])
def test_unconfigured_webhooks_are_503_so_twilio_retries(unconfigured_server, hook):
    """Webhook and status callback on an unconfigured channel: 503 (Twilio retries later),
    never 500, and nothing stored."""
    phone = unique_phone()
    with unconfigured_server.client() as client:
        if hook == "webhook":
            response = post_webhook(client, sms_form(phone))
        else:
            response = post_status(client, status_form("SM" + "2" * 32, "delivered"))
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "channel_unavailable"
        assert client.get("/api/contacts", params={"q": phone}).json()["items"] == []

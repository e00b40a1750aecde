"""The Twilio channel's health, and what an unconfigured channel answers, through the real
server: configuration present, credentials accepted by the (fake) Twilio API."""

from __future__ import annotations

import time

import httpx
import pytest
from fake_twilio import FakeTwilio
from twilio_outbox import WAIT, ended, message_when
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


def checked_health(client: httpx.Client, seconds: float = 10.0) -> httpx.Response:
    """The channel's health once its credentials check is over. A check another request
    started (the server's own /health polls as it starts) answers "checking" meanwhile, by
    design (test_health_polls_answer_at_once_while_twilio_is_slow)."""
    deadline = time.monotonic() + seconds
    while True:
        response = client.get(HEALTH)
        if response.json()["checks"].get("credentials") != "checking":
            return response
        assert time.monotonic() < deadline, f"still checking after {seconds}s"
        time.sleep(0.05)


def test_configured_channel_with_accepted_credentials_is_healthy(client, fake_twilio: FakeTwilio):
    """Configuration present and the account fetch accepted with basic auth: 200, ok,
    checks configured=True and credentials "accepted"; the token is never shown."""
    response = checked_health(client)
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
    assert checked_health(client).status_code == 200
    before = len(fake_twilio.account_requests())
    for _ in range(3):
        assert client.get(HEALTH).json()["ok"] is True
    assert len(fake_twilio.account_requests()) == before


def test_rejected_credentials_make_the_channel_unhealthy(wrong_token_server):
    """Twilio answering 401 to the account fetch: 503, not ok, credentials "rejected", and
    neither token appears in the answer."""
    with wrong_token_server.client() as client:
        response = checked_health(client)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["ok"] is False
    assert body["checks"]["configured"] is True
    assert body["checks"]["credentials"] == "rejected"
    assert WRONG_TOKEN not in response.text and AUTH_TOKEN not in response.text
    assert WRONG_TOKEN not in wrong_token_server.log()


def test_rejected_credentials_on_send_are_a_422_with_twilios_code(wrong_token_server):
    """A send with credentials Twilio refuses: 422 send_rejected with code 20003 (with
    Prefer: wait), the message failed at once, never retried."""
    with wrong_token_server.client() as client:
        response = client.post(
            "/api/channels/twilio/send/sms",
            json={"to": unique_phone(), "message": "x"},
            headers=WAIT,
        )
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["error"], body["code"]) == ("send_rejected", "20003")
    assert (body["stored_message"]["status"], body["stored_message"]["attempts"]) == ("failed", 1)
    assert WRONG_TOKEN not in response.text


def test_unreachable_twilio_makes_the_channel_unhealthy(unreachable_server):
    """Nobody answering at TWILIO_API_BASE_URL: 503, not ok, credentials "unreachable"."""
    with unreachable_server.client() as client:
        response = checked_health(client)
    assert response.status_code == 503, response.text
    assert response.json()["checks"]["credentials"] == "unreachable"


def test_send_to_unreachable_twilio_is_provider_unavailable(unreachable_server):
    """A connection refused is retryable: the outbox retries until Twilio's retry deadline
    (2 s on this server), then the message is failed with error_code "unreachable"; a caller
    waiting longer than that is answered 502 provider_unavailable (an outage, not a
    refusal) with the failed message."""
    with unreachable_server.client() as client:
        response = client.post(
            "/api/channels/twilio/send/sms",
            json={"to": unique_phone(), "message": "x"},
            headers=WAIT,
        )
        assert response.status_code == 502, response.text
        body = response.json()
        assert body["error"] == "provider_unavailable"
        assert body["stored_message"]["status"] == "failed"
        assert body["stored_message"]["error_code"] == "unreachable"
        assert body["stored_message"]["error_details"]["retryable"] is True
        failed = message_when(client, body["message_id"], ended)
    assert (failed["status"], failed["error_code"]) == ("failed", "unreachable")
    assert "could not be reached" in failed["error_message"]
    assert failed["attempts"] >= 2


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
    """The core's generic messages route on an unconfigured channel stores the message; its
    first attempt fails: 503 channel_unavailable (with Prefer: wait), not 500, and the
    message is failed with that code, not retried."""
    with unconfigured_server.client() as client:
        response = client.post(
            "/api/channels/twilio/messages",
            json={"to": unique_phone(), "text": "x"},
            headers=WAIT,
        )
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "channel_unavailable"
    assert "TWILIO_ACCOUNT_SID" in body["message"]
    stored = body["stored_message"]
    assert (stored["status"], stored["error_code"], stored["attempts"]) == (
        "failed",
        "channel_unavailable",
        1,
    )


@pytest.mark.parametrize("hook", ["webhook", "status"])
def test_unconfigured_webhooks_are_503_never_500(unconfigured_server, hook):
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


# a slow Twilio ----------------------------------------------------------------------------


class SlowTwilio:
    """A loopback Twilio whose account fetch is held until :meth:`release`: the status line
    and a header every half second (so no read timeout ends the wait), then the account."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.arrived = threading.Event()
        self.released = threading.Event()
        self.fetches: list[str] = []
        slow = self

        class HeldAccount(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                slow.fetches.append(self.path)
                slow.arrived.set()
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                while not slow.released.wait(0.5):
                    self.wfile.write(b"X-Still-Thinking: yes\r\n")
                body = b'{"sid": "%s", "status": "active"}' % ACCOUNT_SID.encode()
                self.wfile.write(
                    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body)
                )

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), HeldAccount)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.serving = threading.Thread(target=self.server.serve_forever)

    def __enter__(self) -> SlowTwilio:
        self.serving.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.serving.join(10)


def test_health_polls_answer_at_once_while_twilio_is_slow(tmp_path):
    """While the one credentials check waits on a slow Twilio, every concurrent health poll
    answers at once with 503 "credentials check in progress" (none waits for the check or
    starts another); once Twilio answers, the channel is healthy, after one account fetch."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from twilio_signing import PHONE_NUMBER, PUBLIC_URL

    from omnichannel_core.testing.server import running_server

    with SlowTwilio() as slow:
        env = {
            "OMNICHANNEL_DISABLE_PLUGINS": "",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_PHONE_NUMBER": PHONE_NUMBER,
            "TWILIO_WHATSAPP_NUMBER": None,
            "TWILIO_MESSAGING_SERVICE_SID": None,
            "TWILIO_API_BASE_URL": slow.url,
            "OMNICHANNEL_PUBLIC_URL": PUBLIC_URL,
        }
        with running_server(tmp_path, env) as server, server.client() as client:
            client.get(HEALTH)  # starts the check, if the server's start-up poll did not
            assert slow.arrived.wait(10), "health never asked Twilio"

            def poll(_: int) -> tuple[int, dict]:
                with server.client() as own:
                    response = own.get(HEALTH)
                return response.status_code, response.json()

            with ThreadPoolExecutor(24) as threads:
                answers = list(threads.map(poll, range(24)))
            for status, body in answers:
                assert status == 503
                assert (body["ok"], body["detail"]) == (False, "credentials check in progress")
                assert body["checks"]["credentials"] == "checking"
            slow.released.set()
            for _ in range(100):
                body = client.get(HEALTH).json()
                if body["checks"]["credentials"] != "checking":
                    break
                time.sleep(0.1)
            assert (body["ok"], body["checks"]["credentials"]) == (True, "accepted")
    assert slow.fetches == [f"/2010-04-01/Accounts/{ACCOUNT_SID}.json"]

"""Twilio sends under fire, through the real server: SMS sent while job runners and the
whole server are killed with ``kill -9`` and restarted. Twilio is never asked twice for one
message (it would deliver it twice); a message whose send was cut off is in doubt until the
status callback Twilio posts (its URL names our message id) settles it, or, when Twilio
never got it, until the confirmation deadline fails it as ``not_confirmed``.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fake_twilio import FakeTwilio, MessageAnswer, new_message_sid
from twilio_signing import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PHONE_NUMBER,
    PUBLIC_URL,
    post_form,
    status_form,
    unique_phone,
)

from omnichannel_core.testing.server import Deployment

# Kills timed against sends in flight: alone in a parallel run.
pytestmark = pytest.mark.alone

SENDS = 300
CONFIRM_SECONDS = 15
"""How long a message in doubt waits for its callback here (an hour by default)."""


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        yield fake


def _send(deployment: Deployment, phone: str, key: str) -> str:
    """POST send/sms with its Idempotency-Key until the server accepts it, as a client does
    across a server's crash; the message id."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with deployment.client() as client:
                response = client.post(
                    "/api/channels/twilio/send/sms",
                    json={"to": phone, "message": f"order {key} shipped"},
                    headers={"Idempotency-Key": key},
                )
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        if response.status_code in (200, 202):
            return str(response.json()["id"])
        assert response.status_code >= 500, response.text
        time.sleep(0.2)
    raise AssertionError(f"send {key} was never accepted")


def _backlog_empty(deployment: Deployment) -> bool:
    with contextlib.suppress(httpx.HTTPError), deployment.client() as client:
        return bool(client.get("/api/outbox").json()["channels"] == {})
    return False


def test_sms_survive_kill_9_and_are_settled_by_twilios_callbacks(tmp_path, twilio):
    """300 SMS, two runners and the server killed mid-run. Afterwards Twilio posts each
    message's status callback, as it does. Then: nothing left in the outbox; every message
    Twilio got was asked for once and is delivered (those in doubt settled by their
    callback); every one it never got failed as not_confirmed."""
    phones = [unique_phone() for _ in range(SENDS)]
    sids = {phone: new_message_sid() for phone in phones}
    for phone in phones:  # Twilio's latency: the kills cut off sends under way
        twilio.queue(MessageAnswer.accept(sid=sids[phone], delay=0.3), to=phone)
    env = {
        "OMNICHANNEL_DISABLE_PLUGINS": "",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_PHONE_NUMBER": PHONE_NUMBER,
        "TWILIO_API_BASE_URL": twilio.url,
        "OMNICHANNEL_PUBLIC_URL": PUBLIC_URL,
        "OMNICHANNEL_SEND_RATES": "*=0",
        "OMNICHANNEL_SEND_LEASE_SECONDS": "3",
        "OMNICHANNEL_SEND_CONFIRM_SECONDS": f"twilio={CONFIRM_SECONDS}",
        "OMNICHANNEL_JOB_LEASE_SECONDS": "3",
        "OMNICHANNEL_EVENT_POLL_MS": "50",
    }
    deployment = Deployment(tmp_path, env)
    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [
                pool.submit(_send, deployment, phone, f"crash-{n}")
                for n, phone in enumerate(phones)
            ]
            for stage, crash in (
                (SENDS // 4, lambda: deployment.crash_runner(0)),
                (SENDS // 2, deployment.crash_server),
                (3 * SENDS // 4, lambda: deployment.crash_runner(1)),
            ):
                while sum(future.done() for future in futures) < stage:
                    time.sleep(0.01)
                crash()
            accepted = dict(zip(phones, (future.result() for future in futures), strict=True))

        # Twilio posts a status callback for each message it took, to the URL the send gave.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _all_asked_or_settled(deployment, accepted):
            time.sleep(0.5)
        asked = Counter(request.param("To") for request in twilio.message_requests())
        with deployment.client() as client:
            for request in twilio.message_requests():
                phone = request.param("To") or ""
                path, message_id = _callback(request)
                assert message_id == accepted[phone]
                callback = status_form(sids[phone], "delivered", to=phone)
                assert post_form(client, path, callback).status_code == 200

        deadline = time.monotonic() + CONFIRM_SECONDS + 30
        while not _backlog_empty(deployment) and time.monotonic() < deadline:
            time.sleep(0.5)
        with deployment.client() as client:
            assert client.get("/api/outbox").json()["channels"] == {}, "messages left stuck"
            stored = {
                phone: client.get(f"/api/messages/{message_id}").json()
                for phone, message_id in accepted.items()
            }
    finally:
        deployment.stop()
    doubted = (tmp_path / "worker.log").read_text().count('"message_in_doubt"')
    assert doubted > 0, "no kill cut off a send: the test tested nothing"

    assert max(asked.values()) == 1, "Twilio was asked twice for a message"
    for phone, message in stored.items():
        if asked[phone]:
            assert (message["status"], message["provider_message_id"]) == (
                "delivered",
                sids[phone],
            ), message
        else:  # cut off before Twilio got it: it waited in doubt, then failed
            assert (message["status"], message["error_code"]) == ("failed", "not_confirmed")
        assert message["in_doubt"] is False
    print(
        f"\n{SENDS} SMS: {doubted} in doubt after a kill, settled by their callback or, for"
        f" the {SENDS - len(asked)} that never reached Twilio, failed not_confirmed"
    )


def _all_asked_or_settled(deployment: Deployment, accepted: dict[str, str]) -> bool:
    """True once no message is queued or being sent: each was sent, or is in doubt."""
    with contextlib.suppress(httpx.HTTPError), deployment.client() as client:
        channels = client.get("/api/outbox").json()["channels"]
        backlog: dict[str, Any] = channels.get("twilio", {})
        return not any(backlog.get(kind) for kind in ("queued", "retrying", "sending"))
    return False


def _callback(request: Any) -> tuple[str, str]:
    """The path (with its query) of the status callback URL a send gave Twilio, and the
    message id it names."""
    url = urlsplit(request.param("StatusCallback"))
    [message_id] = parse_qs(url.query)["message_id"]
    return f"{url.path}?{url.query}", message_id

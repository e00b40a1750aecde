"""The outbox's controls through the real server: scheduled sends, cancelling, another
attempt at a failed message, what ``GET /api/outbox`` and ``/health`` say."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from omnichannel_core.modules.inbox.outbox_routes import HEALTH_CACHE_SECONDS
from omnichannel_core.testing.fake_provider import FakeProvider, ScriptedResponse
from omnichannel_core.testing.server import ServerProcess, running_server
from tests.conftest import WEBHOOK_SECRET
from tests.support.signing import inbound_message, post_webhook, unique

WAIT = {"Prefer": "wait=10"}


def open_conversation(client: httpx.Client) -> str:
    sender = unique("+1555")
    assert post_webhook(client, inbound_message(sender, "hi")).status_code == 200
    listed = client.get("/api/conversations", params={"limit": 200}).json()["items"]
    [conversation] = [c for c in listed if c["address"] == sender]
    return str(conversation["id"])


def message_when(client: httpx.Client, message_id: str, done: Any, seconds: float = 10):
    deadline = time.monotonic() + seconds
    while True:
        message = client.get(f"/api/messages/{message_id}").json()
        if done(message) or time.monotonic() > deadline:
            return message
        time.sleep(0.05)


def received(receiver: FakeProvider, message_id: str) -> list[Any]:
    return [r for r in receiver.requests if r.headers.get("idempotency-key") == message_id]


def test_a_scheduled_message_goes_at_its_time_not_before(server, receiver):
    """send_at two seconds ahead: 202 queued with send_at; nothing reaches the receiver
    before then; it is sent once after."""
    with server.client() as client:
        conversation = open_conversation(client)
        when = datetime.now(UTC) + timedelta(seconds=2)
        queued = client.post(
            f"/api/conversations/{conversation}/messages",
            json={"text": "later", "send_at": when.isoformat()},
        )
        assert queued.status_code == 202, queued.text
        message = queued.json()
        assert (message["status"], message["attempts"]) == ("queued", 0)
        assert datetime.fromisoformat(message["send_at"]) == when
        time.sleep(1)
        assert received(receiver, message["id"]) == []
        sent = message_when(client, message["id"], lambda m: m["status"] == "sent")
    assert sent["status"] == "sent"
    [request] = received(receiver, message["id"])
    assert request.json()["text"] == "later"


def test_a_cancelled_message_is_never_sent(server, receiver):
    """A scheduled message cancelled is cancelled for good (audited); cancelling again is a
    409; the outbox no longer holds it, and the receiver never gets it."""
    with server.client() as client:
        conversation = open_conversation(client)
        when = datetime.now(UTC) + timedelta(seconds=1)
        queued = client.post(
            f"/api/conversations/{conversation}/messages",
            json={"text": "never", "send_at": when.isoformat()},
        ).json()
        cancelled = client.post(f"/api/messages/{queued['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        again = client.post(f"/api/messages/{queued['id']}/cancel")
        assert (again.status_code, again.json()["error"]) == (409, "conflict")
        time.sleep(1.5)  # past its time
        assert client.get(f"/api/messages/{queued['id']}").json()["status"] == "cancelled"
        [entry] = client.get("/api/audit", params={"action": "message.cancelled"}).json()["items"]
        assert entry["target_id"] == queued["id"]
    assert received(receiver, queued["id"]) == []


def test_a_failed_message_is_sent_again_with_the_same_id(server, receiver):
    """A refused message (422, failed) retried: 201, the same id, sent; the receiver got
    both attempts under the same Idempotency-Key; the retry is audited; retrying a sent
    message is a 409."""
    with server.client() as client:
        conversation = open_conversation(client)
        receiver.queue_for_text("refused first", ScriptedResponse.json(400, {"error": "no"}))
        refused = client.post(
            f"/api/conversations/{conversation}/messages",
            json={"text": "refused first"},
            headers=WAIT,
        )
        assert refused.status_code == 422, refused.text
        failed = refused.json()["stored_message"]
        assert (failed["status"], failed["error_code"]) == ("failed", "400")
        retried = client.post(f"/api/messages/{failed['id']}/retry", headers=WAIT)
        assert retried.status_code == 201, retried.text
        sent = retried.json()
        assert (sent["id"], sent["status"], sent["attempts"]) == (failed["id"], "sent", 2)
        assert (sent["error_code"], sent["error_details"]) == (None, {})
        [entry] = [
            item
            for item in client.get("/api/audit", params={"action": "message.retried"}).json()[
                "items"
            ]
            if item["target_id"] == failed["id"]
        ]
        assert entry["details"]["status"] == "failed"
        assert client.post(f"/api/messages/{failed['id']}/retry").status_code == 409
    assert len(received(receiver, failed["id"])) == 2


def test_an_outage_answers_502_and_is_retried_until_sent(server, receiver):
    """A receiver answering 503 three times, then 200: a caller waiting one second is
    answered 502 provider_unavailable with the message queued (error kept, retryable), or
    201 if the retries got through within it; the outbox goes on, and it ends sent after
    four attempts, the error cleared."""
    with server.client() as client:
        conversation = open_conversation(client)
        receiver.queue_for_text("flaky", *[ScriptedResponse.json(503, {})] * 3)
        answer = client.post(
            f"/api/conversations/{conversation}/messages",
            json={"text": "flaky"},
            headers={"Prefer": "wait=1"},
        )
        body = answer.json()
        if answer.status_code == 502:  # still failing when the second was up
            assert body["error"] == "provider_unavailable"
            assert body["stored_message"]["status"] == "queued"
            message_id = body["message_id"]
        else:  # the backoff (50 ms here) let all three go by within the second
            assert answer.status_code == 201, answer.text
            message_id = body["id"]
        sent = message_when(client, message_id, lambda m: m["status"] == "sent")
        assert (sent["attempts"], sent["error_code"]) == (4, None)
    assert len(received(receiver, message_id)) == 4


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server without a job runner (nothing sends), degrading past one second."""
    env = {
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "HTTP_CHANNEL_SEND_URL": "http://127.0.0.1:9/nowhere",
        "OMNICHANNEL_OUTBOX_MAX_AGE_SECONDS": "1",
    }
    workdir = tmp_path_factory.mktemp("idle")
    with running_server(workdir, env, job_runner=False) as server:
        yield server


def test_the_outbox_and_health_show_a_message_waiting_too_long(idle_server):
    """A message nobody sends: GET /api/outbox counts it queued with its age; once it has
    waited longer than OMNICHANNEL_OUTBOX_MAX_AGE_SECONDS /health is degraded, the delivery
    job's report saying why, with the same figures."""
    with idle_server.client() as client:
        conversation = open_conversation(client)
        queued = client.post(f"/api/conversations/{conversation}/messages", json={"text": "x"})
        assert queued.status_code == 202
        outbox = client.get("/api/outbox").json()
        assert outbox["channels"]["http"]["queued"] == 1
        assert outbox["max_age_seconds"] == 1
        time.sleep(1.2 + HEALTH_CACHE_SECONDS)  # past the age, and past /health's cache
        health = client.get("/health").json()
    assert health["status"] == "degraded"
    report = health["jobs"]["inbox.deliver"]["report"]
    assert report["ok"] is False
    assert "waited" in report["detail"]
    assert report["figures"]["channels"]["http"]["queued"] == 1
    assert report["figures"]["oldest_age_seconds"] > 1
    assert health["jobs"]["inbox.deliver"]["running"] is None  # every runner runs it

"""The inbox service between channels, store and API: what it does when a channel misbehaves,
when a channel is gone, when a send fails, and when an idempotency key is reused."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from falcon import testing
from structlog.testing import capture_logs

from omnichannel_core import hookimpl
from omnichannel_core.errors import ChannelUnavailable, SendFailed, SendOutcomeUnknown
from omnichannel_core.hooktypes import (
    InboundMessage,
    OutboundMessage,
    SendResult,
    StatusUpdate,
    WebhookRequest,
    WebhookResult,
)
from omnichannel_core.testing.in_process import AUTH, run_app
from tests.conftest import WEBHOOK_SECRET
from tests.support.signing import SIGNATURE_HEADER, WEBHOOK_PATH, encode, inbound_message, signature

WAIT = {**AUTH, "Prefer": "wait=10"}
"""Headers of a send answered once the outbox is done with it (sent, failed or in doubt)."""


class Crashing:
    """A channel whose hooks raise what a buggy plugin raises."""

    @hookimpl
    def receive(self, request: WebhookRequest) -> WebhookResult:
        raise RuntimeError("plugin bug")

    @hookimpl
    async def status(self, request: WebhookRequest) -> WebhookResult:
        # an empty provider id would make every later message a "duplicate"
        return WebhookResult(messages=(InboundMessage(provider_message_id="", sender="+1"),))


class Echo:
    """A channel that stores what it is sent and accepts every send."""

    @hookimpl
    def receive(self, request: WebhookRequest) -> WebhookResult:
        item = json.loads(request.body)
        return WebhookResult(messages=(InboundMessage(item["id"], item["from"], text="hi"),))

    @hookimpl
    async def send(self, message: OutboundMessage) -> SendResult:
        return SendResult(provider_message_id=f"echo-{message.id}")


async def _conversation_id(conductor: testing.ASGIConductor) -> str:
    body = json.dumps({"id": "p1", "from": "+1555"})
    assert (
        await conductor.simulate_post("/api/channels/echo/webhook", body=body)
    ).status_code == 200
    listed = await conductor.simulate_get("/api/conversations", headers=AUTH)
    return listed.json["items"][0]["id"]


def test_a_crashing_channel_hook_is_a_502_not_a_500(tmp_path):
    """An exception a channel's receive raises, or a malformed InboundMessage it builds, is
    answered 502 channel_failed (the provider will retry), and nothing is stored."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        for path in ("/api/channels/crash/webhook", "/api/channels/crash/status"):
            response = await conductor.simulate_post(path, body=b"{}")
            assert response.status_code == 502, path
            assert response.json["error"] == "channel_failed"
            assert "plugin bug" not in response.text
        listed = await conductor.simulate_get("/api/conversations", headers=AUTH)
        assert listed.json["items"] == []

    run_app(tmp_path, {"crash": Crashing()}, scenario)


def test_reply_on_a_channel_no_longer_loaded_is_503(tmp_path):
    """A conversation whose channel was uninstalled or disabled still exists: a reply in it is
    503 channel_unavailable naming the channel, and nothing is stored."""
    found: dict[str, str] = {}

    async def before(conductor: testing.ASGIConductor) -> None:
        found["id"] = await _conversation_id(conductor)

    async def after(conductor: testing.ASGIConductor) -> None:
        path = f"/api/conversations/{found['id']}/messages"
        response = await conductor.simulate_post(path, json={"text": "hello?"}, headers=AUTH)
        assert response.status_code == 503
        assert response.json["channel"] == "echo"
        messages = await conductor.simulate_get(path, headers=AUTH)
        assert [m["direction"] for m in messages.json["items"]] == ["inbound"]

    run_app(tmp_path, {"echo": Echo()}, before)
    run_app(tmp_path, {}, after)


def test_idempotency_key_replay_must_match_metadata_too(tmp_path):
    """The same Idempotency-Key with the same text but other metadata is a different message:
    409, and the first message is the only one stored (queued: 202, then 200 for a replay)."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        path = f"/api/conversations/{await _conversation_id(conductor)}/messages"
        headers = {**AUTH, "Idempotency-Key": "k-1"}
        first = {"text": "hi", "metadata": {"campaign": "a"}}
        queued = await conductor.simulate_post(path, json=first, headers=headers)
        assert (queued.status_code, queued.json["status"]) == (202, "queued")
        replayed = await conductor.simulate_post(path, json=first, headers=headers)
        assert (replayed.status_code, replayed.json["id"]) == (200, queued.json["id"])
        other = {"text": "hi", "metadata": {"campaign": "b"}}
        conflict = await conductor.simulate_post(path, json=other, headers=headers)
        assert conflict.status_code == 409
        messages = await conductor.simulate_get(path, headers=AUTH)
        assert [m["direction"] for m in messages.json["items"]] == ["inbound", "outbound"]

    run_app(tmp_path, {"echo": Echo()}, scenario)


class Keywords:
    """A channel that reads STOP/START as consent, and accepts every send."""

    @hookimpl
    def receive(self, request: WebhookRequest) -> WebhookResult:
        item = json.loads(request.body)
        consent = {"STOP": "opt_out", "START": "opt_in"}.get(item["text"])
        message = InboundMessage(item["id"], "+1555", text=item["text"], consent=consent)
        return WebhookResult(messages=(message,))

    @hookimpl
    async def send(self, message: OutboundMessage) -> SendResult:
        return SendResult(provider_message_id=f"kw-{message.id}")


def test_reply_to_an_opted_out_contact_is_refused_until_they_opt_in(tmp_path):
    """After STOP a reply is 422 recipient_opted_out and nothing is stored or sent; after
    START replies go out again."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        async def write(provider_id: str, text: str) -> None:
            body = json.dumps({"id": provider_id, "text": text})
            await conductor.simulate_post("/api/channels/kw/webhook", body=body)

        await write("k1", "STOP")
        listed = await conductor.simulate_get("/api/conversations", headers=AUTH)
        path = f"/api/conversations/{listed.json['items'][0]['id']}/messages"
        refused = await conductor.simulate_post(path, json={"text": "sale!"}, headers=AUTH)
        assert refused.status_code == 422
        assert refused.json["error"] == "recipient_opted_out"
        messages = await conductor.simulate_get(path, headers=AUTH)
        assert [m["direction"] for m in messages.json["items"]] == ["inbound"]
        await write("k2", "START")
        sent = await conductor.simulate_post(path, json={"text": "welcome back"}, headers=WAIT)
        assert sent.status_code == 201, sent.text
        assert sent.json["status"] == "sent"

    run_app(tmp_path, {"kw": Keywords()}, scenario, jobs=True)


class LostAnswer:
    """A channel whose provider takes every message but whose answer never arrives; its
    status callbacks name our message id (as a callback URL the channel set would)."""

    @hookimpl
    def receive(self, request: WebhookRequest) -> WebhookResult:
        item = json.loads(request.body)
        return WebhookResult(messages=(InboundMessage(item["id"], item["from"], text="hi"),))

    @hookimpl
    async def send(self, message: OutboundMessage) -> SendResult:
        raise SendOutcomeUnknown("the provider's answer was lost")

    @hookimpl
    def status(self, request: WebhookRequest) -> WebhookResult:
        update = StatusUpdate(
            provider_message_id="P-1",
            status="delivered",
            message_id=request.query["message_id"],
        )
        return WebhookResult(statuses=(update,))


def test_a_lost_send_answer_leaves_the_message_sending_for_its_callback(tmp_path):
    """When the provider may have taken the message (SendOutcomeUnknown) the reply (waiting
    with Prefer: wait) answers 504 send_outcome_unknown and the message stays `sending`
    and in doubt, not failed, and is not sent again (the channel is not resend_safe); a
    status callback naming our message id then records the provider id, moves it forward
    and settles the doubt."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        body = json.dumps({"id": "in-1", "from": "+1555"})
        await conductor.simulate_post("/api/channels/lost/webhook", body=body)
        listed = await conductor.simulate_get("/api/conversations", headers=AUTH)
        path = f"/api/conversations/{listed.json['items'][0]['id']}/messages"
        lost = await conductor.simulate_post(path, json={"text": "hello"}, headers=WAIT)
        assert lost.status_code == 504, lost.text
        assert lost.json["error"] == "send_outcome_unknown"
        message_id = lost.json["message_id"]
        stored = lost.json["stored_message"]
        assert (stored["status"], stored["in_doubt"], stored["attempts"]) == ("sending", True, 1)
        await asyncio.sleep(0.3)  # several backoffs of 50 ms: a resend would have come
        waiting = await conductor.simulate_get(f"/api/messages/{message_id}", headers=AUTH)
        assert (waiting.json["status"], waiting.json["attempts"]) == ("sending", 1)
        callback = await conductor.simulate_post(
            "/api/channels/lost/status", params={"message_id": message_id}, body=b""
        )
        assert callback.status_code == 200
        settled = await conductor.simulate_get(f"/api/messages/{message_id}", headers=AUTH)
        assert settled.json["status"] == "delivered"
        assert settled.json["provider_message_id"] == "P-1"
        assert settled.json["in_doubt"] is False

    run_app(tmp_path, {"lost": LostAnswer()}, scenario, jobs=True)


class FailingSend:
    """A channel that takes inbound messages and fails every send with ``failure``; its
    second attempt waits for :attr:`second_attempt` first (set it to go on), so a test sees
    a retried message between two attempts however quickly the outbox retries."""

    def __init__(self, failure: Exception) -> None:
        self.failure = failure
        self.attempts = 0
        self.second_attempt = asyncio.Event()

    @hookimpl
    def receive(self, request: WebhookRequest) -> WebhookResult:
        item = json.loads(request.body)
        return WebhookResult(messages=(InboundMessage(item["id"], item["from"], text="hi"),))

    @hookimpl
    async def send(self, message: OutboundMessage) -> SendResult:
        self.attempts += 1
        if self.attempts == 2:
            await asyncio.wait_for(self.second_attempt.wait(), 30)
        raise self.failure


async def _reply_and_read_back(
    conductor: testing.ASGIConductor,
    webhook_path: str,
    body: bytes,
    headers: dict[str, str],
    wait: int = 10,
) -> tuple[testing.Result, dict]:
    """Post an inbound webhook, reply in its conversation (waiting up to ``wait`` seconds
    for the outbox to be done with it), and read the reply back."""
    assert (
        await conductor.simulate_post(webhook_path, body=body, headers=headers)
    ).status_code == 200
    listed = await conductor.simulate_get("/api/conversations", headers=AUTH)
    path = f"/api/conversations/{listed.json['items'][0]['id']}/messages"
    answer = await conductor.simulate_post(
        path, json={"text": "hello"}, headers={**AUTH, "Prefer": f"wait={wait}"}
    )
    stored = await conductor.simulate_get(
        f"/api/messages/{answer.json['message_id']}", headers=AUTH
    )
    return answer, stored.json


def _send_failures(logs: list[dict]) -> list[dict]:
    return [line for line in logs if line["event"] == "message_send_failed"]


async def _settled(conductor: testing.ASGIConductor, message_id: str) -> dict:
    """The message once it left `queued` (the outbox gave up retrying), polled for 10 s."""
    deadline = time.monotonic() + 10
    while True:
        stored = await conductor.simulate_get(f"/api/messages/{message_id}", headers=AUTH)
        if stored.json["status"] != "queued" or time.monotonic() > deadline:
            return stored.json
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (RuntimeError("token=s3cr3t in a plugin bug"), 502, "channel_failed"),
        (ChannelUnavailable("ACME_TOKEN is not set", channel="acme"), 503, "channel_unavailable"),
        (SendFailed("the number is blocked", code="21610"), 422, "21610"),
        (SendFailed("the provider refused it"), 422, "send_rejected"),
        (SendFailed("the provider is down", retryable=True), 502, "provider_unavailable"),
    ],
    ids=["crash", "unavailable", "provider-code", "rejected", "provider-down"],
)
def test_a_failed_send_stores_a_code_and_logs_why(tmp_path, failure, status, code):
    """Whatever makes a send fail, the stored message keeps a stable error code (the
    provider's, when it gave one; else the code the API's answer has) and the reason, and
    the message_send_failed log line says both; a crash's own text (which may hold
    anything) reaches neither. A retryable failure is not failed at once: a caller who
    waits is answered when the wait is over, the message still `queued` with the error
    while the outbox retries it; it fails with the same code once the channel's retry
    deadline (here 2 s) has passed."""
    channel = FailingSend(failure)
    retryable = getattr(failure, "retryable", False)

    async def scenario(conductor: testing.ASGIConductor) -> None:
        body = json.dumps({"id": "in-1", "from": "+1555"}).encode()
        with capture_logs() as logs:
            try:
                answer, stored = await _reply_and_read_back(
                    conductor, "/api/channels/acme/webhook", body, {}, wait=1 if retryable else 10
                )
            finally:
                channel.second_attempt.set()  # the retry, held meanwhile, may fail now
            if retryable:
                waited = answer.json["stored_message"]
                assert (waited["status"], waited["error_code"]) == ("queued", code)
                assert not _send_failures(logs)  # not yet: it is retried
                stored = await _settled(conductor, stored["id"])
                assert stored["attempts"] > 2
                retried = [line for line in logs if line["event"] == "message_send_retrying"]
                assert retried and {line["error_code"] for line in retried} == {code}
            else:
                assert stored["attempts"] == 1
        assert answer.status_code == status, answer.text
        assert answer.json["error"] == ("send_rejected" if code == "21610" else code)
        assert stored["status"] == "failed"
        assert stored["error_code"] == code
        [logged] = _send_failures(logs)
        assert (logged["error_code"], logged["reason"]) == (code, stored["error_message"])
        assert logged["message_id"] == stored["id"]
        assert "s3cr3t" not in json.dumps([stored, logged])

    run_app(tmp_path, {"acme": channel}, scenario, jobs=True, send_retry_seconds={"acme": 2})


def test_a_send_on_the_http_channel_without_its_url_stores_why(tmp_path):
    """The generic channel with no HTTP_CHANNEL_SEND_URL: the reply is 503
    channel_unavailable, and the stored message says so in its error code and message."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        body = encode(inbound_message("+15550100"))
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(body)}
        with capture_logs() as logs:
            answer, stored = await _reply_and_read_back(conductor, WEBHOOK_PATH, body, headers)
        assert (answer.status_code, answer.json["error"]) == (503, "channel_unavailable")
        assert (stored["status"], stored["error_code"]) == ("failed", "channel_unavailable")
        assert stored["error_message"] == "HTTP_CHANNEL_SEND_URL is not set"
        assert _send_failures(logs)[0]["reason"] == "HTTP_CHANNEL_SEND_URL is not set"

    run_app(tmp_path, {}, scenario, environ={"WEBHOOK_SECRET": WEBHOOK_SECRET}, jobs=True)

"""The generic HTTP channel through the real server: signed inbound webhooks, status
callbacks, outbound sends to a receiver, and what happens when the receiver fails: the
channel makes one attempt per send, and the outbox retries a 429 or 5xx (after its
Retry-After) and resends a message whose answer was lost with the same Idempotency-Key."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from falcon import testing

from omnichannel_core.channels import http as http_channel
from omnichannel_core.setting_values import StoredSettings
from omnichannel_core.testing.fake_provider import FakeProvider, RecordedRequest, ScriptedResponse
from omnichannel_core.testing.in_process import AUTH, run_app
from omnichannel_core.testing.server import ServerProcess, free_port, running_server
from tests.conftest import WEBHOOK_SECRET
from tests.support.receivers import HANG_UP, STALL, Answer, Received, Receiver
from tests.support.signing import (
    SIGNATURE_HEADER,
    STATUS_PATH,
    WEBHOOK_PATH,
    encode,
    inbound_message,
    is_signed_by,
    post_signed,
    post_status,
    post_webhook,
    signature,
    unique,
)

WAIT = {"Prefer": "wait=10"}
"""Answered once the outbox is done with the message (201 when the receiver took it). Every
send to the module's shared receiver waits, so no send is still under way when the next
test scripts the receiver's answers."""
RETRY_SECONDS = 4
"""How long the outbox server retries a retryable failure (OMNICHANNEL_SEND_RETRY_SECONDS)."""


@pytest.fixture
def client(server: ServerProcess) -> httpx.Client:
    with server.client() as client:
        yield client


def contact_of(client: httpx.Client, address: str) -> dict[str, Any] | None:
    items = client.get("/api/contacts", params={"q": address}).json()["items"]
    matches = [c for c in items if any(i["address"] == address for i in c["identities"])]
    assert len(matches) <= 1
    return matches[0] if matches else None


def conversation_of(client: httpx.Client, address: str) -> dict[str, Any] | None:
    items = client.get("/api/conversations", params={"channel": "http", "limit": 200}).json()
    matches = [c for c in items["items"] if c["address"] == address]
    assert len(matches) <= 1
    return matches[0] if matches else None


def messages_of(client: httpx.Client, conversation_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/conversations/{conversation_id}/messages", params={"limit": 200})
    assert response.status_code == 200
    return response.json()["items"]


def requests_for(receiver: FakeProvider, message_id: str) -> list[RecordedRequest]:
    return [r for r in receiver.requests if r.headers.get("idempotency-key") == message_id]


def open_conversation(client: httpx.Client, sender: str) -> dict[str, Any]:
    assert post_webhook(client, inbound_message(sender)).status_code == 200
    conversation = conversation_of(client, sender)
    assert conversation is not None
    return conversation


# inbound ---------------------------------------------------------------------------------


def test_signed_webhook_stores_message_contact_and_conversation(client):
    """A signed inbound message is stored as received, with a new contact named from "name"
    and a new open conversation on the http channel with one unread message."""
    sender = unique("+1555")
    payload = inbound_message(sender, "I need help", name="Ada Lovelace")
    response = post_webhook(client, payload)
    assert response.status_code == 200

    contact = contact_of(client, sender)
    assert contact["display_name"] == "Ada Lovelace"
    assert contact["identities"] == [{"channel": "http", "address": sender}]
    conversation = conversation_of(client, sender)
    assert conversation["contact_id"] == contact["id"]
    assert conversation["status"] == "open"
    assert conversation["unread_count"] == 1
    [message] = messages_of(client, conversation["id"])
    assert message["text"] == "I need help"
    assert message["direction"] == "inbound"
    assert message["status"] == "received"
    assert message["provider_message_id"] == payload["id"]
    assert message["contact_id"] == contact["id"]


def test_second_message_from_same_sender_continues_conversation(client):
    """A second message from the same address lands in the same conversation, unread grows."""
    sender = unique("+1555")
    first = open_conversation(client, sender)
    assert post_webhook(client, inbound_message(sender, "again")).status_code == 200
    second = conversation_of(client, sender)
    assert second["id"] == first["id"]
    assert second["unread_count"] == first["unread_count"] + 1
    assert [m["text"] for m in messages_of(client, first["id"])] == ["hello", "again"]


def test_batch_webhook_stores_every_message(client):
    """{"messages": [...]} stores each message, in order, in the sender's conversation."""
    sender = unique("+1555")
    batch = [inbound_message(sender, f"part {n}") for n in range(3)]
    assert post_webhook(client, {"messages": batch}).status_code == 200
    conversation = conversation_of(client, sender)
    assert conversation["unread_count"] == 3
    stored = messages_of(client, conversation["id"])
    assert sorted(m["text"] for m in stored) == ["part 0", "part 1", "part 2"]


def test_retried_webhook_stores_once(client):
    """The same provider message id delivered twice is stored once and acknowledged twice."""
    sender = unique("+1555")
    payload = inbound_message(sender, "only once")
    assert post_webhook(client, payload).status_code == 200
    assert post_webhook(client, payload).status_code == 200
    conversation = conversation_of(client, sender)
    assert len(messages_of(client, conversation["id"])) == 1
    assert conversation["unread_count"] == 1


def test_inbound_media_is_stored(client):
    """Media items in an inbound message are kept with their URL and content type: the
    generic channel has no ``media_fetch``, so they stay links to the sender's URL, with no
    media store id."""
    sender = unique("+1555")
    media = [{"url": "https://example.test/a.png", "content_type": "image/png"}]
    assert post_webhook(client, inbound_message(sender, None, media=media)).status_code == 200
    [message] = messages_of(client, conversation_of(client, sender)["id"])
    assert message["media"] == [
        {
            "url": "https://example.test/a.png",
            "content_type": "image/png",
            "filename": None,
            "id": None,
            "size": None,
            "role": "attachment",
            "content_id": None,
        }
    ]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({SIGNATURE_HEADER: "sha256=" + "0" * 64}, id="wrong"),
        pytest.param({SIGNATURE_HEADER: "not-a-signature"}, id="malformed"),
        pytest.param({SIGNATURE_HEADER: ""}, id="empty"),
    ],
)
def test_bad_signature_is_rejected_and_stores_nothing(client, headers):
    """A webhook without the right signature is answered 403 with JSON and stores nothing."""
    sender = unique("+1555")
    response = client.post(
        WEBHOOK_PATH,
        content=encode(inbound_message(sender)),
        headers={"Content-Type": "application/json", **headers},
    )
    assert response.status_code == 403
    assert response.json()["error"] == "webhook_rejected"
    assert contact_of(client, sender) is None
    assert conversation_of(client, sender) is None


def test_body_signed_with_another_secret_is_rejected(client):
    """A well-formed, signed body is refused when the signing secret is not WEBHOOK_SECRET."""
    sender = unique("+1555")
    response = post_webhook(client, inbound_message(sender), secret="someone-else's-secret")
    assert response.status_code == 403
    assert contact_of(client, sender) is None


def test_signature_covers_the_raw_body(client):
    """A signature of one body does not authorize a different body (re-encoded JSON)."""
    sender = unique("+1555")
    payload = inbound_message(sender)
    signed_for = encode(payload)
    sent = encode(payload).replace(b", ", b",")
    assert sent != signed_for
    response = client.post(
        WEBHOOK_PATH,
        content=sent,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature(signed_for)},
    )
    assert response.status_code == 403
    assert contact_of(client, sender) is None


def test_status_callback_needs_a_signature(client):
    """The status route refuses an unsigned callback with 403."""
    response = client.post(
        STATUS_PATH,
        content=encode({"id": "anything", "status": "delivered"}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 403


def test_webhook_is_public_but_messages_route_is_not(server):
    """The webhook needs no API key (the signature authenticates it); sending does."""
    sender = unique("+1555")
    with server.client(api_key=None) as anonymous:
        assert post_webhook(anonymous, inbound_message(sender)).status_code == 200
        response = anonymous.post("/api/channels/http/messages", json={"to": "x", "text": "y"})
    assert response.status_code == 401


# outbound --------------------------------------------------------------------------------


def test_send_to_address_opens_contact_and_conversation(client, receiver):
    """POST /api/channels/http/messages {"to","text"} creates the contact and conversation
    and delivers the message to the receiver, signed, with the message id as key."""
    address = unique("+1666")
    response = client.post(
        "/api/channels/http/messages",
        json={"to": address, "text": "Welcome!", "name": "Bo"},
        headers=WAIT,
    )
    assert response.status_code == 201, response.text
    assert response.headers["Preference-Applied"] == "wait=10"
    message = response.json()
    assert message["status"] == "sent"
    assert message["direction"] == "outbound"

    [request] = requests_for(receiver, message["id"])
    assert request.method == "POST"
    assert request.path == "/inbound"
    assert is_signed_by(request.body, request.headers.get(SIGNATURE_HEADER.lower()))
    sent = request.json()
    assert sent["to"] == address
    assert sent["text"] == "Welcome!"
    assert sent["id"] == message["id"]

    contact = contact_of(client, address)
    assert contact["display_name"] == "Bo"
    conversation = conversation_of(client, address)
    assert conversation["id"] == message["conversation_id"]
    assert [m["id"] for m in messages_of(client, conversation["id"])] == [message["id"]]


def test_send_to_existing_address_reuses_conversation(client):
    """Sending to an address that already wrote in uses its existing conversation."""
    sender = unique("+1555")
    conversation = open_conversation(client, sender)
    response = client.post(
        "/api/channels/http/messages", json={"to": sender, "text": "hi"}, headers=WAIT
    )
    assert response.status_code == 201, response.text
    assert response.json()["conversation_id"] == conversation["id"]


def test_provider_id_from_receiver_answer_is_recorded(client, receiver):
    """The receiver's {"id"} answer becomes the stored message's provider_message_id."""
    conversation = open_conversation(client, unique("+1555"))
    receiver.queue(ScriptedResponse.json(200, {"id": "remote-42-" + conversation["id"]}))
    response = client.post(
        f"/api/conversations/{conversation['id']}/messages",
        json={"text": "hello back"},
        headers=WAIT,
    )
    assert response.status_code == 201, response.text
    message = response.json()
    assert message["provider_message_id"] == "remote-42-" + conversation["id"]
    stored = client.get(f"/api/messages/{message['id']}").json()
    assert stored["provider_message_id"] == message["provider_message_id"]
    assert stored["status"] == "sent"


# status callbacks ------------------------------------------------------------------------


def sent_message(client: httpx.Client, receiver: FakeProvider) -> dict[str, Any]:
    """An outbound message the receiver accepted, with a provider id of our choosing."""
    conversation = open_conversation(client, unique("+1555"))
    provider_id = unique("remote")
    receiver.queue(ScriptedResponse.json(200, {"id": provider_id}))
    response = client.post(
        f"/api/conversations/{conversation['id']}/messages", json={"text": "tracked"}, headers=WAIT
    )
    assert response.status_code == 201, response.text
    message = response.json()
    assert message["provider_message_id"] == provider_id
    return message


def status_of(client: httpx.Client, message_id: str) -> str:
    return client.get(f"/api/messages/{message_id}").json()["status"]


def test_status_callback_moves_message_forward(client, receiver):
    """A signed "delivered" then "read" callback moves a sent message forward step by step."""
    message = sent_message(client, receiver)
    provider_id = message["provider_message_id"]
    assert post_status(client, {"id": provider_id, "status": "delivered"}).status_code == 200
    assert status_of(client, message["id"]) == "delivered"
    assert post_status(client, {"id": provider_id, "status": "read"}).status_code == 200
    assert status_of(client, message["id"]) == "read"


def test_late_status_never_moves_message_back(client, receiver):
    """ "sent" or "delivered" arriving after "read" changes nothing."""
    message = sent_message(client, receiver)
    provider_id = message["provider_message_id"]
    assert post_status(client, {"id": provider_id, "status": "read"}).status_code == 200
    before = client.get(f"/api/messages/{message['id']}").json()
    for late in ("sent", "delivered", "queued"):
        assert post_status(client, {"id": provider_id, "status": late}).status_code == 200
    assert client.get(f"/api/messages/{message['id']}").json() == before


def test_failed_is_terminal(client, receiver):
    """A failed message stays failed, keeping its error code, whatever comes after."""
    message = sent_message(client, receiver)
    provider_id = message["provider_message_id"]
    failure = {"id": provider_id, "status": "failed", "error_code": "30008"}
    assert post_status(client, failure).status_code == 200
    assert post_status(client, {"id": provider_id, "status": "read"}).status_code == 200
    stored = client.get(f"/api/messages/{message['id']}").json()
    assert stored["status"] == "failed"
    assert stored["error_code"] == "30008"


def test_batch_of_status_callbacks(client, receiver):
    """{"statuses": [...]} applies each update to its own message."""
    first, second = sent_message(client, receiver), sent_message(client, receiver)
    batch = {
        "statuses": [
            {"id": first["provider_message_id"], "status": "delivered"},
            {"id": second["provider_message_id"], "status": "read"},
        ]
    }
    assert post_status(client, batch).status_code == 200
    assert status_of(client, first["id"]) == "delivered"
    assert status_of(client, second["id"]) == "read"


def test_status_for_unknown_provider_id_is_acknowledged_and_not_stored(client, server):
    """A callback naming no stored message is answered 2xx (so the provider stops retrying),
    creates nothing visible, and is logged as parked (it may have beaten send's answer)."""
    contacts_before = client.get("/api/contacts", params={"limit": 200}).json()
    unknown = unique("never-sent")
    response = post_status(client, {"id": unknown, "status": "delivered"})
    assert 200 <= response.status_code < 300
    assert client.get("/api/contacts", params={"limit": 200}).json() == contacts_before
    assert "status_parked_for_unknown_message" in server.log()


def test_status_callback_does_not_touch_inbound_messages(client):
    """An inbound message's provider id in a status callback leaves it "received"."""
    sender = unique("+1555")
    payload = inbound_message(sender)
    post_webhook(client, payload)
    assert post_status(client, {"id": payload["id"], "status": "read"}).status_code == 200
    [message] = messages_of(client, conversation_of(client, sender)["id"])
    assert message["status"] == "received"


# receiver failures: one attempt per send, the outbox retries ------------------------------


def test_receiver_rejection_is_422_and_not_retried(client, receiver):
    """A receiver answering 400 is not retried: 422 send_rejected, message failed, code 400,
    one attempt."""
    conversation = open_conversation(client, unique("+1555"))
    receiver.queue(ScriptedResponse.json(400, {"error": "bad recipient"}))
    response = client.post(
        f"/api/conversations/{conversation['id']}/messages", json={"text": "rejected"}, headers=WAIT
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "send_rejected"
    message_id = body["message_id"]
    assert len(requests_for(receiver, message_id)) == 1
    stored = client.get(f"/api/messages/{message_id}").json()
    assert (stored["status"], stored["error_code"], stored["attempts"]) == ("failed", "400", 1)


@pytest.fixture(scope="module")
def flaky() -> Iterator[Receiver]:
    """A receiver scripted per recipient: 429s with Retry-After, 5xx, lost answers."""
    with Receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def outbox_server(
    tmp_path_factory: pytest.TempPathFactory, flaky: Receiver
) -> Iterator[ServerProcess]:
    """The real server sending to :func:`flaky`, retrying for :data:`RETRY_SECONDS`."""
    env = {
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "HTTP_CHANNEL_SEND_URL": flaky.url + "/inbound",
        "OMNICHANNEL_SEND_RETRY_SECONDS": f"http={RETRY_SECONDS}",
    }
    with running_server(tmp_path_factory.mktemp("outbox-server"), env) as process:
        yield process


@pytest.fixture
def outbox_api(outbox_server: ServerProcess) -> Iterator[httpx.Client]:
    with outbox_server.client() as client:
        yield client


def send_to(api: httpx.Client, to: str, wait: int = 10) -> httpx.Response:
    """Send to ``to`` on the http channel, answered when the outbox is done with it (sent,
    failed or in doubt), or still retrying after ``wait`` seconds."""
    return api.post(
        "/api/channels/http/messages",
        json={"to": to, "text": f"for {to}"},
        headers={"Prefer": f"wait={wait}"},
        timeout=wait + 10,
    )


def settled(api: httpx.Client, message_id: str, seconds: float = 10) -> dict[str, Any]:
    """The message once the outbox is done with it (neither queued nor sending), polled."""
    deadline = time.monotonic() + seconds
    while True:
        message = api.get(f"/api/messages/{message_id}").json()
        if message["status"] not in ("queued", "sending"):
            return message
        assert time.monotonic() < deadline, f"still {message['status']} after {seconds}s: {message}"
        time.sleep(0.05)


def arrived(receiver: Receiver, to: str, count: int, seconds: float = 15) -> list[Received]:
    """The requests for ``to`` once ``count`` of them reached the receiver, polled."""
    deadline = time.monotonic() + seconds
    while len(requests := receiver.received(to)) < count:
        assert time.monotonic() < deadline, f"{len(requests)} requests, not {count}"
        time.sleep(0.02)
    return requests


def test_receiver_recovering_sends_on_the_outbox_retry(outbox_api, flaky):
    """A 503 then a 200: between the two attempts the message is `queued` with the error
    503; the outbox's retry, same Idempotency-Key and body, sends it and clears the error,
    and a caller who waited is answered 201 once it is sent."""
    to, remote, retry = unique("+1777"), unique("remote"), threading.Event()
    flaky.script(to, Answer(503), then=Answer.json(200, {"id": remote}, held=retry))
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(send_to, outbox_api, to)
        try:
            first, _ = arrived(flaky, to, 2)  # the retry, held until the check below
            retrying = outbox_api.get(f"/api/messages/{first.key}").json()
            assert (retrying["status"], retrying["error_code"]) == ("queued", "503")
            assert retrying["attempts"] == 2
        finally:
            retry.set()
        response = answer.result()
    assert response.status_code == 201, response.text
    sent = response.json()
    assert (sent["status"], sent["provider_message_id"]) == ("sent", remote)
    assert (sent["error_code"], sent["error_message"], sent["attempts"]) == (None, None, 2)
    assert outbox_api.get(f"/api/messages/{sent['id']}").json() == sent
    first, second = flaky.received(to)
    assert first.key == second.key == sent["id"]
    assert first.body == second.body
    assert is_signed_by(second.body, second.headers.get(SIGNATURE_HEADER.lower()))


def test_receiver_outage_is_retried_until_the_deadline_then_fails(outbox_api, flaky):
    """A receiver answering 500 to every attempt: a caller who waited is answered 502
    provider_unavailable when the wait is over, the message still `queued` with the error
    and retried with backoff; it fails with code 500 once the channel's retry deadline has
    passed, and nothing is sent after that."""
    to, retry = unique("+1777"), threading.Event()
    flaky.script(to, Answer(500), Answer(500, held=retry), then=Answer(500))
    try:
        response = send_to(outbox_api, to, wait=2)  # while the second attempt is held
    finally:
        retry.set()
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["error"] == "provider_unavailable"
    assert "500" in body["message"]
    waited = body["stored_message"]
    assert (waited["status"], waited["error_code"]) == ("queued", "500")
    failed = settled(outbox_api, body["message_id"], seconds=RETRY_SECONDS + 10)
    assert (failed["status"], failed["error_code"]) == ("failed", "500")
    attempts = flaky.received(to)
    assert len(attempts) == failed["attempts"] >= 3  # retried with backoff, not failed at once
    assert {request.key for request in attempts} == {body["message_id"]}
    time.sleep(0.3)  # several backoffs: a failed message is never tried again
    assert len(flaky.received(to)) == len(attempts)


def test_a_throttled_send_is_retried_after_its_retry_after(outbox_api, flaky):
    """A 429 with Retry-After: 1 leaves the message `queued` with the error 429; the
    outbox's retry does not come before that second has passed (its backoff alone is
    50 ms), then the message is sent, and a caller who waited is answered 201."""
    to, remote, retry = unique("+1777"), unique("remote"), threading.Event()
    throttle = Answer.json(429, {}, headers={"Retry-After": "1"})
    flaky.script(to, throttle, then=Answer.json(200, {"id": remote}, held=retry))
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(send_to, outbox_api, to)
        try:
            throttled, retried = arrived(flaky, to, 2)
            waiting = outbox_api.get(f"/api/messages/{throttled.key}").json()
            assert (waiting["status"], waiting["error_code"]) == ("queued", "429")
        finally:
            retry.set()
        response = answer.result()
    assert retried.at - throttled.at >= 1.0, retried.at - throttled.at
    assert response.status_code == 201, response.text
    sent = response.json()
    assert (sent["status"], sent["provider_message_id"], sent["attempts"]) == ("sent", remote, 2)
    assert throttled.key == retried.key == sent["id"]


@pytest.mark.parametrize(
    ("lost", "wait"),
    [pytest.param(STALL, 20, id="read-timeout"), pytest.param(HANG_UP, 10, id="closed")],
)
def test_a_lost_answer_is_resent_with_the_same_key(outbox_api, flaky, lost, wait):
    """The receiver took the request but its answer never came (the channel's read timeout,
    or the connection closed after the body): 504 send_outcome_unknown, the message
    `sending` and in doubt, not failed, and still so while the outbox resends it (the HTTP
    channel is resend_safe) with the same Idempotency-Key and the same signed body, for the
    receiver to dedupe; the resend's answer settles it `sent`."""
    to, remote, resend = unique("+1777"), unique("remote"), threading.Event()
    flaky.script(to, lost, then=Answer.json(200, {"id": remote}, held=resend))
    try:
        response = send_to(outbox_api, to, wait=wait)
        assert response.status_code == 504, response.text
        body = response.json()
        assert body["error"] == "send_outcome_unknown"
        doubted = body["stored_message"]
        assert (doubted["status"], doubted["in_doubt"]) == ("sending", True)
        assert doubted["attempts"] in (1, 2)  # 2 once the resend (held) was claimed
        first, second = arrived(flaky, to, 2)
        resending = outbox_api.get(f"/api/messages/{body['message_id']}").json()
        assert (resending["status"], resending["in_doubt"]) == ("sending", True)
    finally:
        resend.set()
    sent = settled(outbox_api, body["message_id"])
    assert (sent["status"], sent["provider_message_id"]) == ("sent", remote)
    assert (sent["in_doubt"], sent["attempts"]) == (False, 2)
    assert len(flaky.received(to)) == 2
    assert first.key == second.key == sent["id"]
    assert (first.body, first.headers[SIGNATURE_HEADER.lower()]) == (
        second.body,
        second.headers[SIGNATURE_HEADER.lower()],
    )


def test_an_unreachable_receiver_is_retried_then_fails_unreachable(tmp_path: Path):
    """No receiver listening: no connection made, so the receiver cannot have it: the
    outbox retries it with backoff and fails it, code unreachable, once the retry deadline
    (in-process, 1 s) has passed; a caller who waited that long is answered 502
    provider_unavailable with the failed message."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        sent = await conductor.simulate_post(
            "/api/channels/http/messages",
            json={"to": "+15550199", "text": "anyone?"},
            headers={**AUTH, **WAIT},
        )
        assert sent.status_code == 502, sent.text
        assert sent.json["error"] == "provider_unavailable"
        failed = sent.json["stored_message"]
        assert (failed["status"], failed["error_code"]) == ("failed", "unreachable")
        assert failed["attempts"] > 2
        stored = await conductor.simulate_get(f"/api/messages/{failed['id']}", headers=AUTH)
        assert stored.json == failed

    environ = {
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "HTTP_CHANNEL_SEND_URL": f"http://127.0.0.1:{free_port()}/inbound",
    }
    run_app(tmp_path, {}, scenario, environ, jobs=True, send_retry_seconds={"http": 1})


def test_post_signed_raw_bytes_helper_roundtrip(client):
    """post_signed signs exactly the bytes it sends (guards the test helper itself)."""
    sender = unique("+1555")
    body = encode(inbound_message(sender))
    assert post_signed(client, WEBHOOK_PATH, body).status_code == 200
    assert contact_of(client, sender) is not None


# status callbacks racing send ------------------------------------------------------------


def test_status_callback_arriving_before_send_returns_is_applied(client, server, receiver):
    """A provider may call back before answering the send (the callback races the answer):
    that callback is kept and applied once the provider id is recorded, so the message
    ends up delivered, not stuck at sent."""
    conversation = open_conversation(client, unique("+1555"))
    provider_id = unique("remote-early")
    receiver.queue(ScriptedResponse.json(200, {"id": provider_id}))
    answers: list[httpx.Response] = []

    def send() -> None:
        with server.client() as sender:
            answers.append(
                sender.post(
                    f"/api/conversations/{conversation['id']}/messages",
                    json={"text": "racing"},
                    headers=WAIT,
                )
            )

    sending = threading.Thread(target=send)
    # While the test holds the fake receiver's lock it cannot answer, so send cannot have
    # recorded the provider id before the callback below has been acknowledged.
    with receiver._lock:
        sending.start()
        callback = post_status(client, {"id": provider_id, "status": "delivered"})
        assert callback.status_code == 200
    sending.join(60)
    assert not sending.is_alive()
    [response] = answers
    assert response.status_code == 201, response.text
    message = response.json()
    assert message["provider_message_id"] == provider_id
    assert message["status"] == "delivered"
    assert status_of(client, message["id"]) == "delivered"


def test_provider_id_reused_by_the_receiver_is_not_a_server_error(client, receiver):
    """A receiver that answers a second send with a provider id it already gave another
    message does not turn a delivered message into a 500: the second message is sent,
    without a provider id, and callbacks for that id keep reaching the first message."""
    conversation = open_conversation(client, unique("+1555"))
    provider_id = unique("remote-reused")
    receiver.queue(*[ScriptedResponse.json(200, {"id": provider_id})] * 2)
    path = f"/api/conversations/{conversation['id']}/messages"
    first = client.post(path, json={"text": "one"}, headers=WAIT)
    second = client.post(path, json={"text": "two"}, headers=WAIT)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["provider_message_id"] == provider_id
    assert second.json()["provider_message_id"] is None
    assert second.json()["status"] == "sent"
    assert post_status(client, {"id": provider_id, "status": "read"}).status_code == 200
    assert status_of(client, first.json()["id"]) == "read"
    assert status_of(client, second.json()["id"]) == "sent"


def test_a_stored_secret_configures_the_channel_without_a_restart(tmp_path: Path):
    """With the send URL in the environment (where the channel connects: the environment's
    only, never stored) and no secret, the secret an admin stored makes the channel
    healthy, authenticates its webhooks and signs its sends; a replaced secret is the one
    checked by the very next webhook."""
    stored = StoredSettings()

    with FakeProvider(answer=lambda _: ScriptedResponse.json(200, {"id": "r-1"})) as receiver:

        async def scenario(conductor: testing.ASGIConductor) -> None:
            health = await conductor.simulate_get("/api/channels/http/health", headers=AUTH)
            assert health.json["checks"]["missing"] == ["WEBHOOK_SECRET"]
            stored.replace({"WEBHOOK_SECRET": "stored-secret"}, 1)
            health = await conductor.simulate_get("/api/channels/http/health", headers=AUTH)
            assert health.status_code == 200

            async def webhook(secret: str) -> int:
                body = encode(inbound_message(unique("+1555")))
                headers = {"Content-Type": "application/json"}
                headers[SIGNATURE_HEADER] = signature(body, secret)
                answer = await conductor.simulate_post(WEBHOOK_PATH, body=body, headers=headers)
                return answer.status_code

            assert await webhook("stored-secret") == 200
            sent = await conductor.simulate_post(
                "/api/channels/http/messages",
                json={"to": "+15550123", "text": "hi"},
                headers={**AUTH, **WAIT},
            )
            assert sent.status_code == 201, sent.text
            [request] = receiver.requests
            presented = request.headers[SIGNATURE_HEADER.lower()]
            assert is_signed_by(request.body, presented, "stored-secret")
            stored.replace({"WEBHOOK_SECRET": "rotated-secret"}, 2)
            assert await webhook("stored-secret") == 403
            assert await webhook("rotated-secret") == 200

        environ = {"HTTP_CHANNEL_SEND_URL": receiver.url}
        run_app(tmp_path, {}, scenario, environ, jobs=True, stored_settings=stored)

    declared = asyncio.run(http_channel.settings())
    assert [(item.name, item.secret, item.required, item.storable) for item in declared] == [
        ("WEBHOOK_SECRET", True, True, True),
        ("HTTP_CHANNEL_SEND_URL", False, True, False),
    ]

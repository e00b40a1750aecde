"""The generic HTTP channel through the real server: signed inbound webhooks, status
callbacks, outbound sends to a receiver, and what happens when the receiver fails."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from omnichannel_core.testing.fake_provider import FakeProvider, RecordedRequest, ScriptedResponse
from omnichannel_core.testing.server import ServerProcess
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
    """Media items in an inbound message are kept with their URL and content type."""
    sender = unique("+1555")
    media = [{"url": "https://example.test/a.png", "content_type": "image/png"}]
    assert post_webhook(client, inbound_message(sender, None, media=media)).status_code == 200
    [message] = messages_of(client, conversation_of(client, sender)["id"])
    assert message["media"] == [
        {"url": "https://example.test/a.png", "content_type": "image/png", "filename": None}
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
        "/api/channels/http/messages", json={"to": address, "text": "Welcome!", "name": "Bo"}
    )
    assert response.status_code == 201
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
    response = client.post("/api/channels/http/messages", json={"to": sender, "text": "hi"})
    assert response.status_code == 201
    assert response.json()["conversation_id"] == conversation["id"]


def test_provider_id_from_receiver_answer_is_recorded(client, receiver):
    """The receiver's {"id"} answer becomes the stored message's provider_message_id."""
    conversation = open_conversation(client, unique("+1555"))
    receiver.queue(ScriptedResponse.json(200, {"id": "remote-42-" + conversation["id"]}))
    response = client.post(
        f"/api/conversations/{conversation['id']}/messages", json={"text": "hello back"}
    )
    assert response.status_code == 201
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
        f"/api/conversations/{conversation['id']}/messages", json={"text": "tracked"}
    )
    assert response.status_code == 201
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


# receiver failures -----------------------------------------------------------------------


def test_receiver_outage_is_retried_then_fails_with_502(client, receiver):
    """A receiver answering 500 is tried three times; the message is then failed, and the
    API answers 502 with JSON naming the stored message."""
    conversation = open_conversation(client, unique("+1555"))
    receiver.queue(*[ScriptedResponse(500)] * 3)
    response = client.post(
        f"/api/conversations/{conversation['id']}/messages", json={"text": "are you there?"}
    )
    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "provider_unavailable"
    assert "500" in body["message"]
    message_id = body["message_id"]
    assert len(requests_for(receiver, message_id)) == 3
    stored = client.get(f"/api/messages/{message_id}").json()
    assert stored["status"] == "failed"
    assert stored["error_code"] == "500"
    assert body["stored_message"]["id"] == message_id


def test_receiver_recovering_within_retries_sends_once(client, receiver):
    """A 503 followed by a 200 ends in a sent message after two attempts."""
    conversation = open_conversation(client, unique("+1555"))
    receiver.queue(ScriptedResponse(503), ScriptedResponse.json(200, {"id": unique("remote")}))
    response = client.post(
        f"/api/conversations/{conversation['id']}/messages", json={"text": "second try"}
    )
    assert response.status_code == 201
    message = response.json()
    assert message["status"] == "sent"
    assert len(requests_for(receiver, message["id"])) == 2


def test_receiver_rejection_is_422_and_not_retried(client, receiver):
    """A receiver answering 400 is not retried: 422 send_rejected, message failed, code 400."""
    conversation = open_conversation(client, unique("+1555"))
    receiver.queue(ScriptedResponse.json(400, {"error": "bad recipient"}))
    response = client.post(
        f"/api/conversations/{conversation['id']}/messages", json={"text": "rejected"}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "send_rejected"
    message_id = body["message_id"]
    assert len(requests_for(receiver, message_id)) == 1
    stored = client.get(f"/api/messages/{message_id}").json()
    assert stored["status"] == "failed"
    assert stored["error_code"] == "400"


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
                    f"/api/conversations/{conversation['id']}/messages", json={"text": "racing"}
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
    assert response.status_code == 201
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
    first = client.post(path, json={"text": "one"})
    second = client.post(path, json={"text": "two"})
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["provider_message_id"] == provider_id
    assert second.json()["provider_message_id"] is None
    assert second.json()["status"] == "sent"
    assert post_status(client, {"id": provider_id, "status": "read"}).status_code == 200
    assert status_of(client, first.json()["id"]) == "read"
    assert status_of(client, second.json()["id"]) == "sent"

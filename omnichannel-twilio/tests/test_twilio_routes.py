"""The Twilio channel's own routes through the real server: authentication, request shape,
the message status lookup by our id or by Twilio's SID, and their place in the OpenAPI
document."""

from __future__ import annotations

import pytest
from fake_twilio import MessageAnswer, new_message_sid
from twilio_outbox import WAIT
from twilio_signing import unique_phone

from omnichannel_core.testing.openapi_contract import Contract, fetch_document
from omnichannel_core.testing.users import client_for, logged_in

SEND_SMS = "/api/channels/twilio/send/sms"
SEND_WHATSAPP = "/api/channels/twilio/send/whatsapp"


def status_path(identifier: str) -> str:
    return f"/api/channels/twilio/message/{identifier}/status"


def test_message_status_by_our_id_and_by_twilio_sid(client, fake_twilio):
    """GET message/{id}/status answers the stored message, found by our msg_ id or by the
    SID Twilio gave it, the same JSON as /api/messages/{id}."""
    sid = new_message_sid()
    phone = unique_phone()
    fake_twilio.queue(MessageAnswer.accept(sid), to=phone)
    sent = client.post(SEND_SMS, json={"to": phone, "message": "where is it"}, headers=WAIT)
    assert sent.status_code == 201, sent.text
    message_id = sent.json()["id"]
    expected = client.get(f"/api/messages/{message_id}").json()

    by_id = client.get(status_path(message_id))
    by_sid = client.get(status_path(sid))
    assert by_id.status_code == 200, by_id.text
    assert by_sid.status_code == 200, by_sid.text
    assert by_id.json() == expected
    assert by_sid.json() == expected
    assert by_sid.json()["provider_message_id"] == sid


@pytest.mark.parametrize("identifier", ["msg_doesnotexist", "SM" + "0" * 32, "MM" + "1" * 32])
def test_message_status_of_unknown_message_is_404_json(client, identifier):
    """An id or SID the server does not know: 404 with a JSON error body."""
    response = client.get(status_path(identifier))
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "not_found"


def test_message_status_of_another_channels_message_is_404(client, inbox, fake_twilio):
    """The status route reads through the Twilio channel's own ChannelInbox: a message of
    another channel (one the generic http channel stored, for the same phone number)
    answers 404 by its id, saying nothing of it, although /api/messages/{id} finds it;
    the Twilio message to that number answers 200."""
    phone = unique_phone()
    # stored is enough (202): what the http channel makes of it is not the point here
    stored = client.post(
        "/api/channels/http/messages", json={"to": phone, "text": "sent over http"}
    )
    assert stored.status_code == 202, stored.text
    [foreign] = inbox.messages_of(phone, "http")
    assert client.get(f"/api/messages/{foreign['id']}").status_code == 200
    refused = client.get(status_path(foreign["id"]))
    assert refused.status_code == 404
    assert refused.json()["error"] == "not_found"
    assert "sent over http" not in refused.text
    fake_twilio.queue(MessageAnswer.accept(new_message_sid()), to=phone)
    sent = client.post(SEND_SMS, json={"to": phone, "message": "sent over twilio"}, headers=WAIT)
    assert sent.status_code == 201, sent.text
    own = client.get(status_path(sent.json()["id"]))
    assert (own.status_code, own.json()["channel"]) == (200, "twilio")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", SEND_SMS),
        ("POST", SEND_WHATSAPP),
        ("GET", status_path("msg_x")),
    ],
)
def test_channel_routes_need_an_api_key(twilio_server, fake_twilio, method, path):
    """The send and status routes are not public: 401 without an API key, nothing sent."""
    before = len(fake_twilio.message_requests())
    with twilio_server.client(api_key=None) as anonymous:
        response = anonymous.request(
            method, path, json={"to": "+15551230009", "message": "x"} if method == "POST" else None
        )
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
    assert len(fake_twilio.message_requests()) == before


def test_send_route_wants_json(client, fake_twilio):
    """A form or text body on a send route is refused (415), nothing sent."""
    before = len(fake_twilio.message_requests())
    response = client.post(
        SEND_SMS,
        content=b"to=%2B15551230009&message=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert len(fake_twilio.message_requests()) == before


def test_send_route_refuses_malformed_json(client):
    """Malformed JSON: 400, never a 5xx."""
    response = client.post(
        SEND_SMS, content=b'{"to": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_generic_messages_route_sends_through_twilio(client, inbox, fake_twilio):
    """The core's generic POST /api/channels/twilio/messages sends through Twilio too."""
    phone = unique_phone()
    response = client.post(
        "/api/channels/twilio/messages", json={"to": phone, "text": "hi"}, headers=WAIT
    )
    assert response.status_code == 201, response.text
    [sent] = fake_twilio.message_requests(to=phone)
    assert sent.param("Body") == "hi"


def test_twilio_is_listed_with_its_routes(client):
    """GET /api/plugins lists the twilio channel from the omnichannel-twilio distribution."""
    response = client.get("/api/plugins")
    assert response.status_code == 200
    assert "twilio" in response.text
    assert "omnichannel-twilio" in response.text


def test_who_may_send_and_read_through_the_twilio_routes(twilio_server, client, fake_twilio):
    """The send routes need ``messages:send`` and the status route ``conversations:read``,
    as docs/access.md lists them; on the status route an agent sees only the messages of
    conversations assigned to them or to nobody, like on /api/messages/{id}."""
    sent = client.post(SEND_SMS, json={"to": unique_phone(), "message": "whose is it"})
    assert sent.status_code == 202, sent.text  # stored is enough here
    message = sent.json()
    owner, owner_client = logged_in(twilio_server, client, "agent")
    _, other_agent = logged_in(twilio_server, client, "agent")
    _, supervisor = logged_in(twilio_server, client, "supervisor")
    assigned = client.patch(
        f"/api/conversations/{message['conversation_id']}", json={"assignee": owner["id"]}
    )
    assert assigned.status_code == 200, assigned.text
    keys = {
        scope: client.post("/api/api-keys", json={"name": scope, "scopes": [scope]}).json()["key"]
        for scope in ("send", "read")
    }
    path = status_path(message["id"])
    with owner_client, other_agent, supervisor:
        assert owner_client.get(path).status_code == 200
        refused = other_agent.get(path)
        assert refused.status_code == 403 and refused.json()["permission"] == "agent"
        assert supervisor.get(path).status_code == 200
        assert other_agent.post(SEND_SMS, json={}).json()["permission"] == "messages:send"
    with client_for(twilio_server, keys["send"]) as sender:
        assert sender.get(path).json()["permission"] == "conversations:read"
        assert sender.post(SEND_SMS, json={}).status_code == 400  # allowed; the body is wrong
    with client_for(twilio_server, keys["read"]) as reader:
        assert reader.get(path).status_code == 200
        assert reader.post(SEND_WHATSAPP, json={}).json()["permission"] == "messages:send"


def test_twilio_routes_are_documented_and_answer_as_documented(twilio_server, client, fake_twilio):
    """/api/openapi.json lists the send and status routes under Twilio's own paths, with
    the permission each needs and the send body's schema (the field rules the server
    applies); a real send, its replay, a lookup and a refused body fit what it documents."""
    document = fetch_document(twilio_server)
    paths = document["paths"]
    for path in (SEND_SMS, SEND_WHATSAPP):
        send = paths[path]["post"]
        assert send["x-permission"] == "messages:send"
        assert send["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/TwilioSend"
        }
        assert [parameter["name"] for parameter in send["parameters"]] == ["Idempotency-Key"]
    status_template = "/api/channels/twilio/message/{message_id}/status"
    assert paths[status_template]["get"]["x-permission"] == "conversations:read"
    schema = document["components"]["schemas"]["TwilioSend"]
    assert schema["required"] == ["to"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["message"]["maxLength"] == 1600
    assert schema["properties"]["media_urls"]["maxItems"] == 10

    contract = Contract(document)
    payload = {"to": unique_phone(), "message": "documented"}
    key = {"Idempotency-Key": "documented-" + payload["to"]}
    queued = client.post(SEND_SMS, json=payload, headers=key)
    assert queued.status_code == 202, queued.text
    sent = contract.check(queued, "post", SEND_SMS)
    waited = client.post(SEND_SMS, json={**payload, "to": unique_phone()}, headers=WAIT)
    assert waited.status_code == 201, waited.text
    contract.check(waited, "post", SEND_SMS)
    replayed = client.post(SEND_SMS, json=payload, headers=key)
    assert replayed.status_code == 200
    contract.check(replayed, "post", SEND_SMS)
    contract.check(client.get(status_path(sent["id"])), "get", status_template)
    contract.check(client.get(status_path("msg_nothing")), "get", status_template)
    refused = client.post(SEND_WHATSAPP, json={"to": "+1555", "message": "x", "extra": 1})
    assert contract.check(refused, "post", SEND_WHATSAPP)["field"] == "extra"

"""Bad input never yields a 5xx nor changes stored data.

A table of malformed requests is sent through the real server against every write route
(and the list routes' query parameters). Each must be answered 4xx with a JSON body
``{"error", "message"}``, must leave every contact, conversation and message exactly as it
was (read back through the API), and must send nothing to the channel's receiver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import attrs
import httpx
import pytest

from omnichannel_core.testing.fake_provider import FakeProvider, ScriptedResponse
from omnichannel_core.testing.server import ServerProcess
from tests.support.signing import (
    SIGNATURE_HEADER,
    STATUS_PATH,
    WEBHOOK_PATH,
    inbound_message,
    post_webhook,
    signature,
    unique,
)

SENDER = "+15550001111"
PROVIDER_ID = "remote-bad-input-1"
MAX_BODY = 1_048_576


@attrs.frozen
class BadRequest:
    """One malformed request. ``path`` may name {contact}, {conversation}, {message}."""

    name: str
    method: str
    path: str
    body: bytes | None = None
    content_type: str | None = "application/json"
    headers: dict[str, Any] = attrs.field(factory=dict)
    signed: bool = False
    status: int | None = None  # the exact 4xx expected, when it matters


def raw(value: Any) -> bytes:
    return json.dumps(value).encode()


# bodies that are wrong for every JSON route, whatever its fields -------------------------

UNPARSABLE = {
    "not-json": b"{text: hello}",
    "truncated-json": b'{"text": "hel',
    "empty-body": b"",
    "json-array": b"[]",
    "json-string": b'"hello"',
    "json-number": b"42",
    "json-null": b"null",
    "invalid-utf8": b'{"text": "caf\xe9 \xff\xfe"}',
    "lone-surrogate": b'{"text": "\\ud800 broken"}',
    "nan": b'{"text": "x", "metadata": {"n": NaN}}',
    "infinity": b'{"text": "x", "metadata": {"n": 1e999}}',
    "huge-integer": b'{"text": "x", "metadata": {"n": ' + b"9" * 5000 + b"}}",
    "deep-nesting": b'{"text": "x", "metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


def common_cases(method: str, path: str, signed: bool = False) -> list[BadRequest]:
    cases = [
        BadRequest(name, method, path, body, signed=signed) for name, body in UNPARSABLE.items()
    ]
    cases.append(
        BadRequest(
            "oversized-body",
            method,
            path,
            raw({"text": "x" * (MAX_BODY + 10)}),
            signed=signed,
            status=413,
        )
    )
    if not signed:  # channels read their own bodies; the core's JSON routes insist on JSON
        cases.append(
            BadRequest(
                "text-plain", method, path, b'{"text": "x"}', content_type="text/plain", status=415
            )
        )
    return cases


def json_cases(method: str, path: str, bodies: dict[str, Any]) -> list[BadRequest]:
    return [BadRequest(name, method, path, raw(body)) for name, body in bodies.items()]


CONTACT = "/api/contacts/{contact}"
CONVERSATION = "/api/conversations/{conversation}"
REPLY = "/api/conversations/{conversation}/messages"
SEND = "/api/channels/http/messages"

LINK = "https://cdn.example.test/file.png"


def nested(levels: int) -> Any:
    """A list nested ``levels`` deep."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


DEEP = nested(450)  # parses, but used to overflow the stack when the stored row was read

WAIT = {"Prefer": "wait=10"}
"""Answered once the outbox has sent the message."""

OUTBOUND_BODIES: dict[str, Any] = {
    "empty-object": {},
    "empty-text": {"text": ""},
    "blank-text": {"text": "   \n\t"},
    "null-text-no-media": {"text": None},
    "text-number": {"text": 5},
    "text-list": {"text": ["a"]},
    "huge-text": {"text": "x" * 65_537},
    "media-not-list": {"media": {"url": LINK}},
    "media-11-items": {"media": [{"url": LINK}] * 11},
    "media-ftp-url": {"media": [{"url": "ftp://example.test/a.png"}]},
    "media-javascript-url": {"media": [{"url": "javascript:alert(1)"}]},
    "media-relative-url": {"media": [{"url": "/a.png"}]},
    "media-data-url": {"media": ["data:text/plain,hi"]},
    "media-url-number": {"media": [{"url": 5}]},
    "media-item-number": {"media": [5]},
    "media-unknown-field": {"media": [{"url": LINK, "size": 3}]},
    "media-huge-url": {"media": [{"url": "https://e.test/" + "a" * 3000}]},
    "metadata-list": {"text": "x", "metadata": ["a"]},
    "metadata-nested-450-deep": {"text": "x", "metadata": {"a": DEEP}},
    "metadata-nested-33-deep": {"text": "x", "metadata": {"a": nested(32)}},
    "unknown-field": {"text": "x", "priority": "high"},
    "send-at-without-offset": {"text": "x", "send_at": "2027-01-31T09:30:00"},
    "send-at-date-only": {"text": "x", "send_at": "2027-01-31"},
    "send-at-not-a-date": {"text": "x", "send_at": "tomorrow"},
    "send-at-impossible-day": {"text": "x", "send_at": "2027-02-31T09:30:00Z"},
    "send-at-number": {"text": "x", "send_at": 1767225600},
    "send-at-in-ten-years": {"text": "x", "send_at": "2036-01-31T09:30:00+01:00"},
    "send-at-before-year-one": {"text": "x", "send_at": "0001-01-01T00:00:00+01:00"},
    "send-at-year-999": {"text": "x", "send_at": "0999-01-01T00:00:00Z"},
}

CASES: list[BadRequest] = [
    # PATCH /api/contacts/{id}
    *common_cases("PATCH", CONTACT),
    *json_cases(
        "PATCH",
        CONTACT,
        {
            "contact-empty-object": {},
            "contact-unknown-field": {"nickname": "x"},
            "contact-name-number": {"display_name": 5},
            "contact-name-object": {"display_name": {"first": "a"}},
            "contact-huge-name": {"display_name": "n" * 10_000},
            "contact-tags-string": {"tags": "vip"},
            "contact-tags-numbers": {"tags": [1, 2]},
            "contact-tags-empty-string": {"tags": [""]},
            "contact-tags-too-many": {"tags": [f"t{n}" for n in range(101)]},
            "contact-attributes-list": {"attributes": ["a"]},
            "contact-attributes-string": {"attributes": "a=b"},
            "contact-attributes-nested-450-deep": {"attributes": {"a": DEEP}},
        },
    ),
    BadRequest(
        "contact-unknown-id", "PATCH", "/api/contacts/ct_nope", raw({"tags": []}), status=404
    ),
    BadRequest("contact-nul-id", "PATCH", "/api/contacts/%00", raw({"tags": []}), status=404),
    BadRequest("contact-huge-id", "PATCH", "/api/contacts/" + "c" * 4000, raw({"tags": []})),
    BadRequest("contact-delete", "DELETE", CONTACT, status=405),
    # PATCH /api/conversations/{id}
    *common_cases("PATCH", CONVERSATION),
    *json_cases(
        "PATCH",
        CONVERSATION,
        {
            "conversation-empty-object": {},
            "conversation-bad-status": {"status": "closed"},
            "conversation-status-case": {"status": "OPEN"},
            "conversation-status-number": {"status": 1},
            "conversation-status-null": {"status": None},
            "conversation-status-list": {"status": ["open"]},
            "conversation-assignee-number": {"assignee": 7},
            "conversation-huge-assignee": {"assignee": "a" * 10_000},
            "conversation-unknown-field": {"status": "pending", "priority": "high"},
            "conversation-unread-not-zero": {"unread_count": 5},
        },
    ),
    BadRequest(
        "conversation-unknown-id",
        "PATCH",
        "/api/conversations/cv_nope",
        raw({"status": "resolved"}),
        status=404,
    ),
    # POST /api/conversations/{id}/messages
    *common_cases("POST", REPLY),
    *json_cases("POST", REPLY, {f"reply-{k}": v for k, v in OUTBOUND_BODIES.items()}),
    BadRequest(
        "reply-unknown-conversation",
        "POST",
        "/api/conversations/cv_nope/messages",
        raw({"text": "hi"}),
        status=404,
    ),
    BadRequest(
        "reply-idempotency-key-too-long",
        "POST",
        REPLY,
        raw({"text": "hi"}),
        headers={"Idempotency-Key": "k" * 256},
    ),
    BadRequest(
        "reply-idempotency-key-space",
        "POST",
        REPLY,
        raw({"text": "hi"}),
        headers={"Idempotency-Key": "two words"},
    ),
    BadRequest(
        "reply-idempotency-key-non-ascii",
        "POST",
        REPLY,
        raw({"text": "hi"}),
        headers={"Idempotency-Key": "clé".encode()},
    ),
    # POST /api/channels/http/messages
    *common_cases("POST", SEND),
    *json_cases(
        "POST",
        SEND,
        {
            **{f"send-{k}": {"to": SENDER, **v} for k, v in OUTBOUND_BODIES.items()},
            "send-missing-to": {"text": "hi"},
            "send-empty-to": {"to": "", "text": "hi"},
            "send-blank-to": {"to": "   ", "text": "hi"},
            "send-to-number": {"to": 15550001111, "text": "hi"},
            "send-huge-to": {"to": "1" * 400, "text": "hi"},
            "send-name-number": {"to": SENDER, "name": 5, "text": "hi"},
            "send-new-address-empty-text": {"to": "+19990000000", "text": ""},
            "send-new-address-bad-media": {"to": "+19990000000", "media": [{"url": "ftp://x"}]},
        },
    ),
    BadRequest("send-unknown-channel", "POST", "/api/channels/nope/messages", raw({}), status=404),
    # POST /api/channels/http/webhook, correctly signed
    *common_cases("POST", WEBHOOK_PATH, signed=True),
    *[
        BadRequest(f"webhook-{name}", "POST", WEBHOOK_PATH, raw(body), signed=True)
        for name, body in {
            "empty-object": {},
            "missing-id": {"from": "+1999", "text": "hi"},
            "id-number": {"id": 5, "from": "+1999", "text": "hi"},
            "empty-id": {"id": "", "from": "+1999", "text": "hi"},
            "missing-from": {"id": "w1", "text": "hi"},
            "from-number": {"id": "w1", "from": 1999, "text": "hi"},
            "no-text-no-media": {"id": "w1", "from": "+1999"},
            "empty-text": {"id": "w1", "from": "+1999", "text": ""},
            "text-number": {"id": "w1", "from": "+1999", "text": 5},
            "name-number": {"id": "w1", "from": "+1999", "text": "hi", "name": 5},
            "media-not-list": {"id": "w1", "from": "+1999", "media": {"url": LINK}},
            "media-ftp-url": {"id": "w1", "from": "+1999", "media": [{"url": "ftp://x/y"}]},
            "media-javascript": {"id": "w1", "from": "+1999", "media": [{"url": "javascript:1"}]},
            "media-11-items": {"id": "w1", "from": "+1999", "media": [{"url": LINK}] * 11},
            "media-type-number": {
                "id": "w1",
                "from": "+1999",
                "media": [{"url": LINK, "content_type": 5}],
            },
            "bad-timestamp": {"id": "w1", "from": "+1999", "text": "hi", "timestamp": "yesterday"},
            "timestamp-number": {"id": "w1", "from": "+1999", "text": "hi", "timestamp": 5},
            "empty-batch": {"messages": []},
            "batch-not-list": {"messages": {"id": "w1"}},
            "batch-with-one-bad": {
                "messages": [
                    {"id": "w-good", "from": "+1999", "text": "valid"},
                    {"id": "w-bad", "from": "+1999", "text": 5},
                ]
            },
        }.items()
    ],
    BadRequest(
        "webhook-unsigned",
        "POST",
        WEBHOOK_PATH,
        raw({"id": "w1", "from": "+1999", "text": "hi"}),
        status=403,
    ),
    BadRequest(
        "webhook-wrong-signature",
        "POST",
        WEBHOOK_PATH,
        raw({"id": "w1", "from": "+1999", "text": "hi"}),
        headers={SIGNATURE_HEADER: signature(b"something else")},
        status=403,
    ),
    # POST /api/channels/http/status, correctly signed
    *common_cases("POST", STATUS_PATH, signed=True),
    *[
        BadRequest(f"status-{name}", "POST", STATUS_PATH, raw(body), signed=True)
        for name, body in {
            "empty-object": {},
            "bad-status": {"id": PROVIDER_ID, "status": "bogus"},
            "status-number": {"id": PROVIDER_ID, "status": 3},
            "missing-status": {"id": PROVIDER_ID},
            "missing-id": {"status": "read"},
            "id-number": {"id": 5, "status": "read"},
            "error-code-number": {"id": PROVIDER_ID, "status": "failed", "error_code": 30008},
            "empty-batch": {"statuses": []},
            "batch-with-one-bad": {
                "statuses": [
                    {"id": PROVIDER_ID, "status": "read"},
                    {"id": PROVIDER_ID, "status": "bogus"},
                ]
            },
        }.items()
    ],
    BadRequest(
        "status-unsigned",
        "POST",
        STATUS_PATH,
        raw({"id": PROVIDER_ID, "status": "failed"}),
        status=403,
    ),
    # query parameters of the list routes
    *[
        BadRequest(f"query-{path.strip('/').replace('/', '-')}-{name}", "GET", path + query)
        for path in ("/api/contacts", "/api/conversations", REPLY)
        for name, query in {
            "cursor-garbage": "?cursor=not-a-cursor!!",
            "cursor-wrong-shape": "?cursor=eyJ4IjoxfQ",
            "cursor-invalid-utf8": "?cursor=%ff%fe",
            "limit-zero": "?limit=0",
            "limit-too-big": "?limit=201",
            "limit-negative": "?limit=-5",
            "limit-word": "?limit=ten",
            "limit-superscript": "?limit=%C2%B2",
            "limit-huge": "?limit=" + "9" * 5000,
        }.items()
    ],
    BadRequest("query-conversations-bad-status", "GET", "/api/conversations?status=closed"),
    BadRequest("query-conversations-status-bytes", "GET", "/api/conversations?status=%ff"),
    BadRequest("query-contacts-huge-search", "GET", "/api/contacts?q=" + "q" * 300),
    BadRequest("query-messages-unknown-id", "GET", "/api/messages/msg_nope", status=404),
    # the outbox's controls: a sent message is neither retried nor cancelled
    BadRequest("retry-a-sent-message", "POST", "/api/messages/{message}/retry", status=409),
    BadRequest("cancel-a-sent-message", "POST", "/api/messages/{message}/cancel", status=409),
    BadRequest("retry-unknown-message", "POST", "/api/messages/msg_nope/retry", status=404),
    BadRequest("cancel-unknown-message", "POST", "/api/messages/msg_nope/cancel", status=404),
]


# the stored world every case runs against ------------------------------------------------


@attrs.frozen
class World:
    contact: str
    conversation: str
    message: str


@pytest.fixture(scope="module")
def world(server: ServerProcess, receiver: FakeProvider) -> World:
    """One customer who wrote in, and one reply the receiver accepted."""
    with server.client() as client:
        assert post_webhook(client, inbound_message(SENDER, name="Dee Fault")).status_code == 200
        conversation = client.get("/api/conversations").json()["items"][0]
        receiver.queue(ScriptedResponse.json(200, {"id": PROVIDER_ID}))
        reply = client.post(
            f"/api/conversations/{conversation['id']}/messages",
            json={"text": "reply"},
            headers=WAIT,  # sent, before any case looks at the store
        )
        assert reply.status_code == 201
        return World(conversation["contact_id"], conversation["id"], reply.json()["id"])


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def every_item(client: httpx.Client, path: str) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items


def snapshot(client: httpx.Client) -> dict[str, Any]:
    """Everything stored, as the API shows it."""
    conversations = every_item(client, "/api/conversations")
    return {
        "contacts": every_item(client, "/api/contacts"),
        "conversations": conversations,
        "messages": {
            c["id"]: every_item(client, f"/api/conversations/{c['id']}/messages")
            for c in conversations
        },
    }


def send(client: httpx.Client, case: BadRequest, world: World) -> httpx.Response:
    path = case.path.format(
        contact=world.contact, conversation=world.conversation, message=world.message
    )
    headers = dict(case.headers)
    if case.content_type:
        headers["Content-Type"] = case.content_type
    if case.signed:
        headers[SIGNATURE_HEADER] = signature(case.body or b"")
    return client.request(case.method, path, content=case.body, headers=headers)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_4xx_json_and_changes_nothing(client, receiver, world, case):
    """The malformed request is answered 4xx with {"error", "message"}; contacts,
    conversations and messages are exactly as before, and nothing is sent out."""
    before = snapshot(client)
    sent_before = len(receiver.requests)

    response = send(client, case, world)

    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if case.status is not None:
        assert response.status_code == case.status, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    assert snapshot(client) == before
    assert len(receiver.requests) == sent_before


def test_table_covers_every_write_route():
    """The table sends bad input to each write route of the core and the http channel."""
    routes = {(case.method, case.path) for case in CASES}
    for route in [
        ("PATCH", CONTACT),
        ("PATCH", CONVERSATION),
        ("POST", REPLY),
        ("POST", SEND),
        ("POST", WEBHOOK_PATH),
        ("POST", STATUS_PATH),
    ]:
        assert route in routes


def test_bad_input_leaves_no_trace_in_the_log_as_a_crash(client, server, world):
    """After the whole table, the server has logged no crashed request."""
    for case in CASES:
        send(client, case, world)
    assert "request_crashed" not in server.log()


def test_valid_request_after_bad_ones_still_works(client, receiver, world):
    """The server and store stay usable: a valid reply after the table is sent and stored."""
    response = client.post(
        f"/api/conversations/{world.conversation}/messages",
        json={"text": "still here"},
        headers={"Idempotency-Key": unique("key"), **WAIT},
    )
    assert response.status_code == 201
    stored = client.get(f"/api/messages/{response.json()['id']}").json()
    assert stored["status"] == "sent"


def test_reused_idempotency_key_for_another_address_stores_nothing(client, world):
    """An Idempotency-Key reused on the send route with a different recipient is a 409,
    and the new recipient's contact and conversation are not created."""
    key = unique("key")
    first = client.post(
        SEND, json={"to": SENDER, "text": "hi"}, headers={"Idempotency-Key": key, **WAIT}
    )
    assert first.status_code == 201
    before = snapshot(client)
    other = unique("+1888")
    response = client.post(SEND, json={"to": other, "text": "hi"}, headers={"Idempotency-Key": key})
    assert response.status_code == 409
    assert snapshot(client) == before


def test_replayed_provider_id_from_another_sender_stores_nothing(client, world):
    """A webhook reusing a stored provider message id, even under another sender, is
    acknowledged as a duplicate and creates no contact, conversation or message."""
    first = inbound_message(unique("+1777"), "original")
    assert post_webhook(client, first).status_code == 200
    before = snapshot(client)
    replay = {**first, "from": unique("+1777"), "text": "replayed"}
    assert post_webhook(client, replay).status_code == 200
    assert snapshot(client) == before

"""The inbox API through the real server: contacts, conversations, paged messages and
history, replies sent out through the conversation's channel, and idempotent replies."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from omnichannel_core.testing.fake_provider import FakeProvider, RecordedRequest, ScriptedResponse
from omnichannel_core.testing.server import ServerProcess
from tests.support.signing import (
    SIGNATURE_HEADER,
    inbound_message,
    is_signed_by,
    post_webhook,
    unique,
)
from tests.support.users import create_user


@pytest.fixture
def client(server: ServerProcess) -> httpx.Client:
    with server.client() as client:
        yield client


def write_in(client: httpx.Client, sender: str, text: str = "hello", **fields: Any) -> None:
    assert post_webhook(client, inbound_message(sender, text, **fields)).status_code == 200


def contact_of(client: httpx.Client, address: str) -> dict[str, Any]:
    items = client.get("/api/contacts", params={"q": address}).json()["items"]
    [contact] = [c for c in items if any(i["address"] == address for i in c["identities"])]
    return contact


def conversation_of(client: httpx.Client, address: str) -> dict[str, Any]:
    items = client.get("/api/conversations", params={"limit": 200}).json()["items"]
    [conversation] = [c for c in items if c["address"] == address]
    return conversation


def new_conversation(client: httpx.Client, name: str | None = None) -> dict[str, Any]:
    sender = unique("+1555")
    write_in(client, sender, **({"name": name} if name else {}))
    return conversation_of(client, sender)


def requests_for(receiver: FakeProvider, message_id: str) -> list[RecordedRequest]:
    return [r for r in receiver.requests if r.headers.get("idempotency-key") == message_id]


def all_pages(client: httpx.Client, path: str, limit: int, **params: Any) -> list[list[dict]]:
    """Every page of a list, following next_cursor to the end."""
    pages, cursor = [], None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, params=query)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "paging never ends"


# contacts --------------------------------------------------------------------------------


def test_contacts_list_uses_the_envelope(client):
    """GET /api/contacts answers {"items": [...], "next_cursor": ...}."""
    write_in(client, unique("+1555"))
    body = client.get("/api/contacts").json()
    assert set(body) == {"items", "next_cursor"}
    assert isinstance(body["items"], list) and body["items"]


def test_contacts_page_through_without_repeats(client):
    """Paging contacts with a small limit visits each contact exactly once."""
    for _ in range(4):
        write_in(client, unique("+1555"))
    everyone = client.get("/api/contacts", params={"limit": 200}).json()["items"]
    paged = [c["id"] for page in all_pages(client, "/api/contacts", 3) for c in page]
    assert paged == [c["id"] for c in everyone]
    assert len(set(paged)) == len(paged)


def test_contacts_search_by_name_word_prefix_ignores_case(client):
    """q matches the start of any word of the display name, in any case, and nothing else."""
    marker = unique("zq").replace("-", "")
    sender = unique("+1555")
    write_in(client, sender, name=f"Grace {marker.capitalize()} Hopper")
    for query in (marker[:5], marker.upper(), "grac", "HOPP"):
        items = client.get("/api/contacts", params={"q": query}).json()["items"]
        assert sender in [i["address"] for c in items for i in c["identities"]], query
    inner = marker[3:9]
    items = client.get("/api/contacts", params={"q": inner}).json()["items"]
    assert sender not in [i["address"] for c in items for i in c["identities"]]


def test_contacts_search_by_address_prefix_ignores_case(client):
    """q matches a prefix of an identity address, case-insensitively."""
    address = unique("Ops.Desk") + "@Example.test"
    write_in(client, address)
    for query in (address[:12], address[:12].lower(), address.upper()):
        items = client.get("/api/contacts", params={"q": query}).json()["items"]
        assert [c["identities"][0]["address"] for c in items] == [address], query


def test_contact_get_and_unknown_id(client):
    """GET /api/contacts/{id} returns the contact; an unknown id is a JSON 404."""
    sender = unique("+1555")
    write_in(client, sender, name="Lin")
    contact = contact_of(client, sender)
    assert client.get(f"/api/contacts/{contact['id']}").json() == contact
    missing = client.get("/api/contacts/ct_does_not_exist")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"


def test_contact_patch_changes_only_given_fields(client):
    """PATCH sets display_name, tags and attributes; fields not given are kept."""
    sender = unique("+1555")
    write_in(client, sender, name="Old Name")
    contact = contact_of(client, sender)
    path = f"/api/contacts/{contact['id']}"
    tier = {"key": "tier", "type": "number", "label": "Tier"}
    assert client.post("/api/crm/attributes", json=tier).status_code in (201, 409)

    changed = client.patch(path, json={"tags": ["vip", "beta", "vip"], "attributes": {"tier": 2}})
    assert changed.status_code == 200
    assert changed.json()["tags"] == ["vip", "beta"]
    assert changed.json()["attributes"] == {"tier": 2}
    assert changed.json()["display_name"] == "Old Name"

    renamed = client.patch(path, json={"display_name": "New Name"}).json()
    assert renamed["display_name"] == "New Name"
    assert renamed["tags"] == ["vip", "beta"]
    assert client.get(path).json() == renamed
    found = client.get("/api/contacts", params={"q": "new nam"}).json()["items"]
    assert contact["id"] in [c["id"] for c in found]


def test_contact_patch_unknown_id_is_404(client):
    """PATCH on an unknown contact is a JSON 404."""
    response = client.patch("/api/contacts/ct_nope", json={"display_name": "x"})
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "body",
    [
        {"nickname": "x"},
        {"display_name": 5},
        {"tags": "vip"},
        {"tags": [1, 2]},
        {"attributes": ["a"]},
        {},
    ],
    ids=["unknown-field", "name-int", "tags-str", "tags-ints", "attributes-list", "empty"],
)
def test_contact_patch_rejects_bad_fields_and_keeps_contact(client, body):
    """Unknown fields or wrong types are a JSON 400 and the contact is unchanged."""
    sender = unique("+1555")
    write_in(client, sender, name="Steady")
    contact = contact_of(client, sender)
    response = client.patch(f"/api/contacts/{contact['id']}", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_input"
    assert client.get(f"/api/contacts/{contact['id']}").json() == contact


# conversations ---------------------------------------------------------------------------


def test_conversation_get_and_unknown_id(client):
    """GET /api/conversations/{id} returns it; an unknown id is a JSON 404."""
    conversation = new_conversation(client)
    assert client.get(f"/api/conversations/{conversation['id']}").json() == conversation
    assert client.get("/api/conversations/cv_nope").status_code == 404


def test_conversation_patch_status_and_assignee(client):
    """PATCH changes status and assignee; the change is what GET shows afterwards."""
    conversation = new_conversation(client)
    path = f"/api/conversations/{conversation['id']}"
    agent = create_user(client, "agent")["id"]
    changed = client.patch(path, json={"status": "pending", "assignee": agent})
    assert changed.status_code == 200
    assert changed.json()["status"] == "pending"
    assert changed.json()["assignee"] == agent
    cleared = client.patch(path, json={"assignee": None}).json()
    assert cleared["assignee"] is None
    assert cleared["status"] == "pending"
    assert client.get(path).json() == cleared


def test_conversations_filtered_by_status_channel_and_assignee(client):
    """Each filter keeps only matching conversations; filters combine."""
    assignee = create_user(client, "agent")["id"]
    pending = new_conversation(client)
    resolved = new_conversation(client)
    client.patch(
        f"/api/conversations/{pending['id']}", json={"status": "pending", "assignee": assignee}
    )
    client.patch(
        f"/api/conversations/{resolved['id']}", json={"status": "resolved", "assignee": assignee}
    )

    def ids(**params: Any) -> set[str]:
        response = client.get("/api/conversations", params={"limit": 200, **params})
        assert response.status_code == 200
        items = response.json()["items"]
        for key, value in params.items():
            assert all(item[key] == value for item in items), key
        return {item["id"] for item in items}

    assert ids(assignee=assignee) == {pending["id"], resolved["id"]}
    assert ids(assignee=assignee, status="pending") == {pending["id"]}
    assert ids(assignee=assignee, status="resolved") == {resolved["id"]}
    assert ids(assignee=assignee, status="open") == set()
    assert {pending["id"], resolved["id"]} <= ids(channel="http")
    assert ids(channel="no-such-channel") == set()
    assert resolved["id"] not in ids(status="open")


def test_conversations_list_most_recent_first(client):
    """A conversation with new activity moves to the top of the list."""
    older = new_conversation(client)
    new_conversation(client)
    write_in(client, older["address"], "bump")
    first = client.get("/api/conversations", params={"limit": 1}).json()["items"][0]
    assert first["id"] == older["id"]


def test_resolved_conversation_reopens_when_customer_writes(client):
    """A resolved conversation is open again after the customer's next message."""
    conversation = new_conversation(client)
    path = f"/api/conversations/{conversation['id']}"
    assert client.patch(path, json={"status": "resolved"}).json()["status"] == "resolved"
    write_in(client, conversation["address"], "one more thing")
    reopened = client.get(path).json()
    assert reopened["status"] == "open"
    assert reopened["unread_count"] == conversation["unread_count"] + 1


def test_conversation_marked_read_with_unread_count_zero(client):
    """PATCH unread_count 0 marks a conversation read; any other count is a JSON 400."""
    conversation = new_conversation(client)
    write_in(client, conversation["address"], "are you there?")
    path = f"/api/conversations/{conversation['id']}"
    assert client.get(path).json()["unread_count"] >= 1
    for bad in (3, -1, "0", None, True):
        response = client.patch(path, json={"unread_count": bad})
        assert response.status_code == 400, bad
        assert response.json()["field"] == "unread_count"
    assert client.patch(path, json={"unread_count": 0}).json()["unread_count"] == 0
    assert client.get(path).json()["unread_count"] == 0


def test_conversation_patch_bad_status_is_400(client):
    """A status outside open/pending/resolved is a JSON 400 and changes nothing."""
    conversation = new_conversation(client)
    path = f"/api/conversations/{conversation['id']}"
    response = client.patch(path, json={"status": "closed"})
    assert response.status_code == 400
    assert response.json()["field"] == "status"
    assert client.get(path).json() == conversation


# messages --------------------------------------------------------------------------------


def test_messages_are_cursor_paged_oldest_first(client):
    """Seven messages read three at a time come back oldest first, none repeated or skipped."""
    sender = unique("+1555")
    texts = [f"message {n}" for n in range(7)]
    for text in texts:
        write_in(client, sender, text)
    conversation = conversation_of(client, sender)
    pages = all_pages(client, f"/api/conversations/{conversation['id']}/messages", 3)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [m["text"] for page in pages for m in page] == texts


def test_messages_page_of_exact_size_ends_with_null_cursor(client):
    """When the last page is full, next_cursor leads to an empty page or is null; never
    to a repeat."""
    sender = unique("+1555")
    for n in range(4):
        write_in(client, sender, f"m{n}")
    conversation = conversation_of(client, sender)
    pages = all_pages(client, f"/api/conversations/{conversation['id']}/messages", 2)
    assert [m["text"] for page in pages for m in page] == ["m0", "m1", "m2", "m3"]


@pytest.mark.parametrize("cursor", ["not-a-cursor!!", "eyJ4IjoxfQ", "W10", "%%%", "W1sxXSwyXQ"])
def test_messages_bad_cursor_is_400(client, cursor):
    """A cursor the server did not make is a JSON 400 naming the cursor."""
    conversation = new_conversation(client)
    response = client.get(
        f"/api/conversations/{conversation['id']}/messages", params={"cursor": cursor}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_input"


@pytest.mark.parametrize("limit", ["0", "201", "-1", "abc", "1.5", "²"])
def test_messages_limit_out_of_range_is_400(client, limit):
    """limit must be a whole number from 1 to 200."""
    conversation = new_conversation(client)
    response = client.get(
        f"/api/conversations/{conversation['id']}/messages", params={"limit": limit}
    )
    assert response.status_code == 400
    assert response.json()["field"] == "limit"


def test_messages_of_unknown_conversation_is_404(client):
    """Listing the messages of an unknown conversation is a JSON 404."""
    assert client.get("/api/conversations/cv_nope/messages").status_code == 404
    assert client.get("/api/messages/msg_nope").status_code == 404


# history ---------------------------------------------------------------------------------


def test_history_is_cursor_paged_oldest_first(client):
    """Seven changes of status and assignee read three at a time come back oldest first,
    none repeated or skipped, each with who made it; the last page's cursor is null, and a
    page of exactly the rest ends the list too."""
    conversation = new_conversation(client)
    path = f"/api/conversations/{conversation['id']}"
    agent = create_user(client, "agent")["id"]
    bodies = [
        {"assignee": agent},
        {"status": "pending"},
        {"status": "open"},
        {"status": "resolved"},
        {"assignee": None},
        {"status": "open"},
        {"status": "pending"},
    ]
    for body in bodies:
        assert client.patch(path, json=body).status_code == 200
    pages = all_pages(client, f"{path}/history", 3)
    assert [len(page) for page in pages] == [3, 3, 1]
    changes = [change for page in pages for change in page]
    assert [(c["status"], c["assignee"]) for c in changes] == [
        ("open", agent),
        ("pending", agent),
        ("open", agent),
        ("resolved", agent),
        ("resolved", None),
        ("open", None),
        ("pending", None),
    ]
    assert len({c["id"] for c in changes}) == 7
    assert all(c["by"]["kind"] == "api_key" for c in changes)
    assert [c["at"] for c in changes] == sorted(c["at"] for c in changes)
    assert all_pages(client, f"{path}/history", 7) == [changes]  # full: no empty page after
    whole = client.get(f"{path}/history").json()  # the default page holds them all
    assert (whole["items"], whole["next_cursor"]) == (changes, None)


@pytest.mark.parametrize("cursor", ["not-a-cursor!!", "eyJ4IjoxfQ", "W10", "%%%", "W1sxXSwyXQ"])
def test_history_bad_cursor_is_400(client, cursor):
    """A cursor the server did not make is a JSON 400 naming the cursor."""
    conversation = new_conversation(client)
    response = client.get(
        f"/api/conversations/{conversation['id']}/history", params={"cursor": cursor}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_input"
    assert response.json()["parameter"] == "cursor"


def test_history_refuses_a_cursor_of_the_messages(client):
    """A real cursor of the conversation's messages is no position in its history: 400."""
    sender = unique("+1555")
    write_in(client, sender, "one")
    write_in(client, sender, "two")
    path = f"/api/conversations/{conversation_of(client, sender)['id']}"
    cursor = client.get(f"{path}/messages", params={"limit": 1}).json()["next_cursor"]
    assert cursor is not None
    response = client.get(f"{path}/history", params={"cursor": cursor})
    assert response.status_code == 400
    assert response.json()["parameter"] == "cursor"


@pytest.mark.parametrize("limit", ["0", "201", "abc"])
def test_history_limit_out_of_range_is_400(client, limit):
    """limit must be a whole number from 1 to 200, as on every list."""
    conversation = new_conversation(client)
    response = client.get(
        f"/api/conversations/{conversation['id']}/history", params={"limit": limit}
    )
    assert response.status_code == 400
    assert response.json()["field"] == "limit"


def test_history_of_unknown_conversation_is_404(client):
    """The history of an unknown conversation is a JSON 404."""
    assert client.get("/api/conversations/cv_nope/history").status_code == 404


# replies ---------------------------------------------------------------------------------


def test_reply_is_sent_through_the_conversation_channel(client, receiver):
    """A reply goes to the receiver signed, keyed by message id, with to/text/media; it is
    stored sent with the receiver's id, and GET /api/messages/{id} shows it."""
    conversation = new_conversation(client)
    remote_id = unique("remote")
    receiver.queue(ScriptedResponse.json(200, {"id": remote_id}))
    media = [{"url": "https://cdn.example.test/receipt.pdf", "content_type": "application/pdf"}]
    response = client.post(
        f"/api/conversations/{conversation['id']}/messages",
        json={"text": "Here is your receipt", "media": media},
        headers={"Prefer": "wait=10"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["Preference-Applied"] == "wait=10"
    message = response.json()
    assert message["status"] == "sent"
    assert message["provider_message_id"] == remote_id
    assert message["direction"] == "outbound"
    assert message["conversation_id"] == conversation["id"]

    [request] = requests_for(receiver, message["id"])
    assert is_signed_by(request.body, request.headers.get(SIGNATURE_HEADER.lower()))
    sent = request.json()
    assert sent["to"] == conversation["address"]
    assert sent["text"] == "Here is your receipt"
    assert sent["media"] == [{**media[0], "filename": None}]
    assert sent["conversation_id"] == conversation["id"]

    assert client.get(f"/api/messages/{message['id']}").json() == message
    listed = client.get(f"/api/conversations/{conversation['id']}/messages").json()["items"]
    assert [m["direction"] for m in listed] == ["inbound", "outbound"]


def test_reply_with_same_idempotency_key_sends_once(client, receiver):
    """The same Idempotency-Key twice: one request to the receiver, 201 (waiting for the
    send) then 200 (the replay is never queued again, nor waited for), same message."""
    conversation = new_conversation(client)
    path = f"/api/conversations/{conversation['id']}/messages"
    headers = {"Idempotency-Key": unique("key"), "Prefer": "wait=10"}
    first = client.post(path, json={"text": "exactly once"}, headers=headers)
    second = client.post(path, json={"text": "exactly once"}, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200), first.text
    assert second.json() == first.json()
    assert len(requests_for(receiver, first.json()["id"])) == 1
    listed = client.get(path).json()["items"]
    assert [m["id"] for m in listed if m["direction"] == "outbound"] == [first.json()["id"]]


def test_idempotency_key_with_a_different_body_is_409(client, receiver):
    """Reusing an Idempotency-Key for another text is a 409 and sends nothing more."""
    conversation = new_conversation(client)
    path = f"/api/conversations/{conversation['id']}/messages"
    headers = {"Idempotency-Key": unique("key")}
    first = client.post(path, json={"text": "original"}, headers={**headers, "Prefer": "wait=10"})
    assert first.status_code == 201, first.text  # sent: nothing of it is still to come
    before = len(receiver.requests)
    conflict = client.post(path, json={"text": "changed"}, headers=headers)
    assert conflict.status_code == 409
    assert conflict.json()["error"] == "conflict"
    assert conflict.json()["message_id"] == first.json()["id"]
    assert len(receiver.requests) == before
    assert len(client.get(path).json()["items"]) == 2


def test_idempotency_key_in_another_conversation_is_409(client):
    """An Idempotency-Key already used in one conversation cannot send in another."""
    one, other = new_conversation(client), new_conversation(client)
    headers = {"Idempotency-Key": unique("key")}
    body = {"text": "same text"}
    assert (
        client.post(
            f"/api/conversations/{one['id']}/messages", json=body, headers=headers
        ).status_code
        == 202
    )
    response = client.post(f"/api/conversations/{other['id']}/messages", json=body, headers=headers)
    assert response.status_code == 409
    assert len(client.get(f"/api/conversations/{other['id']}/messages").json()["items"]) == 1


def test_reply_to_unknown_conversation_is_404_and_sends_nothing(client, receiver):
    """A reply to an unknown conversation is a JSON 404, is not stored, and reaches no
    receiver (looked for by its own text: other tests' queued sends may arrive meanwhile)."""
    text = unique("never-sent")
    response = client.post("/api/conversations/cv_nope/messages", json={"text": text})
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert not any(text.encode() in request.body for request in receiver.requests)


def test_inbox_api_needs_the_api_key(server):
    """Every inbox route answers 401 without the bearer key, and with a wrong one."""
    for key in (None, "wrong-key"):
        with server.client(api_key=key) as anonymous:
            for method, path in [
                ("GET", "/api/contacts"),
                ("GET", "/api/conversations"),
                ("PATCH", "/api/contacts/x"),
                ("POST", "/api/conversations/x/messages"),
                ("GET", "/api/messages/x"),
            ]:
                response = anonymous.request(method, path, json={})
                assert response.status_code == 401, (key, method, path)
                assert response.json()["error"] == "unauthenticated"


def test_an_idempotency_key_used_in_another_conversation_names_no_message(client, receiver):
    """The same Idempotency-Key reused in another conversation is a 409 that does not name
    the other conversation's message (it may be none of the caller's)."""
    headers = {"Idempotency-Key": unique("key")}
    first_path = f"/api/conversations/{new_conversation(client)['id']}/messages"
    other_path = f"/api/conversations/{new_conversation(client)['id']}/messages"
    assert client.post(first_path, json={"text": "one"}, headers=headers).status_code == 202
    conflict = client.post(other_path, json={"text": "one"}, headers=headers)
    assert conflict.status_code == 409
    assert "message_id" not in conflict.json()

"""``GET /api/events`` through the real server: what happens reaches a stream opened on
any worker, filtered by what the caller may see, and a reconnect resumes without gaps."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from omnichannel_core.web.events_routes import RECHECK_SECONDS
from tests.conftest import WEBHOOK_SECRET
from tests.support.server import API_KEY, ServerProcess, running_server
from tests.support.signing import inbound_message, post_webhook, unique
from tests.support.sse import open_stream
from tests.support.users import create_user, logged_in, login


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"WEBHOOK_SECRET": WEBHOOK_SECRET, "OMNICHANNEL_EVENT_POLL_MS": "100"}
    with running_server(tmp_path_factory.mktemp("events"), env, workers=2) as process:
        yield process


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def send_inbound(admin: httpx.Client, sender: str, text: str) -> dict[str, Any]:
    """Post a webhook and return the stored message (read back through the API)."""
    assert post_webhook(admin, inbound_message(sender, text)).status_code == 200
    conversations = admin.get("/api/conversations", params={"limit": 200}).json()["items"]
    [conversation] = [c for c in conversations if c["address"] == sender]
    messages = admin.get(f"/api/conversations/{conversation['id']}/messages").json()["items"]
    return next(m for m in reversed(messages) if m["text"] == text)


def test_a_webhook_reaches_an_open_stream_as_a_message_created_event(server, admin):
    """The stream says it is ready, then a webhook (into any worker) arrives as
    message.created with the message as stored, its conversation and the event's id."""
    with open_stream(server.base_url, API_KEY) as (response, stream):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert stream.next().event == "ready"
        sender = unique("+1555")
        message = send_inbound(admin, sender, "hello stream")
        event = stream.next_of("message.created")
    assert event.data["message"] == message
    assert event.data["conversation_id"] == message["conversation_id"]
    assert event.data["type"] == "message.created" and event.id


def test_a_reconnect_with_last_event_id_gets_exactly_what_it_missed(server, admin):
    """Events that happened while a client was away come, in order, when it reconnects
    with the last id it got; nothing twice, nothing missing."""
    sender = unique("+1555")
    with open_stream(server.base_url, API_KEY) as (_, stream):
        stream.next_of("ready")
        send_inbound(admin, sender, "before")
        last = stream.next_of("message.created")
    missed = [send_inbound(admin, sender, f"while away {n}")["id"] for n in range(3)]
    with open_stream(server.base_url, API_KEY, last_event_id=last.id) as (response, stream):
        assert response.status_code == 200
        stream.next_of("ready")
        got = [stream.next_of("message.created").data["message"]["id"] for _ in missed]
    assert got == missed


def test_an_agent_is_told_only_of_their_own_and_unassigned_conversations(server, admin):
    """An agent's stream skips a message in a conversation assigned to someone else and
    gets the next one, in an unassigned conversation; a supervisor gets both."""
    other = create_user(admin, "agent")
    agent, _ = logged_in(server, admin, "agent")
    supervisor = create_user(admin, "supervisor")
    theirs = unique("+1555")
    first = send_inbound(admin, theirs, "first")
    assert (
        admin.patch(
            f"/api/conversations/{first['conversation_id']}", json={"assignee": other["id"]}
        ).status_code
        == 200
    )
    agent_token = login(server, agent["email"])["access_token"]
    supervisor_token = login(server, supervisor["email"])["access_token"]
    with (
        open_stream(server.base_url, agent_token) as (_, agent_stream),
        open_stream(server.base_url, supervisor_token) as (_, supervisor_stream),
    ):
        agent_stream.next_of("ready")
        supervisor_stream.next_of("ready")
        hidden = send_inbound(admin, theirs, "not for the agent")
        shown = send_inbound(admin, unique("+1555"), "for everyone")
        seen_by_agent = agent_stream.next_of("message.created")
        seen_by_supervisor = [
            supervisor_stream.next_of("message.created").data["message"]["id"] for _ in range(2)
        ]
    assert seen_by_agent.data["message"]["id"] == shown["id"]
    assert seen_by_supervisor == [hidden["id"], shown["id"]]


def test_a_replay_shows_an_agent_only_what_is_theirs_or_nobodys_now(server, admin):
    """A new agent replaying from an old cursor is not told of messages in a conversation
    that was unassigned when they arrived but is now another agent's (the REST API would
    refuse it); the admin replaying from the same cursor gets them."""
    with open_stream(server.base_url, API_KEY) as (_, stream):
        stream.next_of("ready")
        send_inbound(admin, unique("+1555"), "before the replay starts")
        start = stream.next_message("before the replay starts").id
        taken = send_inbound(admin, unique("+1555"), "taken later")
    other = create_user(admin, "agent")
    path = f"/api/conversations/{taken['conversation_id']}"
    assert admin.patch(path, json={"assignee": other["id"]}).status_code == 200
    marker = send_inbound(admin, unique("+1555"), "still nobody's")
    newcomer, _ = logged_in(server, admin, "agent")
    token = login(server, newcomer["email"])["access_token"]
    with open_stream(server.base_url, token, last_event_id=start) as (response, stream):
        assert response.status_code == 200
        stream.next_of("ready")
        seen = stream.next_message("taken later", "still nobody's")
    assert seen.data["message"]["id"] == marker["id"]  # "taken later" was skipped
    with open_stream(server.base_url, API_KEY, last_event_id=start) as (_, stream):
        stream.next_of("ready")
        assert stream.next_message("taken later", "still nobody's").data["message"] == taken


def test_an_agent_whose_conversation_is_given_away_is_told_only_that(server, admin):
    """When an agent's conversation is reassigned, their stream gets conversation.updated
    with only its id, status and new assignee, and no later message of it."""
    agent, _ = logged_in(server, admin, "agent")
    other = create_user(admin, "agent")
    sender = unique("+1555")
    message = send_inbound(admin, sender, "mine for now")
    path = f"/api/conversations/{message['conversation_id']}"
    assert admin.patch(path, json={"assignee": agent["id"]}).status_code == 200
    token = login(server, agent["email"])["access_token"]
    with open_stream(server.base_url, token) as (_, stream):
        stream.next_of("ready")
        assert admin.patch(path, json={"assignee": other["id"]}).status_code == 200
        withdrawn = stream.next_of("conversation.updated")
        send_inbound(admin, sender, "now the other agent's")
        marker = send_inbound(admin, unique("+1555"), "nobody's")
        seen = stream.next_message("now the other agent's", "nobody's")
    assert withdrawn.data["conversation"] == {
        "id": message["conversation_id"],
        "status": "open",
        "assignee": other["id"],
    }
    assert seen.data["message"]["id"] == marker["id"]


def test_a_revoked_key_gets_no_further_event(server, admin):
    """Once a key is revoked, the next event does not reach its open stream: the stream
    checks the key before sending (when its last check is RECHECK_SECONDS old) and ends."""
    created = admin.post("/api/api-keys", json={"name": "screen", "scopes": ["read"]}).json()
    with open_stream(server.base_url, created["key"]) as (response, stream):
        assert response.status_code == 200
        stream.next_of("ready")
        assert admin.delete(f"/api/api-keys/{created['id']}").status_code == 200
        time.sleep(RECHECK_SECONDS + 0.5)  # past the stream's last check
        send_inbound(admin, unique("+1555"), "after the revocation")
        ended = stream.next_of("ended", "message.created")
    assert ended.event == "ended"
    assert "revoked" in ended.data["message"]


def test_assignment_and_contact_changes_are_streamed(server, admin):
    """Assigning a conversation streams conversation.updated with the conversation as it
    now is; changing a contact streams contact.updated."""
    message = send_inbound(admin, unique("+1555"), "assign me")
    user = create_user(admin, "agent")
    with open_stream(server.base_url, API_KEY) as (_, stream):
        stream.next_of("ready")
        path = f"/api/conversations/{message['conversation_id']}"
        assert admin.patch(path, json={"assignee": user["id"]}).status_code == 200
        updated = stream.next_of("conversation.updated")
        contact_path = f"/api/contacts/{message['contact_id']}"
        assert admin.patch(contact_path, json={"tags": ["vip"]}).status_code == 200
        contact = stream.next_of("contact.updated")
    assert updated.data["conversation"]["assignee"] == user["id"]
    assert contact.data["contact"]["tags"] == ["vip"]
    assert contact.data["conversation_id"] is None


@pytest.mark.parametrize(
    ("token", "cursor", "status", "error"),
    [
        (None, None, 401, "unauthenticated"),
        ("not-a-key", None, 401, "unauthenticated"),
        (API_KEY, "not-a-cursor", 400, "invalid_input"),
        (API_KEY, "9" * 300, 400, "invalid_input"),
    ],
)
def test_a_stream_that_cannot_open_says_why_in_json(server, token, cursor, status, error):
    """No credentials, a bad one, or a Last-Event-ID this server never gave: a JSON error,
    before any stream starts."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if cursor is not None:
        headers["Last-Event-ID"] = cursor
    response = httpx.get(f"{server.base_url}/api/events", headers=headers, timeout=10)
    assert response.status_code == status
    assert response.json()["error"] == error


def test_a_key_without_conversations_read_may_not_open_a_stream(server, admin):
    """A send-only key gets 403 naming conversations:read."""
    key = admin.post("/api/api-keys", json={"name": "sender", "scopes": ["send"]}).json()["key"]
    response = httpx.get(
        f"{server.base_url}/api/events", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert response.status_code == 403
    assert response.json()["permission"] == "conversations:read"


def test_streams_on_a_fresh_server_start_from_an_empty_log(tmp_path):
    """On a server with no events yet, a stream opens and gets the first one."""
    env = {"WEBHOOK_SECRET": WEBHOOK_SECRET}
    with (
        running_server(tmp_path, env) as server,
        server.client() as admin,
        open_stream(server.base_url, API_KEY) as (_, stream),
    ):
        assert stream.next().data == {"after": None}
        message = send_inbound(admin, unique("+1555"), "first ever")
        assert stream.next_of("message.created").data["message"]["id"] == message["id"]

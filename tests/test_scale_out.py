"""Two servers on different ports sharing one Firestore (the official emulator) and one
Pub/Sub topic (its emulator): one inbox, whichever server a request reaches, and every
change streamed to agents connected to either."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnichannel_core.testing.emulators import Emulator
from omnichannel_core.testing.server import API_KEY, ServerProcess, running_server
from tests.conftest import WEBHOOK_SECRET
from tests.support.signing import inbound_message, post_webhook, unique
from tests.support.sse import open_stream
from tests.support.users import create_user, login

JWT_SECRET = "scale-out-jwt-secret-0123456789abcdefghijklmnop"


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
    firestore_emulator: Emulator,
    pubsub_emulator: Emulator,
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    project = f"demo-scale-{uuid.uuid4().hex[:10]}"
    env = {
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "OMNICHANNEL_STORE": f"firestore://{project}",
        "FIRESTORE_EMULATOR_HOST": firestore_emulator.host_port,
        "OMNICHANNEL_EVENT_BUS": f"pubsub://{project}/events",
        "PUBSUB_EMULATOR_HOST": pubsub_emulator.host_port,
        "OMNICHANNEL_JWT_SECRET": JWT_SECRET,  # one secret for every server of the inbox
    }
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(running_server(_workdir(tmp_path_factory, "a"), env))
        second = stack.enter_context(running_server(_workdir(tmp_path_factory, "b"), env))
        yield first, second


def _workdir(factory: pytest.TempPathFactory, name: str) -> Path:
    return factory.mktemp(f"server-{name}")


def test_a_webhook_into_one_server_is_read_through_the_other(servers):
    """The message a provider posts to server A is in the inbox server B serves."""
    first, second = servers
    sender = unique("+1555")
    with first.client() as a:
        assert post_webhook(a, inbound_message(sender, "hello from A")).status_code == 200
    with second.client() as b:
        conversations = b.get("/api/conversations", params={"limit": 200}).json()["items"]
        [conversation] = [c for c in conversations if c["address"] == sender]
        [message] = b.get(f"/api/conversations/{conversation['id']}/messages").json()["items"]
    assert message["text"] == "hello from A"


def test_its_event_reaches_a_stream_opened_on_the_other_server(servers):
    """An agent's stream on server B gets message.created for a webhook posted to server A,
    carried by Pub/Sub, with the message as stored."""
    first, second = servers
    with second.client() as b:
        agent = create_user(b, "agent")
    token = login(first, agent["email"])["access_token"]  # a session from A works on B
    sender = unique("+1555")
    with open_stream(second.base_url, token, read_timeout=15) as (response, stream):
        assert response.status_code == 200
        stream.next_of("ready")
        with first.client() as a:
            assert post_webhook(a, inbound_message(sender, "streamed")).status_code == 200
        event = stream.next_of("message.created")
    assert event.data["message"]["text"] == "streamed"


def test_a_reconnect_to_the_other_server_resumes_without_gaps(servers):
    """A client that got an event from server A and reconnects to server B with its
    Last-Event-ID gets exactly what happened meanwhile: one log, whichever server."""
    first, second = servers
    sender = unique("+1555")
    with open_stream(first.base_url, API_KEY, read_timeout=15) as (_, stream):
        stream.next_of("ready")
        with first.client() as a:
            post_webhook(a, inbound_message(sender, "before"))
        last = stream.next_of("message.created")
    with second.client() as b:
        for n in range(3):
            assert post_webhook(b, inbound_message(sender, f"meanwhile {n}")).status_code == 200
    with open_stream(second.base_url, API_KEY, last_event_id=last.id, read_timeout=15) as (
        _,
        stream,
    ):
        stream.next_of("ready")
        texts = [stream.next_of("message.created").data["message"]["text"] for _ in range(3)]
    assert texts == ["meanwhile 0", "meanwhile 1", "meanwhile 2"]


def _messages_in_the_inbox(server: ServerProcess) -> int:
    with server.client() as client:
        conversations = client.get("/api/conversations", params={"limit": 200}).json()["items"]
        return sum(
            len(client.get(f"/api/conversations/{c['id']}/messages").json()["items"])
            for c in conversations
        )


def test_a_stream_from_after_0_replays_the_log_from_its_oldest_event(servers):
    """On Firestore too, ``?after=0`` replays the event log from the oldest event it keeps:
    a stream opened on server B after messages were posted to server A gets a
    message.created for every message of the inbox, in order, then what follows."""
    first, second = servers
    sender = unique("+1555")
    with first.client() as a:
        for text in ("replayed 1", "replayed 2"):
            assert post_webhook(a, inbound_message(sender, text)).status_code == 200
    stored = _messages_in_the_inbox(second)
    with open_stream(second.base_url, API_KEY, read_timeout=15, after="0") as (response, stream):
        assert response.status_code == 200
        assert stream.next().data == {"after": None}
        texts = [stream.next_of("message.created").data["message"]["text"] for _ in range(stored)]
        with first.client() as a:
            assert post_webhook(a, inbound_message(sender, "live")).status_code == 200
        assert stream.next_of("message.created").data["message"]["text"] == "live"
    assert texts[-2:] == ["replayed 1", "replayed 2"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/messages/__x__"),
        ("GET", "/api/messages/a%2Fb"),
        ("GET", "/api/messages/%2E%2E"),
        ("GET", "/api/messages/__x__/media/0"),
        ("POST", "/api/messages/__x__/retry"),
        ("POST", "/api/messages/__x__/cancel"),
        ("GET", "/api/contacts/__x__"),
        ("PATCH", "/api/contacts/a%2Fb"),
        ("GET", "/api/conversations/__x__"),
        ("PATCH", "/api/conversations/__x__"),
        ("GET", "/api/conversations/a%2Fb/messages"),
        ("POST", "/api/conversations/__x__/typing"),
        ("GET", "/api/users/__x__"),
        ("GET", "/api/api-keys/" + "k" * 1500),
        ("GET", "/api/media/__x__"),
    ],
)
def test_an_id_no_document_can_have_is_not_found(servers, method, path):
    """On Firestore an id from the URL that no document can have (a reserved name, ``..``,
    too long for a query) answers 404 like any unknown id, not 500; an escaped slash is
    taken as a slash, so matches no route (the stores' contract has ``a/b`` itself)."""
    first, _ = servers
    body = {"tags": []} if "contacts" in path else {"status": "pending"}
    with first.client() as client:
        response = client.request(method, path, json=body if method == "PATCH" else None)
    assert response.status_code == 404, response.text

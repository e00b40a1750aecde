"""``GET /api/events`` through the real server: what happens reaches a stream opened on
any worker, filtered by what the caller may see, and a reconnect resumes without gaps. The
last tests run in-process, where a module setting can be changed or the store watched."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from falcon import testing
from falcon.asgi import SSEvent

from omnichannel_core.bus.bus import PollingBus
from omnichannel_core.bus.news import News
from omnichannel_core.events.records import Event
from omnichannel_core.hooktypes import InboundMessage
from omnichannel_core.modules.access.tokens import TokenSigner
from omnichannel_core.modules.events import stream as events_routes
from omnichannel_core.modules.events.hub import EventHub
from omnichannel_core.modules.inbox.events import event_types
from omnichannel_core.modules.inbox.reader import StoreReader
from omnichannel_core.plugins.context import EventReader
from omnichannel_core.policy import Principal
from omnichannel_core.store.protocols import EventLog
from omnichannel_core.store.sqlite.database import SqliteDatabase
from omnichannel_core.testing.in_process import AUTH, run_app
from omnichannel_core.testing.server import API_KEY, ServerProcess, running_server
from tests.conftest import WEBHOOK_SECRET
from tests.support.signing import (
    SIGNATURE_HEADER,
    WEBHOOK_PATH,
    encode,
    inbound_message,
    post_webhook,
    signature,
    unique,
)
from tests.support.sse import EventStream, ServerEvent, SimulatedStream, open_stream
from tests.support.stores import open_stores
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


def next_update(stream: EventStream, assignee: str) -> ServerEvent:
    """The next conversation.updated showing the conversation assigned to ``assignee``,
    skipping earlier ones (a stream may start a little before the test's own events)."""
    while True:
        event = stream.next_of("conversation.updated")
        if event.data["conversation"]["assignee"] == assignee:
            return event


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
    with only its id, status and new assignee, and no later message of it; the admin's
    stream gets the whole conversation and the message."""
    agent, _ = logged_in(server, admin, "agent")
    other = create_user(admin, "agent")
    sender = unique("+1555")
    message = send_inbound(admin, sender, "mine for now")
    path = f"/api/conversations/{message['conversation_id']}"
    assert admin.patch(path, json={"assignee": agent["id"]}).status_code == 200
    token = login(server, agent["email"])["access_token"]
    with (
        open_stream(server.base_url, token) as (_, stream),
        open_stream(server.base_url, API_KEY) as (_, admin_stream),
    ):
        stream.next_of("ready")
        admin_stream.next_of("ready")
        assert admin.patch(path, json={"assignee": other["id"]}).status_code == 200
        withdrawn = next_update(stream, other["id"])
        later = send_inbound(admin, sender, "now the other agent's")
        marker = send_inbound(admin, unique("+1555"), "nobody's")
        seen = stream.next_message("now the other agent's", "nobody's")
        admin_updated = next_update(admin_stream, other["id"])
        admin_seen = admin_stream.next_message("now the other agent's", "nobody's")
    assert withdrawn.data["conversation"] == {
        "id": message["conversation_id"],
        "status": "open",
        "assignee": other["id"],
    }
    assert seen.data["message"]["id"] == marker["id"]
    conversation = admin.get(path).json()
    assert admin_updated.data["conversation"].keys() == conversation.keys()
    assert admin_updated.data["conversation"]["assignee"] == other["id"]
    assert admin_seen.data["message"]["id"] == later["id"]


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


def test_after_0_replays_the_kept_log_from_its_oldest_event(tmp_path):
    """``?after=0`` and ``Last-Event-ID: 0`` (refused with 400 before) replay every event
    the log keeps, oldest first, then go on with what happens next; ``ready`` says the
    stream starts before the oldest event (null)."""
    env = {"WEBHOOK_SECRET": WEBHOOK_SECRET}
    with running_server(tmp_path, env) as server, server.client() as admin:
        sender = unique("+1555")
        kept = [send_inbound(admin, sender, f"kept {n}")["id"] for n in range(3)]
        for way in ({"after": "0"}, {"last_event_id": "0"}):
            with open_stream(server.base_url, API_KEY, **way) as (response, stream):
                assert response.status_code == 200, response.read()
                assert stream.next() == ServerEvent("ready", None, {"after": None})
                replayed = [stream.next_of("message.created") for _ in kept]
                assert [event.data["message"]["id"] for event in replayed] == kept
                assert [event.id for event in replayed] == ["1", "2", "3"]  # the oldest first
                text = f"after the replay from {way}"
                later = send_inbound(admin, sender, text)
                assert stream.next_message(text).data["message"] == later


def test_the_stream_is_written_as_the_events_doc_shows(tmp_path):
    """The wire format docs/events.md shows: ``event: ready``, ``retry: 2000`` and ``data:
    {"after": ...}``; then each event as ``event:``, ``id:`` and one ``data:`` line, in
    that order, each block ended by a blank line."""
    env = {"WEBHOOK_SECRET": WEBHOOK_SECRET}
    with running_server(tmp_path, env) as server, server.client() as admin:
        send_inbound(admin, unique("+1555"), "before")
        headers = {"Authorization": f"Bearer {API_KEY}"}
        with httpx.stream(
            "GET", f"{server.base_url}/api/events", headers=headers, timeout=10
        ) as response:
            lines = response.iter_lines()
            ready = [next(lines) for _ in range(4)]
            send_inbound(admin, unique("+1555"), "streamed")
            event = [next(lines) for _ in range(4)]
    assert ready == ["event: ready", "retry: 2000", 'data: {"after": "1"}', ""]
    assert event[:2] == ["event: message.created", "id: 2"]
    assert event[2].startswith('data: {"type": "message.created", "at": "')
    assert '"conversation_id": "cv_' in event[2] and '"message": {"id": "msg_' in event[2]
    assert event[3] == ""


def test_a_revoked_key_gets_no_further_event(tmp_path, monkeypatch):
    """Once a key is revoked, the next event does not reach its open stream: the stream
    checks the key before sending and ends with ``ended`` (in-process, with the check due
    at every event rather than RECHECK_SECONDS after the last)."""
    monkeypatch.setattr(events_routes, "RECHECK_SECONDS", 0.0)

    async def post_inbound(conductor: testing.ASGIConductor, text: str) -> None:
        body = encode(inbound_message(unique("+1555"), text))
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(body)}
        assert (
            await conductor.simulate_post(WEBHOOK_PATH, body=body, headers=headers)
        ).status_code == 200

    async def scenario(conductor: testing.ASGIConductor) -> None:
        key = {"name": "screen", "scopes": ["read"]}
        created = (await conductor.simulate_post("/api/api-keys", json=key, headers=AUTH)).json
        headers = {"Authorization": f"Bearer {created['key']}"}
        async with conductor.simulate_get_stream("/api/events", headers=headers) as result:
            stream = SimulatedStream(result)
            await stream.until("ready")
            await post_inbound(conductor, "before the revocation")
            await stream.until("message.created")
            revoked = await conductor.simulate_delete(
                f"/api/api-keys/{created['id']}", headers=AUTH
            )
            assert revoked.status_code == 200
            await post_inbound(conductor, "after the revocation")
            sent = await stream.until("ended")
        assert sent == ["ready", "message.created", "ended"]
        assert b"revoked" in stream.body.split(b"event: ended")[1]

    run_app(tmp_path, {}, scenario, environ={"WEBHOOK_SECRET": WEBHOOK_SECRET})


JWT_SECRET = "events-test-jwt-secret-0123456789abcdef"


def test_an_expired_access_token_gets_no_further_event(tmp_path, monkeypatch):
    """A stream opened with an access token ends when the token expires: the next event
    finds it expired, and the stream sends ``ended`` saying so (and to refresh) instead
    (in-process, with the check due at every event rather than RECHECK_SECONDS after the
    last, and a token that lives one second)."""
    monkeypatch.setattr(events_routes, "RECHECK_SECONDS", 0.0)

    async def short_lived_token(conductor: testing.ASGIConductor) -> str:
        user = {"email": "ada@example.com", "display_name": "Ada", "role": "agent"}
        password = "a-long-enough-password"
        created = await conductor.simulate_post(
            "/api/users", json={**user, "password": password}, headers=AUTH
        )
        assert created.status_code == 201, created.text
        credentials = {"email": user["email"], "password": password}
        session = (await conductor.simulate_post("/api/auth/login", json=credentials)).json
        claims = TokenSigner(JWT_SECRET, timedelta(minutes=15)).check(session["access_token"])
        signer = TokenSigner(JWT_SECRET, timedelta(seconds=1))
        return signer.issue(claims.user_id, claims.session_id)

    async def scenario(conductor: testing.ASGIConductor) -> None:
        headers = {"Authorization": f"Bearer {await short_lived_token(conductor)}"}
        async with conductor.simulate_get_stream("/api/events", headers=headers) as result:
            stream = SimulatedStream(result)
            await stream.until("ready")
            await asyncio.sleep(2.1)  # the token has expired
            body = encode(inbound_message(unique("+1555"), "after the expiry"))
            signed = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(body)}
            webhook = await conductor.simulate_post(WEBHOOK_PATH, body=body, headers=signed)
            assert webhook.status_code == 200
            sent = await stream.until("ended")
        assert sent == ["ready", "ended"]
        assert b"the access token has expired" in stream.body.split(b"event: ended")[1]

    run_app(
        tmp_path, {}, scenario, environ={"WEBHOOK_SECRET": WEBHOOK_SECRET}, jwt_secret=JWT_SECRET
    )


class CountingLog:
    """The real event log, counting its reads."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.log_reads = 0

    async def after(self, cursor: str | None, limit: int) -> list[Event]:
        self.log_reads += 1
        return await self.log.after(cursor, limit)

    async def latest(self) -> str | None:
        return await self.log.latest()


def test_the_hub_reads_nothing_while_no_stream_is_open(tmp_path):
    """After the last stream closes, the hub stops reading the log, even as events are
    logged; a stream opened later gets what happens next, and one resuming from before the
    idle time gets everything since."""

    async def scenario() -> None:
        stores = await open_stores(SqliteDatabase(tmp_path / "store.db"))
        store = stores.inbox
        counting = CountingLog(stores.events)
        bus = PollingBus(interval=0.01)
        await bus.start()
        news = News(bus)
        types = {kind.name: kind for kind in event_types(store)}
        hub = EventHub(EventReader(counting), news, types, StoreReader(store))  # type: ignore[arg-type]
        route = events_routes.Events(hub)
        permissions = frozenset({"conversations:read", "contacts:read"})
        principal = Principal("api_key", "key", "reader", permissions)

        async def same_principal() -> Principal:
            return principal

        async def open_stream_after(cursor: str | None) -> AsyncGenerator[SSEvent]:
            await hub.ensure_running()  # as GET /api/events does
            start = await hub.head() if cursor is None else cursor
            stream = route.stream(principal, same_principal, start)
            assert (await anext(stream)).event == "ready"
            return stream

        async def ingest(text: str) -> None:
            await store.ingest_inbound("sms", InboundMessage(unique("in"), "+1555", text))

        async def texts(stream: AsyncGenerator[SSEvent], count: int) -> list[str]:
            return [(await anext(stream)).json["message"]["text"] for _ in range(count)]

        async def until(condition: Callable[[], bool]) -> None:
            async with asyncio.timeout(10):
                while not condition():
                    await asyncio.sleep(0.01)

        try:
            first = await open_stream_after(None)
            await ingest("while open")
            delivered = await anext(first)
            await until(lambda: hub.reading)
            await first.aclose()
            await until(lambda: not hub.reading)
            reads = counting.log_reads
            await ingest("while nobody listens")
            await asyncio.sleep(0.3)  # thirty bus intervals
            assert counting.log_reads == reads

            second = await open_stream_after(None)
            await until(lambda: hub.reading)
            await ingest("after reopening")
            assert await texts(second, 1) == ["after reopening"]
            resumed = await open_stream_after(delivered.event_id)
            assert await texts(resumed, 2) == ["while nobody listens", "after reopening"]
            await second.aclose()
            await resumed.aclose()
        finally:
            await hub.close()
            await news.close()
            await bus.close()
            await stores.close()

    asyncio.run(scenario())


@pytest.mark.alone  # keepalives on time, within 0.15 s
@pytest.mark.parametrize(("keepalive", "every"), [(0.2, 0.02), (1.0, 0.7)])
def test_a_stream_told_nothing_of_a_busy_log_still_sends_keepalives(
    tmp_path, monkeypatch, keepalive, every
):
    """Events none of which the reader may see still let keepalives through, on time, so a
    client that left is noticed (Falcon learns it only when the stream sends) even in a busy
    inbox: whether they come faster than the keepalive, or a little slower than half of it
    (each wake must not start the wait for the keepalive again)."""
    monkeypatch.setattr(events_routes, "KEEPALIVE_SECONDS", keepalive)

    async def scenario() -> list[float]:
        stores = await open_stores(SqliteDatabase(tmp_path / "store.db"))
        store = stores.inbox
        bus = PollingBus(interval=0.01)
        await bus.start()
        news = News(bus)
        # No type declared: every event is one this reader is not told of.
        hub = EventHub(EventReader(stores.events), news, {}, StoreReader(store))
        principal = Principal("api_key", "key", "reader", frozenset({"conversations:read"}))

        async def same_principal() -> Principal:
            return principal

        async def busy_log() -> None:
            while True:
                await store.ingest_inbound("sms", InboundMessage(unique("in"), "+1555", "x"))
                bus.ring()
                await asyncio.sleep(every)

        await hub.ensure_running()
        stream = events_routes.Events(hub).stream(principal, same_principal, await hub.head())
        writing = asyncio.create_task(busy_log())
        try:
            assert (await anext(stream)).event == "ready"
            times = [time.monotonic()]
            async with asyncio.timeout(10):
                for _ in range(3):
                    sent = await anext(stream)
                    assert sent.comment == "keepalive" and sent.event is None
                    times.append(time.monotonic())
            return [later - earlier for earlier, later in itertools.pairwise(times)]
        finally:
            writing.cancel()
            await stream.aclose()
            await hub.close()
            await news.close()
            await bus.close()
            await stores.close()

    gaps = asyncio.run(scenario())
    assert max(gaps) < keepalive + max(0.3 * keepalive, 0.15), gaps

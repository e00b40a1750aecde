"""The settings API through the real server: who may read and change what, each part of a
change and the refusals naming their field, the channels' variables (the environment
winning, where a channel connects never stored, secrets masked and never shown whole, in
answers, the audit log or the server's log), canned responses, the ``settings.updated``
event, every process taking a change within seconds, and the secret key: rotated with
``omnichannel settings rotate-key``, and required where servers share Firestore.
docs/settings.md is the reference."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from omnichannel_core.secret_box import generate_key
from omnichannel_core.testing.emulators import Emulator
from omnichannel_core.testing.fake_provider import FakeProvider
from omnichannel_core.testing.server import ServerProcess, running_server
from tests.support.signing import inbound_message, post_webhook, unique
from tests.support.sse import open_stream
from tests.support.users import create_user, login

SECRET = "stored-webhook-secret-0123456789"
NEXT_SECRET = "next-webhook-secret-9876543210"
UNSET_CHANNEL = {"WEBHOOK_SECRET": None, "HTTP_CHANNEL_SEND_URL": None}
"""The http channel with nothing in the environment."""
PROCESSES = 3
"""A server of two web workers and its job runner."""
SETTINGS = "/api/settings"
CANNED = "/api/settings/canned-responses"
ROTATE_KEY = (sys.executable, "-m", "omnichannel_core.cli", "settings", "rotate-key")


def log_lines(server: ServerProcess) -> list[dict[str, Any]]:
    lines = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def loaded_by(server: ServerProcess, version: int) -> set[int]:
    """The processes (their pids) that took the settings' ``version`` or a later one."""
    return {
        line["pid"]
        for line in log_lines(server)
        if line.get("event") == "settings_loaded" and line["version"] >= version
    }


def wait_until_every_process_has(
    server: ServerProcess, version: int, processes: int = PROCESSES, seconds: float = 10
) -> None:
    """Until each web worker and the job runner (``processes`` in all) took ``version``
    (they poll every 2 s)."""
    deadline = time.monotonic() + seconds
    while len(loaded_by(server, version)) < processes:
        assert time.monotonic() < deadline, f"not every process took version {version}"
        time.sleep(0.05)


def wait_for(check: Callable[[], Any], seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(0.05)


def patched(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.patch(SETTINGS, json=body)
    assert response.status_code == 200, response.text
    settings: dict[str, Any] = response.json()
    return settings


def variable(settings: dict[str, Any], channel: str, name: str) -> dict[str, Any]:
    (found,) = [c for c in settings["channels"] if c["channel"] == channel]
    (value,) = [v for v in found["variables"] if v["name"] == name]
    return value


def sending_to(receiver: FakeProvider) -> dict[str, str]:
    """The http channel's send URL, set where it must be: in the environment."""
    return {"HTTP_CHANNEL_SEND_URL": receiver.url + "/in"}


def fresh_post(server: ServerProcess, body: dict[str, Any], secret: str) -> httpx.Response:
    """A signed webhook on a connection of its own, so the posts of a test spread over the
    web workers (a kept-alive connection would stay with one)."""
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        return post_webhook(client, body, secret)


@pytest.fixture(scope="module")
def receiver() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, receiver: FakeProvider
) -> Iterator[ServerProcess]:
    """Two web workers and a job runner on SQLite; the http channel's secret unset, its send
    URL (where it connects: the environment's only) the receiver's."""
    env = {**UNSET_CHANNEL, **sending_to(receiver), "OMNICHANNEL_EVENT_POLL_MS": "100"}
    with running_server(tmp_path_factory.mktemp("settings"), env, workers=2) as process:
        yield process


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def configured(server: ServerProcess, admin: httpx.Client) -> int:
    """The http channel's secret stored through the API, and taken by every process; the
    settings' version then."""
    settings = patched(admin, {"channels": {"WEBHOOK_SECRET": SECRET}})
    wait_until_every_process_has(server, settings["version"])
    return int(settings["version"])


@pytest.fixture(scope="module")
def agent(server: ServerProcess, admin: httpx.Client) -> Iterator[httpx.Client]:
    user = create_user(admin, "agent")
    with server.client(api_key=login(server, user["email"])["access_token"]) as client:
        yield client


def test_values_stored_through_the_api_are_used_by_every_process(
    server, admin, configured, receiver
):
    """The http channel, without a secret in the environment, takes the one stored:
    webhooks signed with it are taken by every web worker, others refused; a reply goes
    out from the job runner, signed with it. A new secret stored is used by every process
    within seconds, without a restart: the old one is refused."""
    sender = unique("+1555")
    for _ in range(8):
        assert fresh_post(server, inbound_message(sender, "hi"), SECRET).status_code == 200
    assert fresh_post(server, inbound_message(sender), NEXT_SECRET).status_code == 403
    conversations = admin.get("/api/conversations", params={"limit": 200}).json()["items"]
    [conversation] = [c for c in conversations if c["address"] == sender]
    reply = admin.post(f"/api/conversations/{conversation['id']}/messages", json={"text": "yo"})
    assert reply.status_code in (201, 202), reply.text
    wait_for(lambda: [r for r in receiver.requests if r.json().get("text") == "yo"])

    version = patched(admin, {"channels": {"WEBHOOK_SECRET": NEXT_SECRET}})["version"]
    assert version > configured
    wait_until_every_process_has(server, version)
    for _ in range(8):
        assert fresh_post(server, inbound_message(sender), NEXT_SECRET).status_code == 200
        assert fresh_post(server, inbound_message(sender), SECRET).status_code == 403
    patched(admin, {"channels": {"WEBHOOK_SECRET": SECRET}})


def test_everyone_reads_the_settings_and_only_admins_see_the_channels(server, admin, agent):
    """An agent, a supervisor and a read-only key read the settings (not the channels'
    variables: null); an admin sees each loaded channel's variables too."""
    supervisor = create_user(admin, "supervisor")
    read_key = admin.post("/api/api-keys", json={"name": unique("read"), "scopes": ["read"]})
    readers = [
        agent,
        server.client(api_key=login(server, supervisor["email"])["access_token"]),
        server.client(api_key=read_key.json()["key"]),
    ]
    for reader in readers:
        answer = reader.get(SETTINGS)
        assert answer.status_code == 200, answer.text
        assert answer.json()["channels"] is None
        assert {"business", "hours", "holidays", "sla", "away_messages"} <= set(answer.json())
    channels = admin.get(SETTINGS).json()["channels"]
    assert [c["channel"] for c in channels] == ["http"]
    assert {v["name"] for v in channels[0]["variables"]} == {
        "WEBHOOK_SECRET",
        "HTTP_CHANNEL_SEND_URL",
    }
    with server.client(api_key=None) as anonymous:
        assert anonymous.get(SETTINGS).status_code == 401


def test_only_admins_change_settings_and_canned_responses(server, admin, agent):
    """An agent (and a read-only key) is refused every change, naming settings:manage."""
    read_key = admin.post("/api/api-keys", json={"name": unique("read"), "scopes": ["read"]})
    for caller in (agent, server.client(api_key=read_key.json()["key"])):
        for answer in (
            caller.patch(SETTINGS, json={"business": {"name": "Mine"}}),
            caller.post(CANNED, json={"shortcut": "/x", "title": "x", "text": "x"}),
            caller.patch(f"{CANNED}/cr_nope", json={"title": "x"}),
            caller.delete(f"{CANNED}/cr_nope"),
        ):
            assert answer.status_code == 403, answer.text
            assert answer.json()["permission"] == "settings:manage"


def test_a_change_sets_the_parts_it_gives_and_keeps_the_others(admin, configured):
    """Each part given is set (the week whole, a day left out closed; the holidays sorted),
    the others stay; every change bumps the version; an empty change changes nothing."""
    before = admin.get(SETTINGS).json()
    after = patched(
        admin,
        {
            "business": {"name": "  Acme Ltd  ", "timezone": "Europe/Paris"},
            "hours": {
                "monday": [{"start": "13:00", "end": "18:00"}, {"start": "09:00", "end": "12:00"}],
                "friday": [{"start": "09:00", "end": "24:00"}],
            },
            "holidays": [{"date": "2026-01-01"}, {"date": "2025-12-25", "name": "Christmas"}],
            "sla": {"first_response_minutes": 45},
        },
    )
    assert after["version"] == before["version"] + 1
    assert after["business"] == {"name": "Acme Ltd", "timezone": "Europe/Paris"}
    assert after["hours"]["monday"] == [
        {"start": "09:00", "end": "12:00"},
        {"start": "13:00", "end": "18:00"},
    ]
    assert after["hours"]["friday"] == [{"start": "09:00", "end": "24:00"}]
    assert after["hours"]["sunday"] == []
    assert after["holidays"] == [
        {"date": "2025-12-25", "name": "Christmas"},
        {"date": "2026-01-01", "name": None},
    ]
    assert after["sla"] == {"first_response_minutes": 45}
    assert after["away_messages"] == before["away_messages"]
    assert after["updated_by"] == "bootstrap"

    renamed = patched(admin, {"business": {"name": "Acme"}})
    assert renamed["business"] == {"name": "Acme", "timezone": "Europe/Paris"}
    assert renamed["hours"] == after["hours"]
    assert renamed["version"] == after["version"] + 1
    assert patched(admin, {})["version"] == renamed["version"]
    assert patched(admin, {"business": {"name": "Acme"}})["version"] == renamed["version"]
    assert admin.get(SETTINGS).json() == renamed


BAD_CHANGES = [
    ({"business": {"timezone": "Mars/Olympus_Mons"}}, "business.timezone"),
    ({"business": {"timezone": "../etc/passwd"}}, "business.timezone"),
    ({"business": {"name": "two\nlines"}}, "business.name"),
    ({"business": {"name": 5}}, "business.name"),
    ({"hours": {"monday": [{"start": "9:00", "end": "17:00"}]}}, "hours.monday[0].start"),
    ({"hours": {"monday": [{"start": "24:00", "end": "24:00"}]}}, "hours.monday[0].start"),
    ({"hours": {"monday": [{"start": "10:00", "end": "25:00"}]}}, "hours.monday[0].end"),
    ({"hours": {"tuesday": [{"start": "18:00", "end": "09:00"}]}}, "hours.tuesday[0]"),
    (
        {
            "hours": {
                "friday": [{"start": "09:00", "end": "12:00"}, {"start": "11:30", "end": "14:00"}]
            }
        },
        "hours.friday[1]",
    ),
    ({"hours": {"funday": []}}, "hours.funday"),
    ({"holidays": [{"date": "2025-02-30"}]}, "holidays[0].date"),
    ({"holidays": [{"date": "25/12/2025"}]}, "holidays[0].date"),
    ({"holidays": [{"date": "2025-12-25"}, {"date": "2025-12-25"}]}, "holidays[1].date"),
    ({"sla": {"first_response_minutes": 0}}, "sla.first_response_minutes"),
    ({"sla": {"first_response_minutes": 1.5}}, "sla.first_response_minutes"),
    ({"sla": {}}, "sla.first_response_minutes"),
    ({"away_messages": [{"channel": "pigeon", "enabled": True, "text": "x"}]}, None),
    ({"away_messages": [{"channel": "http", "enabled": True, "text": "   "}]}, None),
    ({"away_messages": [{"channel": "http", "text": "closed"}]}, None),
    ({"channels": {"NOT_DECLARED": "x"}}, "channels.NOT_DECLARED"),
    ({"channels": {"HTTP_CHANNEL_SEND_URL": 42}}, "channels.HTTP_CHANNEL_SEND_URL"),
    ({"channels": {"WEBHOOK_SECRET": "x" * 5000}}, "channels.WEBHOOK_SECRET"),
    ({"channels": {"WEBHOOK_SECRET": "two\nlines"}}, "channels.WEBHOOK_SECRET"),
    (
        {"channels": {"HTTP_CHANNEL_SEND_URL": "https://attacker.example/in"}},
        "channels.HTTP_CHANNEL_SEND_URL",
    ),
    ({"hours": {"monday": [{"start": "09:00", "end": "18:00\n"}]}}, "hours.monday[0].end"),
    ({"colour": "blue"}, "colour"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CHANGES)
def test_a_bad_change_is_refused_naming_its_field_and_changes_nothing(admin, body, field):
    """A change with one bad part answers 400 naming the field, and nothing of it (nor of
    its good parts) is stored."""
    before = admin.get(SETTINGS).json()
    answer = admin.patch(SETTINGS, json={"business": {"name": unique("kept")}, **body})
    assert answer.status_code == 400, answer.text
    problem = answer.json()
    assert problem["error"] == "invalid_input"
    if field is None:  # an away message: its index and the field inside
        assert problem["field"].startswith("away_messages[0]")
    else:
        assert problem["field"] == field
    assert admin.get(SETTINGS).json() == before


def test_channel_variables_show_where_each_value_comes_from(admin, configured, receiver):
    """Each variable says whether it is secret, required or storable, and where its value
    comes from; a secret is masked (the last 4 characters of a long one), a plain value
    shown. The send URL, where the channel connects, is the environment's only: shown, not
    storable, refused naming why (400); null stores nothing. Null removes a stored value
    (the variable is then set nowhere)."""
    settings = admin.get(SETTINGS).json()
    secret = variable(settings, "http", "WEBHOOK_SECRET")
    assert secret == {
        "name": "WEBHOOK_SECRET",
        "description": secret["description"],
        "secret": True,
        "required": True,
        "storable": True,
        "value": "••••" + SECRET[-4:],
        "source": "stored",
        "problem": None,
    }
    url = variable(settings, "http", "HTTP_CHANNEL_SEND_URL")
    assert (url["value"], url["source"], url["secret"], url["storable"]) == (
        receiver.url + "/in",
        "environment",
        False,
        False,
    )
    refused = admin.patch(
        SETTINGS, json={"channels": {"HTTP_CHANNEL_SEND_URL": "https://x.example"}}
    )
    assert refused.status_code == 400
    assert refused.json()["field"] == "channels.HTTP_CHANNEL_SEND_URL"
    assert "environment only" in refused.json()["message"]
    kept = patched(admin, {"channels": {"HTTP_CHANNEL_SEND_URL": None}})
    assert variable(kept, "http", "HTTP_CHANNEL_SEND_URL") == url

    removed = patched(admin, {"channels": {"WEBHOOK_SECRET": None}})
    gone = variable(removed, "http", "WEBHOOK_SECRET")
    assert (gone["value"], gone["source"]) == (None, None)
    restored = patched(admin, {"channels": {"WEBHOOK_SECRET": SECRET}})
    assert variable(restored, "http", "WEBHOOK_SECRET")["source"] == "stored"


def test_changes_are_audited_with_before_and_after_and_secrets_masked(admin, configured):
    """The audit entry of a change names each field it changed, before and after; a secret
    shows masked on both sides, never whole."""
    patched(
        admin, {"channels": {"WEBHOOK_SECRET": NEXT_SECRET}, "sla": {"first_response_minutes": 7}}
    )
    patched(admin, {"channels": {"WEBHOOK_SECRET": SECRET}})
    entries = admin.get("/api/audit", params={"action": "settings.updated"}).json()["items"]
    latest, previous = entries[0], entries[1]
    assert latest["actor_id"] == "bootstrap"
    assert latest["details"]["changes"] == {
        "channels.WEBHOOK_SECRET": {
            "before": "••••" + NEXT_SECRET[-4:],
            "after": "••••" + SECRET[-4:],
        }
    }
    assert previous["details"]["changes"]["channels.WEBHOOK_SECRET"] == {
        "before": "••••" + SECRET[-4:],
        "after": "••••" + NEXT_SECRET[-4:],
    }
    assert previous["details"]["changes"]["sla.first_response_minutes"]["after"] == 7
    text = json.dumps(entries)
    assert SECRET not in text and NEXT_SECRET not in text


def test_canned_responses_are_made_by_admins_and_listed_for_agents(admin, agent):
    """An admin creates, changes and deletes canned responses; agents list and read them;
    a shortcut is one response's (409 naming it); a change or delete of an unknown one is
    404; each change is audited."""
    tag = uuid.uuid4().hex[:8]
    made = admin.post(CANNED, json={"shortcut": f"/hi-{tag}", "title": " Hi ", "text": "Hello!"})
    assert made.status_code == 201, made.text
    response = made.json()
    assert (response["shortcut"], response["title"], response["text"]) == (
        f"/hi-{tag}",
        "Hi",
        "Hello!",
    )
    second = admin.post(CANNED, json={"shortcut": f"/bye-{tag}", "title": "Bye", "text": "Bye"})
    taken = admin.post(CANNED, json={"shortcut": f"/hi-{tag}", "title": "x", "text": "x"})
    assert (taken.status_code, taken.json()["field"]) == (409, "shortcut")

    listed = agent.get(CANNED, params={"limit": 200}).json()
    shortcuts = [item["shortcut"] for item in listed["items"]]
    assert shortcuts == sorted(shortcuts)
    assert {f"/hi-{tag}", f"/bye-{tag}"} <= set(shortcuts)
    assert agent.get(f"{CANNED}/{response['id']}").json() == response

    path = f"{CANNED}/{response['id']}"
    changed = admin.patch(path, json={"text": "Hello there!"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["text"], changed.json()["title"]) == ("Hello there!", "Hi")
    onto = admin.patch(f"{CANNED}/{second.json()['id']}", json={"shortcut": f"/hi-{tag}"})
    assert onto.status_code == 409
    for bad in (
        {"shortcut": "hello"},
        {"shortcut": "/Hello"},
        {"shortcut": f"/hi-{tag}\n"},
        {"title": ""},
        {"text": " "},
    ):
        refused = admin.patch(path, json=bad)
        assert refused.status_code == 400, bad
        assert refused.json()["field"] == next(iter(bad))
    assert admin.delete(path).status_code == 204
    assert admin.delete(path).status_code == 404
    assert admin.patch(path, json={"title": "x"}).status_code == 404
    assert agent.get(path).status_code == 404
    actions = [
        entry["action"]
        for entry in admin.get("/api/audit", params={"limit": 50}).json()["items"]
        if entry["target_id"] == response["id"]
    ]
    assert actions == [
        "canned_response.deleted",
        "canned_response.updated",
        "canned_response.created",
    ]


def test_settings_updated_is_streamed_to_agents_without_the_channels(server, admin, agent):
    """An agent's event stream is told of a change (``settings.updated``), with the
    settings as everyone may read them: no channel variable."""
    token = agent.headers["Authorization"].removeprefix("Bearer ")
    with open_stream(server.base_url, token) as (response, stream):
        assert response.status_code == 200
        assert stream.next().event == "ready"
        name = unique("streamed")
        patched(admin, {"business": {"name": name}})
        event = stream.next_of("settings.updated")
    assert event.data["settings"]["business"]["name"] == name
    assert event.data["settings"]["channels"] is None


def test_no_secret_ever_reaches_an_answer_or_the_log(server, admin, configured):
    """After every change above, the stored secrets appear in no answer of the settings
    API and nowhere in the server's log."""
    answers = json.dumps(admin.get(SETTINGS).json()) + json.dumps(
        admin.get("/api/audit", params={"limit": 200}).json()
    )
    log = server.log()
    for secret in (SECRET, NEXT_SECRET):
        assert secret not in answers
        assert secret not in log


# The secret key ---------------------------------------------------------------------------


def rotate(server: ServerProcess, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ROTATE_KEY,
        env={**server.env, **env},
        cwd=server.workdir,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_secret_key_is_rotated_without_losing_a_secret(tmp_path: Path):
    """A secret sealed with key A: started with only a new key B, the server cannot open
    it, says so by name (never its value), and the channel goes without it; with B then A,
    it opens, ``rotate-key`` seals it with B, and with B alone it still opens. Rotating
    again finds nothing to do; without the old key the command refuses, changing
    nothing."""
    first, second = generate_key(), generate_key()
    env = {**UNSET_CHANNEL, "OMNICHANNEL_SECRET_KEY": first}
    with running_server(tmp_path, env) as server, server.client() as admin:
        patched(admin, {"channels": {"WEBHOOK_SECRET": SECRET}})
        assert post_webhook(admin, inbound_message(unique("+1555")), SECRET).status_code == 200

    with running_server(tmp_path, {**env, "OMNICHANNEL_SECRET_KEY": second}) as server:
        with server.client() as admin:
            shown = variable(admin.get(SETTINGS).json(), "http", "WEBHOOK_SECRET")
            assert (shown["value"], shown["source"]) == (None, "stored")
            assert "OMNICHANNEL_SECRET_KEY" in shown["problem"]
            assert post_webhook(admin, inbound_message(unique("+1555")), SECRET).status_code == 503
        warned = [
            line for line in log_lines(server) if line["event"] == "stored_secrets_unreadable"
        ]
        assert warned and warned[0]["names"] == ["WEBHOOK_SECRET"]
        refused = rotate(server, {"OMNICHANNEL_SECRET_KEY": second})
        assert refused.returncode != 0
        assert "WEBHOOK_SECRET" in refused.stderr + refused.stdout
        assert SECRET not in server.log()

    both = {**env, "OMNICHANNEL_SECRET_KEY": f"{second},{first}"}
    with running_server(tmp_path, both) as server:
        with server.client() as admin:
            assert post_webhook(admin, inbound_message(unique("+1555")), SECRET).status_code == 200
        rotated = rotate(server, {})
        assert rotated.returncode == 0, rotated.stderr
        assert "WEBHOOK_SECRET" in rotated.stdout
        again = rotate(server, {})
        assert "already" in again.stdout

    with (
        running_server(tmp_path, {**env, "OMNICHANNEL_SECRET_KEY": second}) as server,
        server.client() as admin,
    ):
        assert post_webhook(admin, inbound_message(unique("+1555")), SECRET).status_code == 200
        rotations = admin.get("/api/audit", params={"action": "settings.key_rotated"}).json()
        assert rotations["items"][0]["details"]["resealed"] == ["WEBHOOK_SECRET"]


def test_servers_sharing_firestore_share_the_settings(
    tmp_path: Path, firestore_emulator: Emulator, pubsub_emulator: Emulator
):
    """Two servers on one Firestore store, with one OMNICHANNEL_SECRET_KEY: the http
    channel's secret stored through one is used by the other within seconds; a
    customer writing twice while the business is closed gets one away message; a canned
    response made on one lists on the other. Without the key, the server says so as it
    starts, and a secret cannot be stored (400 naming OMNICHANNEL_SECRET_KEY) while the rest
    can; the environment's value wins, and says so."""
    project = f"demo-settings-{uuid.uuid4().hex[:10]}"
    env: dict[str, str | None] = {
        **UNSET_CHANNEL,
        "OMNICHANNEL_STORE": f"firestore://{project}",
        "FIRESTORE_EMULATOR_HOST": firestore_emulator.host_port,
        "OMNICHANNEL_EVENT_BUS": f"pubsub://{project}/events",
        "PUBSUB_EMULATOR_HOST": pubsub_emulator.host_port,
        "OMNICHANNEL_JWT_SECRET": "settings-firestore-jwt-secret-0123456789abcdefgh",
        "OMNICHANNEL_SECRET_KEY": generate_key(),
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    today = time.strftime("%Y-%m-%d", time.gmtime())
    sender = unique("+1555")
    with (
        FakeProvider() as receiver,
        running_server(tmp_path / "a", {**env, **sending_to(receiver)}) as first,
        running_server(tmp_path / "b", {**env, **sending_to(receiver)}) as second,
        first.client() as one,
        second.client() as other,
    ):
        change = {
            "channels": {"WEBHOOK_SECRET": SECRET},
            "business": {"timezone": "UTC"},
            "holidays": [{"date": today, "name": "closed today"}],
            "away_messages": [{"channel": "http", "enabled": True, "text": "We are closed."}],
        }
        version = patched(one, change)["version"]
        wait_until_every_process_has(second, version, processes=2, seconds=15)
        shown = variable(other.get(SETTINGS).json(), "http", "WEBHOOK_SECRET")
        assert (shown["value"], shown["source"]) == ("••••" + SECRET[-4:], "stored")
        for text in ("hello?", "anyone?"):
            assert post_webhook(other, inbound_message(sender, text), SECRET).status_code == 200

        def away() -> list[Any]:
            return [r for r in receiver.requests if r.json().get("text") == "We are closed."]

        wait_for(away, seconds=20)
        wait_for(
            lambda: other.get("/health").json()["subscribers"]["settings.away"]["lag_seconds"] == 0
        )
        assert len(away()) == 1

        made = one.post(CANNED, json={"shortcut": "/shared", "title": "Shared", "text": "Hi"})
        assert made.status_code == 201, made.text
        assert [r["shortcut"] for r in other.get(CANNED).json()["items"]] == ["/shared"]
        assert SECRET not in first.log() + second.log()

    (tmp_path / "c").mkdir()
    keyless = {**env, "OMNICHANNEL_SECRET_KEY": None, "WEBHOOK_SECRET": "from-the-environment-0123"}
    with running_server(tmp_path / "c", keyless) as server, server.client() as admin:
        warned = [line for line in log_lines(server) if line["event"] == "secret_key_unavailable"]
        assert warned and "OMNICHANNEL_SECRET_KEY" in warned[0]["detail"]
        refused = admin.patch(SETTINGS, json={"channels": {"WEBHOOK_SECRET": NEXT_SECRET}})
        assert refused.status_code == 400
        assert refused.json()["field"] == "channels.WEBHOOK_SECRET"
        assert "OMNICHANNEL_SECRET_KEY" in refused.json()["message"]
        assert patched(admin, {"business": {"name": "Keyless"}})["business"]["name"] == "Keyless"
        shown = variable(admin.get(SETTINGS).json(), "http", "WEBHOOK_SECRET")
        assert (shown["value"], shown["source"]) == ("••••0123", "environment")

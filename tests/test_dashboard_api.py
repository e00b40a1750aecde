"""The dashboard through the real server: the queue now, a period's figures counted by the
rollups subscriber from real messages and changes, its permissions and bad input, and a
rebuild from the store that counts the same."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from omnichannel_core.testing.fake_provider import FakeProvider
from omnichannel_core.testing.server import ServerProcess, running_server
from tests.conftest import WEBHOOK_SECRET
from tests.support.signing import inbound_message, post_webhook, unique
from tests.support.users import create_user, login

SETTLE_SECONDS = 20.0


@pytest.fixture(scope="module")
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def user_client(server: ServerProcess, admin: httpx.Client, role: str) -> tuple[dict, httpx.Client]:
    user = create_user(admin, role)
    token = login(server, user["email"])["access_token"]
    return user, server.client(api_key=token)


def write_in(client: httpx.Client, sender: str, text: str = "hello") -> None:
    assert post_webhook(client, inbound_message(sender, text)).status_code == 200


def conversation_of(client: httpx.Client, address: str) -> dict[str, Any]:
    items = client.get("/api/conversations", params={"limit": 200}).json()["items"]
    [conversation] = [c for c in items if c["address"] == address]
    return conversation


def eventually(read, check, timeout: float = SETTLE_SECONDS) -> Any:
    """``read()`` until ``check`` holds of it (the subscriber counts within a second)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if check(value):
            return value
        assert time.monotonic() < deadline, f"never held: {value}"
        time.sleep(0.2)


def test_a_reply_is_counted_as_the_agents_first_response(
    server: ServerProcess, admin: httpx.Client
) -> None:
    agent, agent_client = user_client(server, admin, "agent")
    sender = unique("+1555")
    write_in(admin, sender)
    conversation = conversation_of(admin, sender)
    taken = agent_client.patch(
        f"/api/conversations/{conversation['id']}", json={"assignee": agent["id"]}
    )
    assert taken.status_code == 200, taken.text
    reply = agent_client.post(
        f"/api/conversations/{conversation['id']}/messages", json={"text": "hi"}
    )
    assert reply.status_code in (200, 201, 202), reply.text
    assert reply.json()["author"] == {
        "kind": "user",
        "id": agent["id"],
        "name": agent["display_name"],
        "ref": None,
    }

    def mine(report: dict) -> dict | None:
        return next((a for a in report["agents"] if a["user_id"] == agent["id"]), None)

    report = eventually(
        lambda: admin.get("/api/dashboard/report").json(),
        lambda body: mine(body) is not None and mine(body)["figures"]["first_response"]["count"],
    )
    figures = mine(report)["figures"]
    assert figures["messages_out"] == 1
    assert figures["first_response"]["count"] == 1
    assert figures["first_response"]["median_seconds"] is not None
    assert report["totals"]["conversations_opened"] >= 1
    assert report["totals"]["messages_in"] >= 1
    history = admin.get(f"/api/conversations/{conversation['id']}/history").json()["items"]
    assert [(c["previous_assignee"], c["assignee"]) for c in history] == [(None, agent["id"])]
    assert history[0]["by"]["id"] == agent["id"]


def test_the_queue_now(server: ServerProcess, admin: httpx.Client) -> None:
    sender = unique("+1555")
    write_in(admin, sender)
    now = eventually(
        lambda: admin.get("/api/dashboard").json(),
        lambda body: body["conversations"]["unassigned"] >= 1,
    )
    assert now["refresh_seconds"] == 5
    assert now["longest_waiting"] is not None
    assert now["longest_waiting"]["wait_seconds"] >= 0
    assert {m["channel"] for m in now["messages"]} == {"http"}
    assert [b["channel"] for b in now["outbox"]] == ["http"]


def test_agents_may_not_read_the_dashboard(server: ServerProcess, admin: httpx.Client) -> None:
    _, agent_client = user_client(server, admin, "agent")
    assert agent_client.get("/api/dashboard").status_code == 403
    assert agent_client.get("/api/dashboard/report").status_code == 403
    _, supervisor = user_client(server, admin, "supervisor")
    assert supervisor.get("/api/dashboard").status_code == 200


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"start": "2026-13-01"}, "start"),
        ({"end": "yesterday"}, "end"),
        ({"start": "2026-02-10", "end": "2026-02-01"}, "start"),
        ({"start": "2026-01-01", "end": "2026-03-01", "interval": "hour"}, "start"),
        ({"interval": "minute"}, "interval"),
        ({"start": "9999-12-31", "end": "9999-12-31"}, "end"),  # its end: past the calendar
        ({"end": "0001-01-02"}, "end"),
    ],
)
def test_a_bad_period_is_a_400_naming_it(admin: httpx.Client, params: dict, named: str) -> None:
    response = admin.get("/api/dashboard/report", params=params)
    assert response.status_code == 400, response.text
    assert named in response.text


def figures_without_time(report: dict) -> dict:
    return {key: value for key, value in report.items() if key != "as_of"}


def run_command(server: ServerProcess, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omnichannel_core.cli", *arguments],
        env=server.env,
        cwd=server.workdir,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_a_rebuild_from_the_store_counts_the_same(
    server: ServerProcess, admin: httpx.Client
) -> None:
    """`omnichannel dashboard rebuild` asks the server's job runner to count again from the
    store (messages with their authors, each conversation's history): the same figures,
    and an event after it is counted once."""
    agent, agent_client = user_client(server, admin, "agent")
    sender = unique("+1555")
    write_in(admin, sender)
    conversation = conversation_of(admin, sender)
    path = f"/api/conversations/{conversation['id']}"
    assert agent_client.patch(path, json={"assignee": agent["id"]}).status_code == 200
    assert agent_client.post(f"{path}/messages", json={"text": "hi"}).status_code < 300
    assert agent_client.patch(path, json={"status": "resolved"}).status_code == 200
    before = eventually(
        lambda: admin.get("/api/dashboard/report").json(),
        lambda body: any(
            a["user_id"] == agent["id"] and a["figures"]["conversations_resolved"] == 1
            for a in body["agents"]
        ),
    )
    rebuilt = run_command(server, "dashboard", "rebuild", "--timeout", "60")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "rebuilt" in rebuilt.stdout
    assert figures_without_time(admin.get("/api/dashboard/report").json()) == (
        figures_without_time(before)
    )
    write_in(admin, sender, "one more")  # reopens it: counted once, after the rebuild
    after = eventually(
        lambda: admin.get("/api/dashboard/report").json(),
        lambda body: body["totals"]["messages_in"] == before["totals"]["messages_in"] + 1,
    )
    time.sleep(1.5)  # what a double count would need to show
    again = admin.get("/api/dashboard/report").json()
    assert again["totals"]["messages_in"] == after["totals"]["messages_in"]
    assert again["totals"]["conversations_opened"] == (before["totals"]["conversations_opened"] + 1)


def test_a_store_from_before_the_dashboard_gets_its_figures_at_first_start(
    tmp_path: Path, receiver: FakeProvider
) -> None:
    """The dashboard counts a store's whole history when it first starts (its subscriber
    starts with a rebuild), not only what happens from then on."""
    env = {"WEBHOOK_SECRET": WEBHOOK_SECRET, "HTTP_CHANNEL_SEND_URL": receiver.url + "/inbound"}
    sender = unique("+1555")
    without = {**env, "OMNICHANNEL_DISABLE_PLUGINS": "dashboard"}
    with running_server(tmp_path, without) as old, old.client() as client:
        assert client.get("/api/dashboard").status_code == 404
        write_in(client, sender)
        conversation = conversation_of(client, sender)
        path = f"/api/conversations/{conversation['id']}"
        assert client.post(f"{path}/messages", json={"text": "hi"}).status_code < 300
        assert client.patch(path, json={"status": "resolved"}).status_code == 200
    with running_server(tmp_path, env) as new, new.client() as client:
        report = eventually(
            lambda: client.get("/api/dashboard/report").json(),
            lambda body: body["totals"]["conversations_resolved"] == 1,
        )
        totals = report["totals"]
        assert (totals["conversations_opened"], totals["messages_in"]) == (1, 1)
        assert totals["messages_out"] == 1
        assert totals["first_response"]["count"] == 1  # an API key's reply answers

"""A scripted day through the real server, on SQLite and on Firestore, whose dashboard has
known answers: first response times, SLA breaches, an automation that is no response, and
buckets across midnight in a zone half an hour off UTC (Asia/Kolkata, +05:30).

The server runs under libfaketime (Debian's ``faketime``; `.ci/run` installs it): the test
moves the server's clock to each moment of the script through the offset file, so a
customer writes at 23:50 and an agent answers at 23:52:30 without waiting for either. The
clock only ever runs behind the real one (gunicorn's arbiter would take a clock ahead of the
workers' heartbeats for hung workers), so the day scripted is yesterday, or the last weekday
before it. Only the wall clock moves, as in an NTP step: timeouts, deadlines and timers
keep the real monotonic clock (``tests/support/faketime`` works around libfaketime's sleep
for that), and the test moves the clock only between steps.

The business is open Monday to Friday, 09:00 to 18:00; its first-response target is 15
minutes. ``D`` is the evening before ``D1``, a weekday:

=========  =========================================================================
D 23:50    customer 1 writes (the away message answers, closed: no first response)
D 23:51    customer 1 writes again (no second away message)
D 23:52:30 agent A takes it and answers: first response 150 s
D 23:58    customer 2 writes (away message)
D1 00:20   agent B takes it and answers: 1,320 s, past the target (a breach, of D)
D1 00:30   agent A resolves conversation 1: resolution 2,400 s (of D1)
D1 09:00   customer 3 writes (open: no away message)
D1 09:05   agent B answers: 300 s
D1 10:00   customer 4 writes, and is still waiting at 10:30: a breach from 10:15
=========  =========================================================================
"""

from __future__ import annotations

import base64
import glob
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from omnichannel_core.modules.dashboard.durations import bin_of, lower_edge
from omnichannel_core.testing.emulators import Emulator
from omnichannel_core.testing.fake_provider import FakeProvider
from omnichannel_core.testing.server import API_KEY, ServerProcess, running_server
from tests.conftest import WEBHOOK_SECRET
from tests.support.signing import inbound_message, post_webhook, unique
from tests.support.users import create_user, login

ZONE = ZoneInfo("Asia/Kolkata")
LIBFAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
SLEEP_FIX = Path(__file__).parent / "support" / "faketime"
"""A ``sitecustomize`` that makes ``time.sleep`` work with the monotonic clock left real."""
SETTLE_SECONDS = 30.0
AWAY_TEXT = "We are closed; we answer from 09:00."


def edge(seconds: int) -> int:
    """What a duration reads as in a report (exact to 10 minutes, within 1% above)."""
    return lower_edge(bin_of(seconds))


class FakeClock:
    """The server's clock: libfaketime reads its offset from a file on every call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.write_text("+0\n")

    def env(self) -> dict[str, str]:
        if not LIBFAKETIME:
            pytest.fail(
                "libfaketime is missing: apt-get install faketime (.ci/run installs it)",
                pytrace=False,
            )
        return {
            "LD_PRELOAD": LIBFAKETIME[0],
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",
            "DONT_FAKE_MONOTONIC": "1",
            "PYTHONPATH": str(SLEEP_FIX),
        }

    def at(self, moment: datetime) -> None:
        """From now on the server reads ``moment`` (and on from it, in real time)."""
        offset = (moment - datetime.now(UTC)).total_seconds()
        assert offset < 0, "the script's clock must run behind the real one"
        self.path.write_text(f"{offset:+.3f}\n")


def script_days(now: datetime) -> tuple[date, date]:
    """``D1``: yesterday in the zone, or the last weekday before it; ``D``, the day before."""
    d1 = now.astimezone(ZONE).date() - timedelta(days=1)
    while d1.weekday() >= 5:
        d1 -= timedelta(days=1)
    return d1 - timedelta(days=1), d1


def local(day: date, clock: str) -> datetime:
    hours, minutes, seconds = (float(part) for part in (clock + ":0").split(":")[:3])
    return datetime(day.year, day.month, day.day, tzinfo=ZONE) + timedelta(
        hours=hours, minutes=minutes, seconds=seconds
    )


def eventually(read: Callable[[], Any], check: Callable[[Any], bool]) -> Any:
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        value = read()
        if check(value):
            return value
        assert time.monotonic() < deadline, f"never held: {value}"
        time.sleep(0.2)


class Day:
    """The script's actors on one server."""

    def __init__(self, server: ServerProcess, clock: FakeClock) -> None:
        self.server = server
        self.clock = clock
        self.admin = self.client(API_KEY)
        self.agents: dict[str, tuple[dict[str, Any], httpx.Client]] = {}

    def client(self, token: str) -> httpx.Client:
        """A client that opens a connection per request: the server's clock jumps close
        its idle connections (its keep-alive timer fires at once), and a request sent on
        one as it closes would be reset."""
        return httpx.Client(
            base_url=self.server.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def agent(self, name: str) -> tuple[dict[str, Any], httpx.Client]:
        if name not in self.agents:
            user = create_user(self.admin, "agent", name=f"Agent {name}")
            token = login(self.server, user["email"])["access_token"]
            self.agents[name] = (user, self.client(token))
        return self.agents[name]

    def write(self, sender: str, text: str) -> dict[str, Any]:
        assert post_webhook(self.admin, inbound_message(sender, text)).status_code == 200
        items = self.admin.get("/api/conversations", params={"limit": 200}).json()["items"]
        [conversation] = [c for c in items if c["address"] == sender]
        return conversation

    def messages(self, conversation: dict[str, Any]) -> list[dict[str, Any]]:
        path = f"/api/conversations/{conversation['id']}/messages"
        return self.admin.get(path, params={"limit": 100}).json()["items"]

    def away_messages(self, conversation: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            m
            for m in self.messages(conversation)
            if (m.get("author") or {}).get("kind") == "automation"
        ]

    def wait_for_away(self, conversation: dict[str, Any]) -> None:
        eventually(lambda: self.away_messages(conversation), lambda found: len(found) == 1)

    def answer(self, name: str, conversation: dict[str, Any], text: str, at: datetime) -> None:
        """Agent ``name`` takes the conversation, then answers it at ``at`` (the clock set
        right before the reply, so the time is the reply's to a fraction of a second)."""
        user, client = self.agent(name)
        path = f"/api/conversations/{conversation['id']}"
        taken = client.patch(path, json={"assignee": user["id"]})
        assert taken.status_code == 200, taken.text
        self.clock.at(at)
        sent = client.post(f"{path}/messages", json={"text": text})
        assert sent.status_code < 300, sent.text

    def resolve(self, name: str, conversation: dict[str, Any]) -> None:
        _, client = self.agent(name)
        path = f"/api/conversations/{conversation['id']}"
        assert client.patch(path, json={"status": "resolved"}).status_code == 200

    def report(self, **params: str) -> dict[str, Any]:
        response = self.admin.get("/api/dashboard/report", params=params)
        assert response.status_code == 200, response.text
        return response.json()


def run_script(day: Day, d: date, d1: date) -> dict[str, dict[str, Any]]:
    """Play the day; the conversations by customer."""
    clock = day.clock
    settings = {
        "business": {"name": "Day Co", "timezone": "Asia/Kolkata"},
        "hours": {
            weekday: [{"start": "09:00", "end": "18:00"}]
            for weekday in ("monday", "tuesday", "wednesday", "thursday", "friday")
        },
        "sla": {"first_response_minutes": 15},
        "away_messages": [{"channel": "http", "enabled": True, "text": AWAY_TEXT}],
    }
    changed = day.admin.patch("/api/settings", json=settings)
    assert changed.status_code == 200, changed.text
    time.sleep(3)  # every process reads the settings again within 2 seconds
    day.agent("A"), day.agent("B")
    customers = {name: unique("+1555") for name in ("one", "two", "three", "four")}
    seen: dict[str, dict[str, Any]] = {}

    clock.at(local(d, "23:50"))
    seen["one"] = day.write(customers["one"], "hello?")
    day.wait_for_away(seen["one"])
    clock.at(local(d, "23:51"))
    day.write(customers["one"], "anyone there?")
    clock.at(local(d, "23:52"))
    day.answer("A", seen["one"], "Hi! Here now.", local(d, "23:52:30.5"))
    clock.at(local(d, "23:58"))
    seen["two"] = day.write(customers["two"], "my order?")
    day.wait_for_away(seen["two"])
    clock.at(local(d1, "00:19"))
    day.answer("B", seen["two"], "Looking into it.", local(d1, "00:20:00.5"))
    clock.at(local(d1, "00:30:00.5"))
    day.resolve("A", seen["one"])
    clock.at(local(d1, "09:00"))
    seen["three"] = day.write(customers["three"], "good morning")
    clock.at(local(d1, "09:04"))
    day.answer("B", seen["three"], "Good morning!", local(d1, "09:05:00.5"))
    clock.at(local(d1, "10:00"))
    seen["four"] = day.write(customers["four"], "hello")
    clock.at(local(d1, "10:30"))
    return seen


def waited(day: Day, conversation: dict[str, Any]) -> int:
    """The conversation's first response time as the server stored it: from its customer's
    first message to the first message a user sent, in whole seconds. The script aims at
    x.5 s so that a step taking a fraction of a second longer on a loaded machine still
    lands on the second it aims at; this reads what it landed on."""
    messages = day.messages(conversation)
    first = next(m for m in messages if m["direction"] == "inbound")
    answer = next(m for m in messages if (m.get("author") or {}).get("kind") == "user")
    took = datetime.fromisoformat(answer["created_at"]) - datetime.fromisoformat(
        first["created_at"]
    )
    return int(took.total_seconds())


def figures(report: dict[str, Any], part: str, **where: Any) -> dict[str, Any]:
    """The figures of the one entry of ``report[part]`` with the fields ``where``."""
    [found] = [each for each in report[part] if all(each[k] == v for k, v in where.items())]
    return found["figures"]


def check_the_day(day: Day, d: date, d1: date, seen: dict[str, dict[str, Any]]) -> dict[str, Any]:
    by_day = eventually(
        lambda: day.report(start=d.isoformat(), end=d1.isoformat()),
        lambda body: (
            body["totals"]["conversations_resolved"] == 1
            and body["totals"]["messages_out"] == 5
            and body["totals"]["first_response"]["count"] == 3
            and body["totals"]["messages_in"] == 5
        ),
    )
    assert by_day["timezone"] == "Asia/Kolkata"
    one, two, three = (waited(day, seen[name]) for name in ("one", "two", "three"))
    late = (one - 150, two - 1320, three - 300)  # what each step aimed at, and got
    assert all(0 <= each <= 1 for each in late), (one, two, three)
    first, second = (bucket["figures"] for bucket in by_day["buckets"])
    assert [b["start"] for b in by_day["buckets"]] == [
        f"{d.isoformat()}T00:00:00+05:30",
        f"{d1.isoformat()}T00:00:00+05:30",
    ]
    assert first == {
        "conversations_opened": 2,
        "conversations_resolved": 0,
        "messages_in": 3,
        "messages_out": 3,  # two away messages and agent A's answer
        "first_response": {"count": 2, "median_seconds": one, "p90_seconds": edge(two)},
        "resolution": {"count": 0, "median_seconds": None, "p90_seconds": None},
        "sla_breaches": 1,
    }
    assert second == {
        "conversations_opened": 2,
        "conversations_resolved": 1,
        "messages_in": 2,
        "messages_out": 2,
        "first_response": {"count": 1, "median_seconds": three, "p90_seconds": three},
        "resolution": {"count": 1, "median_seconds": edge(2400), "p90_seconds": edge(2400)},
        "sla_breaches": 1,  # customer four, waiting since 10:00
    }
    totals = by_day["totals"]
    assert totals["first_response"] == {
        "count": 3,
        "median_seconds": three,
        "p90_seconds": edge(two),
    }
    assert totals["sla_breaches"] == 2
    user_a, user_b = day.agent("A")[0], day.agent("B")[0]
    agent_a = figures(by_day, "agents", user_id=user_a["id"])
    assert (agent_a["messages_out"], agent_a["conversations_resolved"]) == (1, 1)
    assert agent_a["first_response"] == {"count": 1, "median_seconds": one, "p90_seconds": one}
    assert agent_a["sla_breaches"] == 0
    agent_b = figures(by_day, "agents", user_id=user_b["id"])
    assert agent_b["messages_out"] == 2
    assert agent_b["first_response"]["count"] == 2
    assert agent_b["sla_breaches"] == 1
    nobody = figures(by_day, "agents", user_id=None)
    assert (nobody["messages_out"], nobody["conversations_opened"]) == (2, 4)
    assert nobody["sla_breaches"] == 1
    assert figures(by_day, "channels", channel="http") == totals

    by_hour = day.report(start=d.isoformat(), end=d1.isoformat(), interval="hour")
    hours = {
        ("d1 " if bucket["start"].startswith(d1.isoformat()) else "d ")
        + bucket["start"][11:16]: bucket["figures"]
        for bucket in by_hour["buckets"]
    }
    assert len(by_hour["buckets"]) == 48
    assert hours["d 23:00"]["conversations_opened"] == 2
    assert hours["d 23:00"]["first_response"]["count"] == 2
    assert hours["d1 00:00"]["conversations_resolved"] == 1
    assert hours["d1 00:00"]["messages_out"] == 1
    assert hours["d1 09:00"]["first_response"]["median_seconds"] == three
    assert hours["d1 10:00"]["sla_breaches"] == 1
    assert sum(bucket["figures"]["messages_in"] for bucket in by_hour["buckets"]) == 5

    # exactly one away message each, outside hours; none inside them
    assert [len(day.away_messages(seen[name])) for name in ("one", "two", "three", "four")] == [
        1,
        1,
        0,
        0,
    ]
    assert day.away_messages(seen["one"])[0]["text"] == AWAY_TEXT

    now = day.admin.get("/api/dashboard").json()
    assert now["conversations"] == {"open": 3, "pending": 0, "unassigned": 1}
    waiting = now["longest_waiting"]
    assert waiting["conversation_id"] == seen["four"]["id"]
    assert 1800 <= waiting["wait_seconds"] < 1800 + SETTLE_SECONDS + 60
    return by_day


def rebuild(server: ServerProcess) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "omnichannel_core.cli", "dashboard", "rebuild", "--timeout", "90"],
        env=server.env,
        cwd=server.workdir,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def play(workdir: Path, env: dict[str, str | None]) -> None:
    clock = FakeClock(workdir / "faketime")
    d, d1 = script_days(datetime.now(UTC))
    clock.at(local(d, "23:40"))
    full_env = {**env, **clock.env(), "OMNICHANNEL_ACCESS_TOKEN_MINUTES": "1440"}
    with running_server(workdir, full_env) as server:
        day = Day(server, clock)
        seen = run_script(day, d, d1)
        before = check_the_day(day, d, d1, seen)
        rebuild(server)
        after = day.report(start=d.isoformat(), end=d1.isoformat())
        assert {k: v for k, v in after.items() if k != "as_of"} == {
            k: v for k, v in before.items() if k != "as_of"
        }


@pytest.fixture
def http_env(receiver: FakeProvider) -> dict[str, str | None]:
    return {"WEBHOOK_SECRET": WEBHOOK_SECRET, "HTTP_CHANNEL_SEND_URL": receiver.url + "/inbound"}


def test_a_scripted_day_on_sqlite(tmp_path: Path, http_env: dict[str, str | None]) -> None:
    play(tmp_path, http_env)


def test_a_scripted_day_on_firestore(
    tmp_path: Path,
    http_env: dict[str, str | None],
    firestore_emulator: Emulator,
    firestore_project: str,
) -> None:
    env = {
        **http_env,
        "OMNICHANNEL_STORE": f"firestore://{firestore_project}",
        "FIRESTORE_EMULATOR_HOST": firestore_emulator.host_port,
        "OMNICHANNEL_SECRET_KEY": base64.urlsafe_b64encode(b"k" * 32).decode(),
    }
    play(tmp_path, env)

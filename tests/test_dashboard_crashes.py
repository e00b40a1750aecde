"""The dashboard's figures under fire, through the real server: the job runner that runs the
subscriber ``dashboard.rollups`` (an ``omnichannel worker`` beside a ``serve --no-worker``)
is killed with ``kill -9`` while it counts a backlog, round after round, on SQLite and on
the Firestore emulator. Once a last runner has caught up (lag 0 in ``/health``), the
period's report has exactly the figures of the workload sent through the API, in total and
per day, and a rebuild from the store (``omnichannel dashboard rebuild``) answers the same
report.

Each round sends its workload while no runner runs, so that its events wait in the log,
then starts a runner and holds it still every few milliseconds to read what it has counted
(the report) and where its saved cursor is (the store). It is killed once it has counted
part of the backlog, neither none nor all, and messages past the cursor it saved: the next
runner is handed those again, and must not count them twice. On SQLite the test holds the
store's writer lock, letting the runner commit one batch of writes at a time, so the kill
finds exactly what was read; on Firestore it freezes the runner (SIGSTOP, SIGCONT).

Kills are made only there, between the subscriber's transactions: one made inside a
transaction on the Firestore emulator leaves its locks held until the emulator's lock
timeout ("Transaction lock timeout" in its log), about a minute in which the next runner
counts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import attrs
import httpx
import pytest

from omnichannel_core.events.records import Event
from omnichannel_core.store import KERNEL_STORES, Database
from omnichannel_core.store.protocols import EventLog, JobStore
from omnichannel_core.store.sqlite.runner import open_writer_lock
from omnichannel_core.testing.fake_provider import FakeProvider
from omnichannel_core.testing.server import Deployment, WorkerProcess, kill_process_group
from tests.conftest import WEBHOOK_SECRET
from tests.support.signing import post_webhook, unique

SUBSCRIBER = "dashboard.rollups"
FIGURES = ("messages_in", "messages_out", "conversations_opened", "conversations_resolved")
SETTLE_SECONDS = 60.0
"""How long the last runner may take to catch up (it waits 3 s for the killed one's lease)."""
FREEZE_GAP_SECONDS = 0.02
"""The longest a frozen runner is let run at a time."""
MAX_ROUNDS = 5
"""Rounds tried to make a run's kills: a round whose backlog was counted whole before the
runner was caught counting kills nothing, and on Firestore one may kill a runner that had
saved its cursor after all."""


@attrs.define
class Expected:
    """What the workload sent, as the report must count it."""

    messages_in: int = 0
    messages_out: int = 0
    conversations_opened: int = 0
    conversations_resolved: int = 0
    first_responses: int = 0
    conversations: list[str] = attrs.field(factory=list)

    def figures(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in FIGURES}

    def progress(self) -> int:
        return sum(self.figures().values())


def progress(totals: dict[str, Any]) -> int:
    """How far the rollups have got: the figures the workload moves, added up."""
    return sum(int(totals[name]) for name in FIGURES)


class StoreView:
    """The store the server uses, read from the test: the subscriber's saved cursor and the
    event log after it. Its own event loop, kept open across reads."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.runner = asyncio.Runner()
        built = {spec.interface: spec.factory(database.backend) for spec in KERNEL_STORES}
        self.runner.run(database.open())
        self.events: EventLog = built[EventLog](database)
        self.jobs: JobStore = built[JobStore](database)

    def messages_past_cursor(self) -> int:
        """The messages logged after the cursor the subscriber saved: what a runner started
        now would be handed (again, for those counted already)."""

        async def read() -> int:
            state = await self.jobs.subscriber(SUBSCRIBER)
            assert state is not None
            cursor, count = state.cursor, 0
            while True:
                page: list[Event] = await self.events.after(cursor, 500)
                count += sum(event.type == "message.created" for event in page)
                if len(page) < 500:
                    return count
                cursor = page[-1].cursor

        return self.runner.run(read())

    def close(self) -> None:
        self.runner.run(self.database.close())
        self.runner.close()


def write_in(client: httpx.Client, messages: list[dict[str, Any]]) -> None:
    for start in range(0, len(messages), 50):
        response = post_webhook(client, {"messages": messages[start : start + 50]})
        assert response.status_code == 200, response.text


@attrs.frozen
class Load:
    """A run's size on a backend: its kills, and each round's new conversations, whose
    customers first write ``first`` messages and up to 5 more (a round's backlog is then
    three batches or more of the subscriber's 100 events); the emulator's stays under a
    minute."""

    kills: int
    conversations: int
    first: int


LOADS = {"sqlite": Load(kills=2, conversations=40, first=3), "firestore": Load(1, 15, 6)}
"""Kills per run: each a redelivery to the next runner; more prove no more, and the test runs
alone (the whole suite waits for it)."""


def send_workload(client: httpx.Client, expected: Expected, load: Load) -> None:
    """A round's workload, added to ``expected``: new customers write a few messages each;
    every conversation but each fifth is answered (a first response), by the API key (a
    program); each third is resolved; each sixth's customer writes twice again (which
    reopens it) and is answered; each twelfth is resolved again."""
    senders = [unique("+1555") for _ in range(load.conversations)]
    first = [
        {"id": unique("in"), "from": sender, "text": f"question {n}"}
        for i, sender in enumerate(senders)
        for n in range(load.first + i % 6)
    ]
    write_in(client, first)
    listed = client.get("/api/conversations", params={"limit": 200}).json()["items"]
    by_address = {c["address"]: c["id"] for c in listed}
    ids = [by_address[sender] for sender in senders]
    expected.conversations += ids
    expected.messages_in += len(first)
    expected.conversations_opened += len(ids)

    def reply(conversation_id: str) -> None:
        path = f"/api/conversations/{conversation_id}/messages"
        key = {"Idempotency-Key": unique("reply")}
        response = client.post(path, json={"text": "on it"}, headers=key)
        assert response.status_code in (200, 201, 202), response.text
        expected.messages_out += 1
        expected.first_responses += 1

    def resolve(conversation_id: str) -> None:
        path = f"/api/conversations/{conversation_id}"
        response = client.patch(path, json={"status": "resolved"})
        assert response.status_code == 200, response.text
        expected.conversations_resolved += 1

    for i, conversation_id in enumerate(ids):
        if i % 5:
            reply(conversation_id)
    for i, conversation_id in enumerate(ids):
        if i % 3 == 0:
            resolve(conversation_id)
    again = [
        {"id": unique("in"), "from": sender, "text": f"again {n}"}
        for i, sender in enumerate(senders)
        if i % 6 == 0
        for n in range(2)
    ]
    write_in(client, again)
    expected.messages_in += len(again)
    expected.conversations_opened += len(again) // 2
    for i, conversation_id in enumerate(ids):
        if i % 6 == 0:
            reply(conversation_id)
    for i, conversation_id in enumerate(ids):
        if i % 12 == 0:
            resolve(conversation_id)


def report(client: httpx.Client, days: tuple[date, date] | None = None) -> dict[str, Any]:
    params = {} if days is None else {"start": str(days[0]), "end": str(days[1])}
    response = client.get("/api/dashboard/report", params=params)
    assert response.status_code == 200, response.text
    return response.json()


class Hold(Protocol):
    """Keeps a runner from changing the store while the test reads what it did."""

    exact: bool
    """Whether nothing the runner sent can land while it is held (else what it counted is
    read again once it is dead)."""

    def step(self) -> None:
        """Let the runner go on a little, then hold it again."""

    def close(self) -> None:
        """Let it go for good (unless it was killed)."""


class WriterLockHold:
    """SQLite: the store's writer lock held (`omnichannel_core.store.sqlite.runner`: each
    batch of writes takes that ``flock`` first), so the runner commits nothing meanwhile;
    let go of a moment, it commits one batch of its writes. Right after the subscriber
    committed what it counted, it waits for the lock to save its cursor: the state a kill
    must find. (The web server's reads, the report and ``/health``, take no lock.)"""

    exact = True

    def __init__(self, path: Path) -> None:
        self.descriptor = open_writer_lock(path)
        fcntl.flock(self.descriptor, fcntl.LOCK_EX)

    def step(self) -> None:
        fcntl.flock(self.descriptor, fcntl.LOCK_UN)
        time.sleep(0.0005)  # a runner waiting for it takes it (the kernel wakes it at once)
        fcntl.flock(self.descriptor, fcntl.LOCK_EX)

    def close(self) -> None:
        os.close(self.descriptor)


class FreezeHold:
    """Firestore: the runner frozen (SIGSTOP), let run (SIGCONT) a few milliseconds at a
    time. A write it sent before it froze may still land while it is held."""

    exact = False

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self._freeze()

    def _freeze(self) -> None:
        os.killpg(self.process.pid, signal.SIGSTOP)
        wait_for(lambda: stopped(self.process.pid), "the runner stopped", 5, every=0.001)

    def step(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)
        time.sleep(random.uniform(0, FREEZE_GAP_SECONDS))
        self._freeze()

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGCONT)


def stopped(pid: int) -> bool:
    """Whether every thread of process ``pid`` is stopped (one in a system call stops once
    out of it), or it is gone."""
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            if (task / "stat").read_text().rsplit(")", 1)[1].split()[0] not in "tTZX":
                return False
    return True


@attrs.frozen
class Kill:
    counted: int
    """The figures counted when it was killed (added up)."""
    expected: int
    """The figures of the whole backlog (added up)."""
    messages_ahead: int
    """Messages it had counted past its saved cursor: the next runner is handed them again."""


def counted_ahead(client: httpx.Client, view: StoreView, expected: Expected) -> tuple[int, int]:
    """The figures counted (added up), and how many messages of them are past the cursor
    the subscriber saved."""
    totals = report(client)["totals"]
    messages = expected.messages_in + expected.messages_out
    before_cursor = messages - view.messages_past_cursor()
    return progress(totals), totals["messages_in"] + totals["messages_out"] - before_cursor


def kill_while_counting(
    inbox: Deployment,
    client: httpx.Client,
    view: StoreView,
    hold: Callable[[subprocess.Popen[bytes]], Hold],
    floor: int,
    expected: Expected,
) -> Kill | None:
    """Start a runner on the backlog, hold it, and kill it (kill -9) once it has counted
    more than ``floor``, less than the whole, and messages past the cursor it saved; None
    when it counted the whole backlog first. The runner is left dead."""
    runner = WorkerProcess(inbox.server).start()
    inbox.runners[0] = runner
    process = runner.process
    assert process is not None
    target = expected.progress()
    held = hold(process)  # the killed runner's lease holds 3 s: it has not begun
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, f"never counting:\n{runner.log()[-3000:]}"
            held.step()
            counted, ahead = progress(report(client)["totals"]), 0
            if counted > floor:  # counting (the last runner's lease has expired)
                counted, ahead = counted_ahead(client, view, expected)
            if counted >= target or (counted > floor and ahead > 0):
                kill_process_group(process)
                break
    finally:
        held.close()
    if not held.exact:
        time.sleep(0.5)  # what it sent before it died has landed
        counted, ahead = counted_ahead(client, view, expected)
    return None if counted >= target else Kill(counted, target, ahead)


def hold_for(database: Any) -> Callable[[subprocess.Popen[bytes]], Hold]:
    """How a runner on ``database`` is held: by its writer lock on SQLite, else frozen."""
    if database.backend == "sqlite":
        return lambda _process: WriterLockHold(database.path)
    return FreezeHold


def caught_up(client: httpx.Client, expected: Expected) -> bool:
    """Whether the subscriber has handled every event logged (and resynced, when asked),
    and counted at least the workload's figures."""
    health = client.get("/health").json()["subscribers"][SUBSCRIBER]
    if not health["started"] or health["resyncing"] or health["failures"]:
        return False
    return health["lag_seconds"] == 0 and progress(report(client)["totals"]) >= expected.progress()


def wait_for(check: Callable[[], bool], what: str, seconds: float, every: float = 0.1) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(every)


def expected_days(
    client: httpx.Client, expected: Expected, zone: ZoneInfo
) -> dict[date, Counter[str]]:
    """Where each figure falls, by day of the business's zone: each message where it was
    stored, each cycle where its customer's first message (or the reopening) was, each
    resolution where it was made, as the store timed them."""
    days: dict[date, Counter[str]] = {}

    def add(at: str, figure: str) -> None:
        day = datetime.fromisoformat(at).astimezone(zone).date()
        days.setdefault(day, Counter())[figure] += 1

    for conversation_id in expected.conversations:
        path = f"/api/conversations/{conversation_id}"
        messages = client.get(f"{path}/messages", params={"limit": 200}).json()["items"]
        history = client.get(f"{path}/history", params={"limit": 200}).json()["items"]
        inbound = sorted(m["created_at"] for m in messages if m["direction"] == "inbound")
        add(inbound[0], "conversations_opened")
        for message in messages:
            figure = "messages_in" if message["direction"] == "inbound" else "messages_out"
            add(message["created_at"], figure)
        for change in history:
            if change["status"] == "resolved" and change["previous_status"] != "resolved":
                add(change["at"], "conversations_resolved")
            elif change["previous_status"] == "resolved" and change["status"] != "resolved":
                add(change["at"], "conversations_opened")
    return days


def run_command(inbox: Deployment, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omnichannel_core.cli", *arguments],
        env=inbox.server.env,
        cwd=inbox.server.workdir,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def without_time(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "as_of"}


def crash_rounds(
    inbox: Deployment,
    client: httpx.Client,
    database: Database,
    load: Load,
    say: Callable[[str], None],
) -> tuple[Expected, list[Kill]]:
    """Rounds of a workload counted by a runner killed part way, until ``load.kills``
    kills; what the workload sent, and the kills. The runner is left dead."""
    expected, counted = Expected(), 0
    kills: list[Kill] = []
    view = StoreView(database)
    try:
        for _ in range(MAX_ROUNDS):
            send_workload(client, expected, load)
            say(f"backlog of {expected.progress() - counted} to count")
            kill = kill_while_counting(inbox, client, view, hold_for(database), counted, expected)
            if kill is None:
                say("counted whole before it was caught counting: one more round")
                counted = expected.progress()
                continue
            say(f"killed at {kill.counted} of {kill.expected}, {kill.messages_ahead} ahead")
            assert counted < kill.counted < kill.expected, kill
            counted = kill.counted
            if kill.messages_ahead <= 0:
                # Frozen as it saved its cursor, which landed after it was read.
                say("it had saved its cursor after all: one more round")
                continue
            kills.append(kill)
            if len(kills) == load.kills:
                return expected, kills
    finally:
        view.close()
    raise AssertionError(f"{MAX_ROUNDS} rounds made {len(kills)} kills of {load.kills}")


@pytest.fixture
def database(request: pytest.FixtureRequest, backend: str) -> Database:
    """The store the server runs on (the kit's fixture: a new file, or a new project on the
    Firestore emulator, its address set for this test)."""
    return request.getfixturevalue(f"{backend}_database")


def store_url(database: Any) -> str:
    """``OMNICHANNEL_STORE`` for the kit's database: its file, or its emulator project."""
    if database.backend == "sqlite":
        return f"sqlite:///{database.path.resolve()}"
    return f"firestore://{database.settings.project}"


# Alone, as the outbox's SQLite crash run: a held runner, and its leases of 3 s, are at the
# mercy of the other workers' load (one frozen and let run a few milliseconds at a time may
# lose them).
@pytest.mark.alone
@pytest.mark.parametrize("backend", ["sqlite", "firestore"])
def test_figures_stay_exact_across_kill_9_of_the_counting_runner(
    tmp_path: Path, backend: str, database: Database
) -> None:
    """The job runner killed (kill -9) while it counts a backlog of a few hundred messages,
    replies and resolutions, each time with messages counted past its saved cursor, which
    the next is handed again: once the last runner caught up, the report has exactly the
    messages in and out, the conversations opened and resolved, the first responses and
    resolutions the workload made, in total and per day, and a rebuild from the store
    answers the same report."""
    started = time.monotonic()

    def say(what: str) -> None:
        print(f"{time.monotonic() - started:5.1f}s {what}")

    with FakeProvider() as receiver:
        env = {
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "HTTP_CHANNEL_SEND_URL": receiver.url + "/inbound",
            "OMNICHANNEL_STORE": store_url(database),
            "OMNICHANNEL_JOB_LEASE_SECONDS": "3",
            "OMNICHANNEL_SEND_LEASE_SECONDS": "3",
        }
        inbox = Deployment(tmp_path, env, workers=1, runners=1)
        try:
            with inbox.client() as client:
                # The runner's first start builds the (empty) rollups; then it is killed,
                # so that each round's workload waits in the log.
                wait_for(lambda: caught_up(client, Expected()), "first rebuild", 30)
                assert inbox.runners[0].process is not None
                kill_process_group(inbox.runners[0].process)
                expected, kills = crash_rounds(inbox, client, database, LOADS[backend], say)
                inbox.runners[0] = WorkerProcess(inbox.server).start()
                wait_for(lambda: caught_up(client, expected), "caught up", SETTLE_SECONDS)
                say("caught up")
                days = expected_days(client, expected, ZoneInfo(report(client)["timezone"]))
                period = (min(days), max(days))
                counted_report = report(client, period)
                rebuilt = run_command(inbox, "dashboard", "rebuild", "--timeout", "60")
                assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
                say("rebuilt")
                rebuilt_report = report(client, period)
        finally:
            inbox.stop()

    totals = counted_report["totals"]
    assert {name: totals[name] for name in FIGURES} == expected.figures(), (
        f"after {len(kills)} kills: {kills}"
    )
    assert totals["first_response"]["count"] == expected.first_responses
    assert totals["resolution"]["count"] == expected.conversations_resolved
    by_day = {
        datetime.fromisoformat(bucket["start"]).date(): {
            name: bucket["figures"][name] for name in FIGURES
        }
        for bucket in counted_report["buckets"]
    }
    assert by_day == {day: {name: days[day][name] for name in FIGURES} for day in days}
    assert without_time(rebuilt_report) == without_time(counted_report)

"""The dashboard at 1,000,000 messages over 30 days: what the rollups cost per event, and
how long a 30-day dashboard call takes through the real server, each beside a baseline.

    .venv/bin/python -m bench.dashboard [--messages N] [--per-event N] [--calls N]
        [--budget S] [--workers W] [--profile] [--workdir DIR] [--json]

1. The store: the real server (``omnichannel serve`` through
   ``omnichannel_core.testing.server``) is started once on a fresh folder, so that it
   creates its database and its dashboard subscriber makes its first-start rebuild (of an
   empty inbox), then stopped; the bench then opens that file as the server does
   (``SqliteDatabase``, ``SqliteDashboardStore``) to fill it.
2. Facts: N messages' worth of the dashboard's facts (``MessageFact``, ``ChangeFact``: what
   the subscriber makes of ``message.created`` and ``conversation.updated``), generated
   from a fixed seed over the 30 days to now: about N / 10 conversations across four
   channels and twenty agents, the customer's messages, an away message at night,
   assignments, first responses (agents' or an API key's), replies, conversations put
   pending and opened again, resolutions and reopenings days later. Conversations still
   running now stay open.
3. The rebuild path: every fact but the last ``--per-event`` (in time order) applied as
   ``Rollups.rebuild`` applies them, the facts of ``REBUILD_PAGE`` conversations per call
   of ``SqliteDashboardStore.apply``, keys kept from 73 hours ago (the event log's 72 and
   ``KEY_MARGIN``): facts per second.
4. The subscriber's path: the last ``--per-event`` facts applied one per call, each its own
   transaction (one committed write, as the subscriber hands each event over); beside them,
   interleaved in blocks of :data:`BLOCK`, the baseline: as many plain ``INSERT`` of one row
   into a table of the same file, one per transaction, through the same
   ``SqliteDatabase.write`` (the cheapest durable write there). Microseconds per event,
   wall and CPU, and the percentiles of one write.
5. The calls: the server started again on that store (its subscriber, started before, does
   not rebuild it); after one untimed round, up to ``--calls`` rounds of ``GET /health``
   (the baseline), ``GET /api/dashboard`` and ``GET /api/dashboard/report`` for the 30
   days to today by day and by hour, taking turns: median and p95 of each. A call whose
   timed runs add up to ``--budget`` seconds is not asked again once it ran three times.

Checked: the report's totals over the 30 days are the generator's (messages in and out,
conversations opened and resolved), so neither path lost or doubled a fact and the server's
start did not rebuild the store. Any failed check prints ``FAILED: ...`` and exits 1.
``--profile`` adds a cProfile of the 30-day reports by day and by hour, in this process (their
reads run on this thread, so SQLite's time shows). See docs/benchmarks.md ("Dashboard").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import math
import os
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import attrs
import httpx

from bench.command import BenchmarkFailed, run_command
from omnichannel_core.module import AuthorKind, ConversationStatus, to_json, utcnow
from omnichannel_core.module.sqlite import SqliteDatabase
from omnichannel_core.modules.dashboard.records import ChangeFact, Fact, Interval, MessageFact
from omnichannel_core.modules.dashboard.report import Period, report
from omnichannel_core.modules.dashboard.rollups import KEY_MARGIN, REBUILD_PAGE, SUBSCRIBER
from omnichannel_core.modules.dashboard.sqlite import SqliteDashboardStore
from omnichannel_core.modules.dashboard.store import dashboard_store_spec
from omnichannel_core.testing.server import API_KEY, ServerProcess

T = TypeVar("T")

SEED = 18
DAYS = 30
CHANNELS = ("twilio", "facebook", "email", "webchat")
CHANNEL_WEIGHTS = (40, 25, 15, 20)
AGENTS = tuple(f"usr_agent{number:02d}" for number in range(1, 21))
AGENT_WEIGHTS = tuple(30 - number for number in range(20))
"""Some agents take more conversations than others."""
BOT = "key_bot"
"""The API key a bot answers unassigned conversations with."""
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 4, 8, 12, 14, 14, 13, 11, 12, 13, 13, 12, 10, 8, 6, 5, 4, 2, 1)
"""When conversations start, by hour of the business's day."""
OPEN_HOURS = range(8, 20)
"""Outside these hours the customer's first message gets an away message."""
EVENT_LOG_HOURS = 72
"""The event log's longest retention (``OMNICHANNEL_EVENT_RETENTION_MAX_HOURS``): a rebuild
keeps the keys of facts since then, less ``KEY_MARGIN``."""
BLOCK = 500
"""Events per block of the subscriber's path, each followed by as many baseline writes."""
BASELINE_TABLE = "bench_plain_writes"
SUBSCRIBER_TIMEOUT_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 1800.0
MIN_RUNS = 3
"""The fewest timed runs of a call, whatever its budget."""
OPEN, PENDING, RESOLVED = (
    ConversationStatus.OPEN,
    ConversationStatus.PENDING,
    ConversationStatus.RESOLVED,
)


# the facts --------------------------------------------------------------------------------


@attrs.frozen
class Generated:
    """The facts, and what the report over the 30 days must count of them."""

    conversations: list[list[Fact]]
    """Each conversation's facts in its own order, conversations in id order (as a
    rebuild's scan of the inbox reads them)."""
    ordered: list[Fact]
    """Every fact in the order the event log would hand them over (by time)."""
    expected: dict[str, int]
    first: date
    last: date


class Script:
    """One conversation as it happens: its facts, appended in time order, none at or after
    ``end`` or past the message budget."""

    def __init__(
        self, number: int, channel: str, end: datetime, budget: int, ids: Iterator[int]
    ) -> None:
        self.id = f"cnv_{number:07d}"
        self.channel = channel
        self.end = end
        self.budget = budget
        self.ids = ids
        self.facts: list[Fact] = []
        self.messages = 0
        self.status = OPEN
        self.assignee: str | None = None
        self.over = False

    def _room(self, at: datetime) -> bool:
        if at >= self.end:
            self.over = True
        return not self.over

    def _after(self, at: datetime) -> datetime:
        """``at``, or the last fact's time if that is later: a conversation's facts are in
        time order."""
        return max(at, self.facts[-1].at) if self.facts else at

    def message(
        self, at: datetime, inbound: bool, kind: AuthorKind | None = None, author: str | None = None
    ) -> bool:
        at = self._after(at)
        if not self._room(at) or self.messages >= self.budget:
            self.over = True
            return False
        self.facts.append(
            MessageFact(
                f"msg_{next(self.ids):09d}", self.id, self.channel, at, inbound, kind, author
            )
        )
        self.messages += 1
        return True

    def change(self, at: datetime, status: ConversationStatus, assignee: str | None = None) -> bool:
        at = self._after(at)
        if not self._room(at):
            return False
        self.assignee = assignee if assignee is not None else self.assignee
        self.facts.append(
            ChangeFact(
                f"chg_{next(self.ids):09d}",
                self.id,
                self.channel,
                at,
                status,
                self.status,
                self.assignee,
            )
        )
        self.status = status
        return True


def _seconds(draw: random.Random, mean: float) -> timedelta:
    return timedelta(seconds=draw.expovariate(1 / mean))


def _exchange(
    script: Script, draw: random.Random, at: datetime, replies: int, agent: str
) -> datetime:
    """``replies`` rounds of the customer writing and the agent answering; the time after."""
    for _ in range(replies):
        at += _seconds(draw, 240)
        if script.status is PENDING:
            # the customer's message comes first, then the inbox opens the conversation
            if not script.message(at, inbound=True) or not script.change(at, OPEN):
                return at
        elif not script.message(at, inbound=True):
            return at
        at += _seconds(draw, 90) + timedelta(seconds=5)
        if not script.message(at, inbound=False, kind=AuthorKind.USER, author=agent):
            return at
        if draw.random() < 0.1:
            at += timedelta(seconds=2)
            if not script.change(at, PENDING):
                return at
    return at


def _conversation(script: Script, draw: random.Random, start: datetime, zone: ZoneInfo) -> None:
    """A conversation: the customer writes, maybe an away message, an assignment, a first
    response, some back and forth, a resolution, and maybe a reopening days later."""
    at = start
    if not script.message(at, inbound=True):
        return
    if draw.random() < 0.3:
        at += timedelta(seconds=draw.uniform(5, 60))
        if not script.message(at, inbound=True):
            return
    away = start.astimezone(zone).hour not in OPEN_HOURS and draw.random() < 0.9
    if away and not script.message(at + timedelta(seconds=1), False, AuthorKind.AUTOMATION):
        return
    agent = draw.choices(AGENTS, AGENT_WEIGHTS)[0]
    if draw.random() < 0.9:
        if not script.change(at + _seconds(draw, 120), OPEN, agent):
            return
        kind, author = AuthorKind.USER, agent
    elif draw.random() < 0.5:
        kind, author = AuthorKind.API_KEY, BOT
    else:
        kind, author = AuthorKind.USER, agent  # answered without taking it
    at = max(script.facts[-1].at, at) + timedelta(seconds=draw.lognormvariate(math.log(180), 1.2))
    if not script.message(at, inbound=False, kind=kind, author=author):
        return
    replies = max(0, round(draw.expovariate(1 / 3.5)))
    at = _exchange(script, draw, at, replies, agent)
    for round_number in range(3):
        if draw.random() >= (0.96 if round_number == 0 else 0.85):
            return  # still running
        at += _seconds(draw, 900)
        if not script.change(at, RESOLVED, script.assignee):
            return
        if draw.random() >= 0.12:
            return
        at += _seconds(draw, 86_400)  # the customer writes again, a day later on average
        if not script.message(at, inbound=True) or not script.change(at, OPEN):
            return
        at += timedelta(seconds=draw.lognormvariate(math.log(300), 1.0))
        if not script.message(at, inbound=False, kind=AuthorKind.USER, author=agent):
            return
        at = _exchange(script, draw, at, draw.randint(0, 3), agent)


def _start_of(draw: random.Random, first: datetime, end: datetime, zone: ZoneInfo) -> datetime:
    """A conversation's start: a day of the 30, an hour weighted by :data:`HOUR_WEIGHTS`, at
    least a minute before ``end``."""
    while True:
        day = first.astimezone(zone).date() + timedelta(days=draw.randrange(DAYS))
        hour = draw.choices(range(24), HOUR_WEIGHTS)[0]
        local = datetime(day.year, day.month, day.day, hour, tzinfo=zone)
        at = (local + timedelta(seconds=draw.uniform(0, 3600))).astimezone(UTC)
        if first <= at < end - timedelta(minutes=1):
            return at


def expected_counts(conversations: Sequence[Sequence[Fact]]) -> dict[str, int]:
    """What the report's totals must say: messages in and out, and the cycles opened and
    resolved (a cycle opens on the customer's message, a user's, or a status made active
    while none runs; it ends on a resolution)."""
    counts = dict.fromkeys(("messages_in", "messages_out", "opened", "resolved"), 0)
    for facts in conversations:
        running = False
        for fact in facts:
            if isinstance(fact, MessageFact):
                counts["messages_in" if fact.inbound else "messages_out"] += 1
                opens = fact.inbound or fact.author_kind is AuthorKind.USER
            elif fact.status is RESOLVED:
                if fact.previous_status is not RESOLVED:
                    counts["resolved"] += 1
                running = False
                continue
            else:
                opens = True
            if opens and not running:
                counts["opened"] += 1
                running = True
    return counts


def generate(messages: int, zone: ZoneInfo, end: datetime, seed: int = SEED) -> Generated:
    """Facts holding ``messages`` messages, from the start of the day 29 days before
    ``end``'s (in ``zone``) to ``end``."""
    draw = random.Random(seed)
    last = end.astimezone(zone).date()
    first = last - timedelta(days=DAYS - 1)
    window_start = datetime(first.year, first.month, first.day, tzinfo=zone).astimezone(UTC)
    ids = iter(range(1, 10**9))
    conversations: list[list[Fact]] = []
    made = 0
    while made < messages:
        channel = draw.choices(CHANNELS, CHANNEL_WEIGHTS)[0]
        budget = min(messages - made, 40)
        script = Script(len(conversations) + 1, channel, end, budget, ids)
        _conversation(script, draw, _start_of(draw, window_start, end, zone), zone)
        made += script.messages
        conversations.append(script.facts)
    every = [fact for facts in conversations for fact in facts]
    # by time; within a conversation (and an instant) in its own order, which the stable
    # sort keeps from the flat list: a message before the change it causes
    ordered = sorted(every, key=lambda fact: fact.at)
    return Generated(conversations, ordered, expected_counts(conversations), first, last)


# the store --------------------------------------------------------------------------------


def database_of(workdir: Path) -> Path:
    """The server's store (``OMNICHANNEL_DATA_DIR``'s ``omnichannel.db``: the default of
    ``OMNICHANNEL_STORE``)."""
    return workdir / "data" / "omnichannel.db"


def server_settings(workdir: Path) -> dict[str, str | None]:
    """What the bench's servers get beyond ``ServerProcess``'s own settings: inherited
    ``OMNICHANNEL_*`` variables it does not set are dropped (a developer's store or
    settings must not change what is measured); warnings only in the log."""
    everything_dropped = {name: None for name in os.environ}
    own = ServerProcess(workdir, everything_dropped).env  # what it sets itself
    settings: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("OMNICHANNEL_") and name not in own
    }
    settings["OMNICHANNEL_LOG_LEVEL"] = "warning"
    return settings


@contextlib.contextmanager
def running(workdir: Path, workers: int) -> Iterator[ServerProcess]:
    """The real server on ``workdir``, stopped (by its process group) at the end; its log's
    tail on stderr when something fails."""
    server = ServerProcess(workdir, server_settings(workdir), workers=workers)
    try:
        server.start()
    except RuntimeError as error:
        raise BenchmarkFailed(str(error)[-4000:]) from None
    try:
        yield server
    except BaseException:
        sys.stderr.write(f"--- server log ---\n{server.log()[-4000:]}\n")
        raise
    finally:
        server.stop()


def subscriber_caught_up(database: Path) -> bool:
    """Whether the dashboard's subscriber has a state, is not behind and has no resync
    still to make (its first-start rebuild done: ``resynced``, written once a resync
    ends, at least ``resync_asked``), read from the jobs store's table, read-only."""
    if not database.exists():
        return False
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        row = connection.execute(
            "SELECT * FROM subscriber_cursors WHERE name = ?", (SUBSCRIBER,)
        ).fetchone()
    except sqlite3.OperationalError:  # not migrated yet
        return False
    finally:
        connection.close()
    state = {} if row is None else dict(row)
    if not state or state["behind"]:
        return False
    return int(state.get("resynced") or 0) >= int(state.get("resync_asked") or 0)


def client_of(server: ServerProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=REQUEST_TIMEOUT_SECONDS,
    )


def first_start(workdir: Path, workers: int) -> dict[str, Any]:
    """Start the server on a fresh folder (it creates and migrates its store), wait until
    the dashboard's subscriber has made its first-start rebuild, read the business's zone
    and first response target from a report, and stop it."""
    with running(workdir, workers) as server, client_of(server) as client:
        deadline = time.monotonic() + SUBSCRIBER_TIMEOUT_SECONDS
        while not subscriber_caught_up(database_of(workdir)):
            if time.monotonic() > deadline:
                raise BenchmarkFailed(
                    f"the subscriber {SUBSCRIBER} did not finish its first-start rebuild in"
                    f" {SUBSCRIBER_TIMEOUT_SECONDS:.0f} s"
                )
            time.sleep(0.2)
        answer = client.get("/api/dashboard/report")
        if answer.status_code != 200:
            raise BenchmarkFailed(f"GET /api/dashboard/report answered {answer.status_code}")
        body = answer.json()
    return {"timezone": body["timezone"], "sla_minutes": body["first_response_sla_minutes"]}


async def opened_store(database: Path) -> tuple[SqliteDatabase, SqliteDashboardStore]:
    """The server's file opened as the server opens it (its schema checked current)."""
    opened = SqliteDatabase(database)
    await opened.migrate([dashboard_store_spec()])
    await opened.open()
    return opened, SqliteDashboardStore(opened)


def _cpu() -> float:
    return time.process_time()  # every thread of this process: the commits' too


async def rebuild_path(
    store: SqliteDashboardStore, conversations: Sequence[Sequence[Fact]], sla: timedelta
) -> dict[str, Any]:
    """Apply ``conversations``' facts as ``Rollups.rebuild`` does: ``REBUILD_PAGE``
    conversations' facts per call."""
    await store.clear("UTC")
    keep_keys = utcnow() - timedelta(hours=EVENT_LOG_HOURS) - KEY_MARGIN
    calls: list[float] = []
    facts = counted = 0
    cpu, started = _cpu(), time.perf_counter()
    for first in range(0, len(conversations), REBUILD_PAGE):
        page = [fact for each in conversations[first : first + REBUILD_PAGE] for fact in each]
        began = time.perf_counter()
        counted += await store.apply(page, sla, keep_keys)
        calls.append(time.perf_counter() - began)
        facts += len(page)
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    return {
        "conversations": len(conversations),
        "facts": facts,
        "counted": counted,
        "calls": len(calls),
        "seconds": seconds,
        "facts_per_second": facts / seconds if seconds else 0.0,
        "us_per_fact": seconds / facts * 1e6 if facts else 0.0,
        "cpu_us_per_fact": cpu / facts * 1e6 if facts else 0.0,
        "call_ms": _spread(calls),
    }


async def subscriber_path(
    database: SqliteDatabase, store: SqliteDashboardStore, facts: Sequence[Fact], sla: timedelta
) -> dict[str, Any]:
    """``facts`` applied one per call (a transaction each, as the subscriber applies an
    event), and as many plain one-row INSERTs, one per transaction, in blocks that take
    turns."""

    def create(connection: sqlite3.Connection) -> None:
        connection.execute(f"CREATE TABLE {BASELINE_TABLE} (key TEXT NOT NULL, at TEXT NOT NULL)")

    await database.write(create)
    keep_all = datetime(1970, 1, 1, tzinfo=UTC)  # the subscriber's: every key kept
    applied: list[float] = []
    plain: list[float] = []
    cpu = {"apply": 0.0, "insert": 0.0}
    counted = 0
    for first in range(0, len(facts), BLOCK):
        block = facts[first : first + BLOCK]
        started = _cpu()
        for fact in block:
            began = time.perf_counter()
            counted += await store.apply([fact], sla, keep_all)
            applied.append(time.perf_counter() - began)
        cpu["apply"] += _cpu() - started
        started = _cpu()
        for fact in block:
            row = (fact.key, fact.at.isoformat())

            def insert(connection: sqlite3.Connection, row: tuple[str, str] = row) -> None:
                connection.execute(f"INSERT INTO {BASELINE_TABLE} (key, at) VALUES (?, ?)", row)

            began = time.perf_counter()
            await database.write(insert)
            plain.append(time.perf_counter() - began)
        cpu["insert"] += _cpu() - started

    def drop(connection: sqlite3.Connection) -> None:
        connection.execute(f"DROP TABLE {BASELINE_TABLE}")

    await database.write(drop)
    return {
        "events": len(facts),
        "counted": counted,
        "apply": _write_figures(applied, cpu["apply"]),
        "insert": _write_figures(plain, cpu["insert"]),
    }


def _write_figures(runs: list[float], cpu: float) -> dict[str, Any]:
    total = sum(runs)
    return {
        "seconds": total,
        "us_per_event": total / len(runs) * 1e6 if runs else 0.0,
        "cpu_us_per_event": cpu / len(runs) * 1e6 if runs else 0.0,
        "ms": _spread(runs),
    }


def store_sizes(database: Path) -> dict[str, int]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        sizes = {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in (
                "dashboard_rollups",
                "dashboard_days",
                "dashboard_hours",
                "dashboard_conversations",
                "dashboard_counted",
            )
        }
    finally:
        connection.close()
    sizes["file_bytes"] = sum(
        path.stat().st_size
        for path in database.parent.glob(database.name + "*")
        if not path.name.endswith(".lock")
    )
    return sizes


async def fill(
    workdir: Path, generated: Generated, per_event: int, sla: timedelta
) -> dict[str, Any]:
    """The rebuild path for the facts before the last ``per_event``, then the subscriber's
    for those."""
    cut = len(generated.ordered) - per_event
    later = {id(fact) for fact in generated.ordered[cut:]}
    earlier = [[f for f in facts if id(f) not in later] for facts in generated.conversations]
    database, store = await opened_store(database_of(workdir))
    try:
        rebuilt = await rebuild_path(store, earlier, sla)
        written = await subscriber_path(database, store, generated.ordered[cut:], sla)
    finally:
        await database.close()
    return {"rebuild": rebuilt, "subscriber": written, "store": store_sizes(database_of(workdir))}


# the calls --------------------------------------------------------------------------------


@attrs.frozen
class Call:
    name: str
    path: str
    params: dict[str, str] = attrs.field(factory=dict)


def calls_of(generated: Generated) -> list[Call]:
    period = {"start": generated.first.isoformat(), "end": generated.last.isoformat()}
    return [
        Call("GET /health (baseline)", "/health"),
        Call("GET /api/dashboard", "/api/dashboard"),
        Call(
            f"GET /api/dashboard/report, {DAYS} days by day",
            "/api/dashboard/report",
            {**period, "interval": "day"},
        ),
        Call(
            f"GET /api/dashboard/report, {DAYS} days by hour",
            "/api/dashboard/report",
            {**period, "interval": "hour"},
        ),
    ]


def time_calls(
    client: httpx.Client, calls: list[Call], rounds: int, budget: float
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each call ``rounds`` times, taking turns, after one untimed round; a call whose
    timed runs add up to ``budget`` seconds stops there once it has :data:`MIN_RUNS`. The
    figures of each, and the day report's last answer."""
    runs: dict[str, list[float]] = {call.name: [] for call in calls}
    sizes: dict[str, int] = {}
    last: dict[str, Any] = {}

    def timed(call: Call) -> float:
        began = time.perf_counter()
        answer = client.get(call.path, params=call.params)
        seconds = time.perf_counter() - began
        if answer.status_code != 200:
            raise BenchmarkFailed(f"{call.name} answered {answer.status_code}: {answer.text[:300]}")
        sizes[call.name] = len(answer.content)
        if call.params.get("interval") == "day":
            last.update(answer.json())
        return seconds

    for call in calls:
        timed(call)  # warm-up
    for _ in range(rounds):
        due = [
            call
            for call in calls
            if len(runs[call.name]) < MIN_RUNS or sum(runs[call.name]) < budget
        ]
        if not due:
            break
        for call in due:
            runs[call.name].append(timed(call))
    figures = [
        {
            "target": call.name,
            "runs": len(runs[call.name]),
            "bytes": sizes[call.name],
            "ms": _spread(runs[call.name]),
        }
        for call in calls
    ]
    return figures, last


def period_of(generated: Generated, interval: Interval) -> Period:
    return Period(generated.first, generated.last, interval)


class InlineDatabase:
    """A read-only stand-in for ``SqliteDatabase`` whose reads run on the calling thread, so
    that cProfile (which sees one thread) sees SQLite's time too."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        self.connection.row_factory = sqlite3.Row

    async def read(self, function: Callable[[sqlite3.Connection], T]) -> T:
        return function(self.connection)


def profile_report(
    workdir: Path,
    generated: Generated,
    zone: ZoneInfo,
    sla: timedelta,
    interval: Interval,
    top: int = 25,
) -> str:
    """A cProfile of the 30-day report by ``interval`` and its serialization, in this
    process."""
    inline = InlineDatabase(database_of(workdir))
    store = SqliteDashboardStore(inline)  # type: ignore[arg-type]  # reads only
    period = period_of(generated, interval)

    async def once() -> None:
        to_json(await report(store, period, zone, sla, utcnow()))

    try:
        asyncio.run(once())  # warm: the file's pages in the cache
        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(once())
        profiler.disable()
    finally:
        inline.connection.close()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def counting_problems(rebuilt: dict[str, Any], written: dict[str, Any]) -> list[str]:
    found = []
    if rebuilt["counted"] != rebuilt["facts"]:
        found.append(f"rebuild path: {rebuilt['counted']} of {rebuilt['facts']} facts counted")
    if written["counted"] != written["events"]:
        found.append(f"subscriber path: {written['counted']} of {written['events']} counted")
    return found


def total_problems(answer: dict[str, Any], expected: dict[str, int]) -> list[str]:
    totals = answer["totals"]
    got = {
        "messages_in": totals["messages_in"],
        "messages_out": totals["messages_out"],
        "opened": totals["conversations_opened"],
        "resolved": totals["conversations_resolved"],
    }
    if got != expected:
        return [f"the {DAYS}-day report counts {got}, the generator made {expected}"]
    return []


# the run ----------------------------------------------------------------------------------


def _spread(runs: list[float]) -> dict[str, float]:
    """Median, p95 and p99 (nearest rank) and max, in milliseconds."""
    if not runs:
        return {"median": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(runs)

    def rank(fraction: float) -> float:
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] * 1000

    return {
        "median": statistics.median(ordered) * 1000,
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": ordered[-1] * 1000,
    }


def measure(args: argparse.Namespace, workdir: Path, results: dict[str, Any]) -> None:
    business = first_start(workdir, args.workers)
    zone, sla = ZoneInfo(business["timezone"]), timedelta(minutes=business["sla_minutes"])
    started = time.perf_counter()
    generated = generate(args.messages, zone, utcnow())
    facts = len(generated.ordered)
    if args.per_event >= facts:
        raise BenchmarkFailed(f"--per-event {args.per_event}: only {facts} facts were made")
    results["data"] = {
        **business,
        "first_day": generated.first.isoformat(),
        "last_day": generated.last.isoformat(),
        "conversations": len(generated.conversations),
        "facts": facts,
        "channels": len(CHANNELS),
        "agents": len(AGENTS),
        "expected": generated.expected,
        "generated_in_seconds": time.perf_counter() - started,
    }
    results.update(asyncio.run(fill(workdir, generated, args.per_event, sla)))
    results["problems"] += counting_problems(results["rebuild"], results["subscriber"])
    results["load_average_before_calls"] = os.getloadavg()
    with running(workdir, args.workers) as server, client_of(server) as client:
        results["targets"], answer = time_calls(
            client, calls_of(generated), args.calls, args.budget
        )
    results["problems"] += total_problems(answer, generated.expected)
    if args.profile:
        results["profile"] = {
            str(interval): profile_report(workdir, generated, zone, sla, interval)
            for interval in (Interval.DAY, Interval.HOUR)
        }


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {
            "messages": args.messages,
            "per_event": args.per_event,
            "calls": args.calls,
            "budget_seconds": args.budget,
            "workers": args.workers,
            "rebuild_page": REBUILD_PAGE,
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
            "cpus": os.cpu_count(),
        },
        "load_average_at_start": os.getloadavg(),
        "targets": [],
        "problems": [],
    }
    if args.workdir is not None:
        results["workdir"] = str(args.workdir)
        measure(args, args.workdir, results)
        return results
    with tempfile.TemporaryDirectory(prefix="omnichannel-dashboard-bench-") as folder:
        measure(args, Path(folder) / "server", results)
    return results


# output -----------------------------------------------------------------------------------


def render(results: dict[str, Any]) -> str:
    data, settings, sizes = results["data"], results["settings"], results["store"]
    load = " / ".join(f"{value:.2f}" for value in results["load_average_at_start"])
    lines = [
        f"dashboard: {settings['messages']:,} messages over {DAYS} days"
        f" ({data['first_day']} to {data['last_day']}, {data['timezone']}):"
        f" {data['conversations']:,} conversations, {data['channels']} channels,"
        f" {data['agents']} agents, {data['facts']:,} facts; SLA {data['sla_minutes']} min;"
        f" load at start {load}",
        f"store after: {sizes['dashboard_rollups']:,} quarter-hour rows,"
        f" {sizes['dashboard_hours']:,} hour rows, {sizes['dashboard_days']:,} day rows,"
        f" {sizes['dashboard_conversations']:,} conversations,"
        f" {sizes['dashboard_counted']:,} counted keys; {sizes['file_bytes'] / 1e6:.0f} MB",
    ]
    rebuilt = results["rebuild"]
    lines += [
        "",
        f"rebuild path ({rebuilt['calls']:,} calls of apply, {settings['rebuild_page']}"
        f" conversations' facts each): {rebuilt['facts']:,} facts in"
        f" {rebuilt['seconds']:.1f} s = {rebuilt['facts_per_second']:,.0f} facts/s"
        f" ({rebuilt['us_per_fact']:.0f} us/fact, CPU {rebuilt['cpu_us_per_fact']:.0f} us/fact);"
        f" a call median {rebuilt['call_ms']['median']:.0f} ms, p95"
        f" {rebuilt['call_ms']['p95']:.0f} ms",
    ]
    written = results["subscriber"]
    lines += [
        "",
        f"subscriber path: the last {written['events']:,} facts, one per transaction,"
        f" beside as many plain INSERTs (blocks of {BLOCK} taking turns)",
        f"{'write':<42} {'us/event':>9} {'CPU us':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}",
    ]
    for label, key in (
        ("SqliteDashboardStore.apply, one fact", "apply"),
        ("plain INSERT of one row (baseline)", "insert"),
    ):
        figures = written[key]
        lines.append(
            f"{label:<42} {figures['us_per_event']:>9.0f} {figures['cpu_us_per_event']:>7.0f}"
            f" {figures['ms']['median']:>7.2f} {figures['ms']['p95']:>7.2f}"
            f" {figures['ms']['p99']:>7.2f}"
        )
    apply, insert = written["apply"], written["insert"]
    lines.append(
        f"the rollups add {apply['us_per_event'] - insert['us_per_event']:.0f} us per event"
        f" ({apply['us_per_event'] / insert['us_per_event']:.2f}x the baseline), CPU"
        f" {apply['cpu_us_per_event'] - insert['cpu_us_per_event']:.0f} us"
    )
    load = " / ".join(f"{value:.2f}" for value in results["load_average_before_calls"])
    lines += [
        "",
        f"calls through the server ({settings['workers']} workers), taking turns, up to"
        f" {settings['calls']} of each (fewer, at least {MIN_RUNS}, past"
        f" {settings['budget_seconds']:.0f} s of one call's time); load before {load}",
        f"{'call':<46} {'runs':>4} {'median ms':>10} {'p95 ms':>9} {'max ms':>9} {'bytes':>8}",
    ]
    for target in results["targets"]:
        lines.append(
            f"{target['target']:<46} {target['runs']:>4} {target['ms']['median']:>10.1f}"
            f" {target['ms']['p95']:>9.1f} {target['ms']['max']:>9.1f} {target['bytes']:>8}"
        )
    for interval, profile in results.get("profile", {}).items():
        lines += ["", f"cProfile of the {DAYS}-day report by {interval}, in-process:", profile]
    lines.append("")
    for problem in results["problems"]:
        lines.append(f"FAILED: {problem}")
    if not results["problems"]:
        lines.append(
            "checks: every fact counted once on both paths; the report's totals are the"
            f" generator's {data['expected']}: OK"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dashboard",
        description="The dashboard's rollups per event beside a plain write, and a 30-day"
        " dashboard call through the real server beside /health.",
    )
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages over the 30 days")
    parser.add_argument(
        "--per-event",
        type=int,
        default=20_000,
        help="the last facts applied one per transaction (the rest by the rebuild path)",
    )
    parser.add_argument("--calls", type=int, default=50, help="timed calls of each")
    parser.add_argument(
        "--budget",
        type=float,
        default=300.0,
        help=f"seconds of one call's timed runs after which it stops (after {MIN_RUNS} runs)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="add a cProfile of the 30-day reports by day and by hour",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="run in this new folder and keep it (the server's store, its log)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    if not 1_000 <= args.messages <= 10_000_000:
        parser.error("--messages must be between 1000 and 10000000")
    if not 1 <= args.per_event <= args.messages:
        parser.error("--per-event must be between 1 and --messages")
    if not 1 <= args.calls <= 1_000:
        parser.error("--calls must be between 1 and 1000")
    if args.budget <= 0:
        parser.error("--budget must be above 0")
    if args.workdir is not None and args.workdir.exists() and any(args.workdir.iterdir()):
        parser.error("--workdir must be a new or empty folder")
    if not 1 <= args.workers <= 16:
        parser.error("--workers must be between 1 and 16")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_command(parse_args(argv), run, render)


if __name__ == "__main__":
    raise SystemExit(main())

"""The dashboard's store on SQLite and on the Firestore emulator: one contract for both
backends (facts counted once, the keys kept and forgotten, the rollups summed into a
report's buckets, the days' and the local hours' tiers, the conversations waiting, clearing
it all, the steps that bring a store counted before the hours' tier up to date)."""

from __future__ import annotations

import json
import random
import sqlite3
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest

from omnichannel_core.module import AuthorKind, ConversationStatus
from omnichannel_core.modules.dashboard.durations import bin_of
from omnichannel_core.modules.dashboard.firestore_steps import count_the_hours
from omnichannel_core.modules.dashboard.records import (
    BUCKET,
    NO_BIN,
    TOTAL,
    ChangeFact,
    ConversationState,
    Fact,
    HourRow,
    Interval,
    MessageFact,
    Metric,
)
from omnichannel_core.modules.dashboard.report import Period, Tally, bucket_starts, report
from omnichannel_core.modules.dashboard.store import (
    UTC_ZONE,
    Clock,
    DashboardStore,
    RollupRow,
    dashboard_store_spec,
)
from omnichannel_core.store.sqlite.database import SqliteDatabase
from omnichannel_core.testing.stores import run_store

STORE = dashboard_store_spec()
START = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)
"""The start of a quarter hour: the first rollup bucket of every report here."""
SLA = timedelta(seconds=60)
KEEP_ALL = datetime(1970, 1, 1, tzinfo=UTC)
"""``keep_keys`` that keeps every fact's key (the subscriber's)."""
OPEN, PENDING, RESOLVED = (
    ConversationStatus.OPEN,
    ConversationStatus.PENDING,
    ConversationStatus.RESOLVED,
)
IN, OUT, OPENED = Metric.MESSAGES_IN, Metric.MESSAGES_OUT, Metric.OPENED
FIRST, BREACHED = Metric.FIRST_RESPONSE, Metric.SLA_BREACHED
DONE, RESOLUTION = Metric.RESOLVED, Metric.RESOLUTION

Figures = dict[tuple[int, str, str, Metric, int], int]


@pytest.fixture(params=["sqlite", "firestore"])
def database(request: pytest.FixtureRequest) -> Any:
    """A fresh database of each backend (the kit's fixtures)."""
    return request.getfixturevalue(f"{request.param}_database")


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def inbound(message_id: str, conversation_id: str, seconds: float, channel: str = "sms") -> Any:
    return MessageFact(message_id, conversation_id, channel, at(seconds), inbound=True)


def outbound(
    message_id: str,
    conversation_id: str,
    seconds: float,
    author: str | None = "usr_1",
    kind: AuthorKind = AuthorKind.USER,
    channel: str = "sms",
) -> MessageFact:
    return MessageFact(
        message_id,
        conversation_id,
        channel,
        at(seconds),
        inbound=False,
        author_kind=kind,
        author_id=author,
    )


def change(
    change_id: str,
    conversation_id: str,
    seconds: float,
    assignee: str | None,
    status: ConversationStatus = RESOLVED,
    previous: ConversationStatus = OPEN,
    channel: str = "sms",
) -> ChangeFact:
    return ChangeFact(change_id, conversation_id, channel, at(seconds), status, previous, assignee)


def figures(rows: list[RollupRow]) -> Figures:
    """The rows as ``{(bucket, channel, agent, metric, bin): count}`` (each key once)."""
    found = {(r.bucket, r.channel, r.agent, r.metric, r.bin): r.count for r in rows}
    assert len(found) == len(rows), rows
    return found


async def first_quarter(store: DashboardStore, **filters: Any) -> Figures:
    """The figures of the quarter hour from START, as one report bucket."""
    return figures(await store.rollups([START, at(900)], **filters))


def test_a_fact_is_counted_once_however_often_it_is_handed_over(database):
    """``apply`` folds the facts as ``fold`` defines: a customer's message then a user's
    reply 90 s later are a message in and one out, a conversation opened, a first response
    in bin 90 and, with an SLA of 60 s, a breach (with one of 120 s, none). The same facts
    again, in one call or another, count nothing; a fact twice in one call counts once.
    ``apply`` says how many it counted."""

    async def scenario(store: DashboardStore) -> None:
        facts = [inbound("m1", "cv_1", 0), outbound("m2", "cv_1", 90)]
        assert await store.apply(facts, SLA, KEEP_ALL) == 2
        expected = {
            (0, "", "", IN, NO_BIN): 1,
            (0, "", "", OPENED, NO_BIN): 1,
            (0, "", "usr_1", OUT, NO_BIN): 1,
            (0, "", "usr_1", FIRST, 90): 1,
            (0, "", "usr_1", BREACHED, NO_BIN): 1,
        }
        assert await first_quarter(store, by_agent=True) == expected

        assert await store.apply(facts, SLA, KEEP_ALL) == 0
        assert await store.apply(facts[1:], SLA, KEEP_ALL) == 0
        twice = inbound("m3", "cv_2", 100)
        assert await store.apply([facts[0], twice, twice], SLA, KEEP_ALL) == 1
        later = [inbound("m4", "cv_3", 200), outbound("m5", "cv_3", 290)]
        assert await store.apply(later, timedelta(seconds=120), KEEP_ALL) == 2
        expected |= {
            (0, "", "", IN, NO_BIN): 3,
            (0, "", "", OPENED, NO_BIN): 3,
            (0, "", "usr_1", OUT, NO_BIN): 2,
            (0, "", "usr_1", FIRST, 90): 2,
        }
        assert await first_quarter(store, by_agent=True) == expected

    run_store(STORE, database, scenario)


def test_the_key_of_a_fact_before_keep_keys_is_not_kept(database):
    """A fact before ``keep_keys`` is counted but its key is not kept (the event log no
    longer has it, so it is not handed over again): were it applied again, it would be
    counted again. One at ``keep_keys`` or after is kept, and counted once."""
    keep_keys = at(60)

    async def scenario(store: DashboardStore) -> None:
        old = inbound("m1", "cv_1", 0)
        assert await store.apply([old], SLA, keep_keys) == 1
        assert await store.apply([old], SLA, keep_keys) == 1
        kept = inbound("m2", "cv_1", 60)
        assert await store.apply([kept], SLA, keep_keys) == 1
        assert await store.apply([kept, old], SLA, keep_keys) == 1
        assert await first_quarter(store) == {
            (0, "", "", IN, NO_BIN): 4,
            (0, "", "", OPENED, NO_BIN): 1,  # one cycle, however many messages
        }

    run_store(STORE, database, scenario)


def test_rollups_are_summed_into_the_reports_buckets_filtered_and_kept_apart(database):
    """``rollups`` sums the rows of the quarter hours from ``starts[0]`` (included) to
    ``starts[-1]`` (excluded) into the report's buckets (by index), per metric and bin;
    with a channel or an agent (``""``: no one's) only theirs; kept apart per channel or
    agent only when asked (otherwise those are ``""``). A breach counts in the bucket the
    wait started, a resolution time in the bucket of the resolution. Starts in another
    zone are the same instants; fewer than two starts, or a filter no row has, give no
    rows."""
    facts = [
        inbound("m0", "cv_0", -60),  # 08:59: before the report
        inbound("m1", "cv_1", 0),
        outbound("m2", "cv_1", 30),
        inbound("m3", "cv_2", 1200, channel="whatsapp"),
        outbound("m4", "cv_2", 1290, author="usr_2", channel="whatsapp"),
        inbound("m5", "cv_3", 2100),
        change("c1", "cv_3", 2400, "usr_1"),  # 5 minutes on, unanswered
        inbound("m6", "cv_4", 3600),  # 10:00: the report's end
    ]
    paris = timezone(timedelta(hours=2))
    starts = [at(0).astimezone(paris), at(1800).astimezone(paris), at(3600)]

    async def scenario(store: DashboardStore) -> None:
        assert await store.apply(facts, SLA, KEEP_ALL) == len(facts)
        assert figures(await store.rollups(starts)) == {
            (0, "", "", IN, NO_BIN): 2,
            (0, "", "", OPENED, NO_BIN): 2,
            (0, "", "", OUT, NO_BIN): 2,
            (0, "", "", FIRST, 30): 1,
            (0, "", "", FIRST, 90): 1,
            (0, "", "", BREACHED, NO_BIN): 1,
            (1, "", "", IN, NO_BIN): 1,
            (1, "", "", OPENED, NO_BIN): 1,
            (1, "", "", DONE, NO_BIN): 1,
            (1, "", "", RESOLUTION, 300): 1,
            (1, "", "", BREACHED, NO_BIN): 1,
        }
        assert figures(await store.rollups(starts, channel="sms")) == {
            (0, "", "", IN, NO_BIN): 1,
            (0, "", "", OPENED, NO_BIN): 1,
            (0, "", "", OUT, NO_BIN): 1,
            (0, "", "", FIRST, 30): 1,
            (1, "", "", IN, NO_BIN): 1,
            (1, "", "", OPENED, NO_BIN): 1,
            (1, "", "", DONE, NO_BIN): 1,
            (1, "", "", RESOLUTION, 300): 1,
            (1, "", "", BREACHED, NO_BIN): 1,
        }
        assert figures(await store.rollups(starts, agent="usr_1")) == {
            (0, "", "", OUT, NO_BIN): 1,
            (0, "", "", FIRST, 30): 1,
            (1, "", "", DONE, NO_BIN): 1,
            (1, "", "", RESOLUTION, 300): 1,
            (1, "", "", BREACHED, NO_BIN): 1,
        }
        assert figures(await store.rollups(starts, agent="")) == {
            (0, "", "", IN, NO_BIN): 2,
            (0, "", "", OPENED, NO_BIN): 2,
            (1, "", "", IN, NO_BIN): 1,
            (1, "", "", OPENED, NO_BIN): 1,
        }
        whatsapp = await store.rollups(starts, channel="whatsapp", by_channel=True, by_agent=True)
        assert figures(whatsapp) == {
            (0, "whatsapp", "", IN, NO_BIN): 1,
            (0, "whatsapp", "", OPENED, NO_BIN): 1,
            (0, "whatsapp", "usr_2", OUT, NO_BIN): 1,
            (0, "whatsapp", "usr_2", FIRST, 90): 1,
            (0, "whatsapp", "usr_2", BREACHED, NO_BIN): 1,
        }
        by_channel = figures(await store.rollups(starts, by_channel=True))
        assert {key: n for key, n in by_channel.items() if key[0] == 0} == {
            (0, "sms", "", IN, NO_BIN): 1,
            (0, "whatsapp", "", IN, NO_BIN): 1,
            (0, "sms", "", OPENED, NO_BIN): 1,
            (0, "whatsapp", "", OPENED, NO_BIN): 1,
            (0, "sms", "", OUT, NO_BIN): 1,
            (0, "whatsapp", "", OUT, NO_BIN): 1,
            (0, "sms", "", FIRST, 30): 1,
            (0, "whatsapp", "", FIRST, 90): 1,
            (0, "whatsapp", "", BREACHED, NO_BIN): 1,
        }
        assert figures(await store.rollups(starts, agent="usr_2", by_agent=True)) == {
            (0, "", "usr_2", OUT, NO_BIN): 1,
            (0, "", "usr_2", FIRST, 90): 1,
            (0, "", "usr_2", BREACHED, NO_BIN): 1,
        }

        quarters = [at(900 * n) for n in range(5)]
        by_quarter = figures(await store.rollups(quarters, by_channel=True))
        assert {key[:2]: n for key, n in by_quarter.items() if key[3] is IN} == {
            (0, "sms"): 1,
            (1, "whatsapp"): 1,
            (2, "sms"): 1,
        }
        assert await store.rollups([START]) == []
        assert await store.rollups(starts, channel="email") == []
        assert await store.rollups(starts, agent="usr_" + "x" * 2000) == []

    run_store(STORE, database, scenario)


def test_conversations_waiting_come_oldest_first(database):
    """``waiting`` lists the conversations whose first response clock started before
    ``before`` and still runs, oldest first, at most ``limit``: not one answered, resolved,
    or answered only by an automation's message (which stops no clock).
    ``longest_waiting`` is the one whose customer has waited longest for any answer (after
    a first response the clock is stopped, but a new message of the customer's waits);
    None when nobody waits. States read back whole."""

    async def scenario(store: DashboardStore) -> None:
        assert await store.waiting(at(3600), 10) == []
        assert await store.longest_waiting() is None
        facts = [
            inbound("m1", "cv_1", 0),
            inbound("m2", "cv_5", 60),
            change("c1", "cv_5", 240, "usr_1"),
            inbound("m3", "cv_4", 120),
            outbound("m4", "cv_4", 180, author=None, kind=AuthorKind.AUTOMATION),
            inbound("m5", "cv_2", 300, channel="whatsapp"),
            outbound("m6", "cv_2", 360, author="usr_2", channel="whatsapp"),
            inbound("m7", "cv_3", 600),
            change("c2", "cv_3", 620, "usr_1", status=OPEN),
        ]
        assert await store.apply(facts, SLA, KEEP_ALL) == len(facts)
        cv_1 = ConversationState("cv_1", "sms", OPEN, None, at(0), at(0), False, at(0))
        cv_4 = ConversationState("cv_4", "sms", OPEN, None, at(120), at(120), False, at(120))
        cv_3 = ConversationState("cv_3", "sms", OPEN, "usr_1", at(600), at(600), False, at(600))
        assert await store.waiting(at(600), 10) == [cv_1, cv_4]
        assert await store.waiting(at(601), 10) == [cv_1, cv_4, cv_3]
        assert await store.waiting(at(601), 2) == [cv_1, cv_4]
        assert await store.longest_waiting() == cv_1

        later = [
            outbound("m8", "cv_1", 700),
            inbound("m9", "cv_2", 800, channel="whatsapp"),
            change("c3", "cv_2", 850, "usr_2", status=PENDING, channel="whatsapp"),
        ]
        assert await store.apply(later, SLA, KEEP_ALL) == 3
        assert await store.waiting(at(3600), 10) == [cv_4, cv_3]
        assert await store.longest_waiting() == cv_4

        answers = [outbound("m10", "cv_4", 900), outbound("m11", "cv_3", 910)]
        assert await store.apply(answers, SLA, KEEP_ALL) == 2
        assert await store.waiting(at(3600), 10) == []
        assert await store.longest_waiting() == ConversationState(
            "cv_2", "whatsapp", PENDING, "usr_2", at(300), None, True, at(800)
        )

    run_store(STORE, database, scenario)


def test_the_queue_counts_conversations_not_resolved(database):
    """``queue``: open and pending conversations, those assigned to nobody, and those of
    each agent asked about (an agent with none: 0); resolved ones are no part of it."""

    async def scenario(store: DashboardStore) -> None:
        facts = [
            inbound("m1", "cv_1", 0),
            inbound("m2", "cv_2", 10),
            change("c1", "cv_2", 20, "usr_1", status=OPEN),
            inbound("m3", "cv_3", 30),
            change("c2", "cv_3", 40, "usr_1", status=PENDING),
            inbound("m4", "cv_4", 50),
            change("c3", "cv_4", 60, "usr_2", status=RESOLVED),
            inbound("m5", "cv_5", 70),
            change("c4", "cv_5", 80, None, status=PENDING),
        ]
        await store.apply(facts, SLA, KEEP_ALL)
        queue = await store.queue(["usr_1", "usr_2", "usr_3"])
        assert (queue.open, queue.pending, queue.unassigned) == (2, 2, 2)
        assert queue.by_agent == {"usr_1": 2, "usr_2": 0, "usr_3": 0}
        assert (await store.queue([])).by_agent == {}

    run_store(STORE, database, scenario)


def test_clear_forgets_every_state_row_and_key(database, monkeypatch):
    """``clear`` forgets the states, the rollups (quarter hours, hours) and the counted keys
    (on Firestore in batches, here of 2): nothing waits, a report is empty, and the same
    facts count again from nothing."""
    if database.backend == "firestore":
        monkeypatch.setattr("omnichannel_core.modules.dashboard.firestore.BATCH", 2)
    facts = [inbound(f"m{n}", f"cv_{n}", n) for n in range(3)]

    async def scenario(store: DashboardStore) -> None:
        assert await store.apply(facts, SLA, KEEP_ALL) == 3
        await store.clear("UTC")
        assert await first_quarter(store) == {}
        assert await store.hours(at(0), at(3600), TOTAL) == []
        assert await store.waiting(at(3600), 10) == []
        assert await store.longest_waiting() is None
        assert await store.apply(facts, SLA, KEEP_ALL) == 3
        assert await first_quarter(store) == {
            (0, "", "", IN, NO_BIN): 3,
            (0, "", "", OPENED, NO_BIN): 3,
        }
        await store.clear("UTC")
        await store.clear("UTC")
        assert await first_quarter(store) == {}

    run_store(STORE, database, scenario)


def test_a_clear_without_a_zone_says_the_figures_are_not_whole(database):
    """A rebuild clears with no zone and names it only at its end (``counted_in``): one that
    dies half way leaves no zone, which the subscriber takes for a rebuild to do again."""

    async def scenario(store: DashboardStore) -> None:
        await store.clear("Asia/Kolkata")
        assert await store.zone() == "Asia/Kolkata"
        await store.clear(None)
        assert await store.zone() is None
        await store.counted_in("Europe/Madrid")
        assert await store.zone() == "Europe/Madrid"

    run_store(STORE, database, scenario)


def test_forget_keys_drops_the_keys_of_facts_before_a_time(database, monkeypatch):
    """``forget_keys`` drops the counted keys of facts before ``before`` (on Firestore in
    batches, here of 2) and says how many: those facts would count again, the later ones
    still not. The figures themselves stay."""
    if database.backend == "firestore":
        monkeypatch.setattr("omnichannel_core.modules.dashboard.firestore.BATCH", 2)
    facts = [inbound(f"m{n}", f"cv_{n}", 10 * n) for n in range(5)]

    async def scenario(store: DashboardStore) -> None:
        assert await store.apply(facts, SLA, KEEP_ALL) == 5
        assert await store.forget_keys(at(30)) == 3
        assert await store.forget_keys(at(30)) == 0
        assert await first_quarter(store) == {
            (0, "", "", IN, NO_BIN): 5,
            (0, "", "", OPENED, NO_BIN): 5,
        }
        assert await store.apply(facts, SLA, KEEP_ALL) == 3
        assert await first_quarter(store) == {
            (0, "", "", IN, NO_BIN): 8,
            (0, "", "", OPENED, NO_BIN): 5,
        }
        assert await store.forget_keys(at(3600)) == 5

    run_store(STORE, database, scenario)


def test_a_batch_of_any_size_is_folded_in_order(database, monkeypatch):
    """A batch of facts is folded in order, each once, whatever its size: on Firestore a
    batch needing more writes than one transaction takes is applied in several (tried here
    with transactions of 30 writes, the most a single fact needs), each reading the states
    and keys the one before wrote."""
    if database.backend == "firestore":
        monkeypatch.setattr("omnichannel_core.modules.dashboard.firestore.WRITES", 30)
    facts = []
    for n in range(8):
        agent = f"usr_{n % 2}"
        facts += [
            inbound(f"m{n}a", f"cv_{n}", 60 * n),
            outbound(f"m{n}b", f"cv_{n}", 60 * n + 90, author=agent),
            change(f"c{n}", f"cv_{n}", 60 * n + 120, agent),
        ]
    facts.append(facts[0])

    async def scenario(store: DashboardStore) -> None:
        assert await store.apply(facts, SLA, KEEP_ALL) == 24
        expected: Figures = {(0, "", "", IN, NO_BIN): 8, (0, "", "", OPENED, NO_BIN): 8}
        for agent in ("usr_0", "usr_1"):
            expected |= {
                (0, "", agent, OUT, NO_BIN): 4,
                (0, "", agent, FIRST, 90): 4,
                (0, "", agent, BREACHED, NO_BIN): 4,
                (0, "", agent, DONE, NO_BIN): 4,
                (0, "", agent, RESOLUTION, 120): 4,
            }
        assert await first_quarter(store, by_agent=True) == expected
        assert await store.longest_waiting() is None
        assert await store.apply(facts, SLA, KEEP_ALL) == 0
        assert await first_quarter(store, by_agent=True) == expected

    run_store(STORE, database, scenario)


def test_the_index_file_declares_the_dashboard_stores_composite_indexes():
    """firestore.indexes.json declares a composite index for each report query on
    Firestore that filters on a channel, an agent or both, or metrics, and a range of
    buckets (the emulator needs none, so only this test notices one missing)."""
    declared = json.loads((Path(__file__).parents[1] / "firestore.indexes.json").read_text())
    indexes = {
        tuple((field["fieldPath"], field["order"]) for field in index["fields"])
        for index in declared["indexes"]
        if index["collectionGroup"] == "dashboard_rollups"
    }
    up = "ASCENDING"
    assert indexes == {
        (("channel", up), ("bucket", up)),
        (("agent", up), ("bucket", up)),
        (("channel", up), ("agent", up), ("bucket", up)),
        (("metric", up), ("bucket", up)),  # the queue now: the messages of the last hour
    }


def test_days_are_counted_per_dimension_in_the_zone_asked(database):
    """The days' tier: per day of the zone given to ``apply``, the total, each channel and
    each agent (``agent:`` for no one's), each metric's count and a duration's bins; a day
    of Kolkata starts at 18:30 UTC the day before. ``clear`` names the zone, ``zone`` reads
    it back."""
    kolkata = ZoneInfo("Asia/Kolkata")
    late = START.replace(hour=18, minute=45)  # 00:15 the next day in Kolkata

    async def scenario(store: DashboardStore) -> None:
        assert await store.zone() is None
        await store.clear("Asia/Kolkata")
        assert await store.zone() == "Asia/Kolkata"
        facts = [
            MessageFact("m1", "cv_1", "sms", late, inbound=True),
            MessageFact(
                "m2",
                "cv_1",
                "sms",
                late + timedelta(seconds=30),
                inbound=False,
                author_kind=AuthorKind.USER,
                author_id="usr_1",
            ),
            inbound("m3", "cv_2", 0, channel="whatsapp"),
        ]
        assert await store.apply(facts, SLA, KEEP_ALL, kolkata) == 3
        day = START.date()
        rows = {
            (row.day, row.dimension, row.metric): (row.count, row.bins)
            for row in await store.days(day, day + timedelta(days=1))
        }
        next_day = day + timedelta(days=1)
        assert rows[(next_day, "", IN)] == (1, {})
        assert rows[(next_day, "", FIRST)] == (1, {30: 1})
        assert rows[(next_day, "agent:usr_1", FIRST)] == (1, {30: 1})
        assert rows[(next_day, "channel:sms", OUT)] == (1, {})
        assert rows[(next_day, "agent:", IN)] == (1, {})
        assert rows[(day, "channel:whatsapp", IN)] == (1, {})  # 14:30 in Kolkata
        assert (day, "channel:sms", IN) not in rows
        assert await store.days(day + timedelta(days=2), day + timedelta(days=3)) == []
        await store.clear("UTC")
        assert (await store.days(day, next_day), await store.zone()) == ([], "UTC")

    run_store(STORE, database, scenario)


def test_clocks_running_in_a_period(database):
    """``clocks``: the first response clocks still running that started in the period,
    with their channel and assignee; an answered one is no longer one."""

    async def scenario(store: DashboardStore) -> None:
        facts = [
            inbound("m1", "cv_1", 0),
            inbound("m2", "cv_2", 600, channel="whatsapp"),
            change("c1", "cv_2", 610, "usr_1", status=OPEN),
            inbound("m3", "cv_3", 1200),
            outbound("m4", "cv_3", 1300),
        ]
        await store.apply(facts, SLA, KEEP_ALL)
        found = await store.clocks(at(0), at(1800))
        assert sorted((c.started, c.channel, c.assignee) for c in found) == [
            (at(0), "sms", None),
            (at(600), "whatsapp", "usr_1"),
        ]
        assert [c.started for c in await store.clocks(at(1), at(1800))] == [at(600)]
        assert await store.clocks(at(0), at(0)) == []

    run_store(STORE, database, scenario)


def test_a_report_does_not_count_a_wait_answered_while_it_reads_twice(database):
    """A response folded between a report's read of the running waits and its read of the
    rollups would count its wait twice: running past the target, and answered past it. The
    report reads the running waits again after the rollups, and reads all again when they
    moved: one breach, the response's."""

    class AnswersWhileRead:
        def __init__(self, store: DashboardStore) -> None:
            self.store, self.answered = store, False

        def __getattr__(self, name: str) -> Any:
            return getattr(self.store, name)

        async def clocks(self, since: datetime, before: datetime) -> list[Clock]:
            found = await self.store.clocks(since, before)
            if not self.answered:
                self.answered = True
                await self.store.apply([outbound("m2", "cv_1", 900)], SLA, KEEP_ALL)
            return found

    async def scenario(store: DashboardStore) -> None:
        await store.clear("UTC")
        await store.apply(
            [inbound("m1", "cv_1", 0), change("c1", "cv_1", 1, "usr_1", OPEN)], SLA, KEEP_ALL
        )
        period = Period(START.date(), START.date(), Interval.DAY)
        read = await report(AnswersWhileRead(store), period, UTC_ZONE, SLA, at(1000))
        assert read.totals.sla_breaches == 1
        assert read.totals.first_response.count == 1
        breaches = {each.user_id: each.figures.sla_breaches for each in read.agents}
        assert breaches == {"usr_1": 1, None: 0}

    run_store(STORE, database, scenario)


def local_hours(rows: list[HourRow], zone: ZoneInfo, metric: Metric = IN) -> Counter[str]:
    """The counts of ``metric`` per hour, each named by its start in ``zone``."""
    return Counter(
        {
            row.hour.astimezone(zone).isoformat(timespec="minutes"): row.count
            for row in rows
            if row.metric is metric
        }
    )


HOURS_CASES = [
    (
        "Australia/Lord_Howe",  # back half an hour, 02:00 +11 to 01:30 +10:30, at 15:00 UTC
        date(2025, 4, 5),
        [
            (datetime(2025, 4, 5, 12, 50), "2025-04-05T23:00+11:00"),
            (datetime(2025, 4, 5, 13, 20), "2025-04-06T00:00+11:00"),
            (datetime(2025, 4, 5, 14, 50), "2025-04-06T01:00+11:00"),
            (datetime(2025, 4, 5, 15, 10), "2025-04-06T01:30+10:30"),
            (datetime(2025, 4, 5, 15, 25), "2025-04-06T01:30+10:30"),
            (datetime(2025, 4, 5, 15, 35), "2025-04-06T02:00+10:30"),
        ],
    ),
    (
        "Australia/Lord_Howe",  # forward half an hour, 02:00 +10:30 to 02:30 +11, at 15:30 UTC
        date(2025, 10, 4),
        [
            (datetime(2025, 10, 4, 13, 25), "2025-10-04T23:00+10:30"),
            (datetime(2025, 10, 4, 13, 35), "2025-10-05T00:00+10:30"),
            (datetime(2025, 10, 4, 15, 20), "2025-10-05T01:00+10:30"),
            (datetime(2025, 10, 4, 15, 40), "2025-10-05T02:30+11:00"),
            (datetime(2025, 10, 4, 15, 55), "2025-10-05T02:30+11:00"),
            (datetime(2025, 10, 4, 16, 5), "2025-10-05T03:00+11:00"),
        ],
    ),
    (
        "Europe/Paris",  # back an hour, 03:00 +02 to 02:00 +01, at 01:00 UTC
        date(2025, 10, 25),
        [
            (datetime(2025, 10, 25, 21, 59), "2025-10-25T23:00+02:00"),
            (datetime(2025, 10, 25, 22, 1), "2025-10-26T00:00+02:00"),
            (datetime(2025, 10, 26, 0, 30), "2025-10-26T02:00+02:00"),
            (datetime(2025, 10, 26, 1, 30), "2025-10-26T02:00+01:00"),
            (datetime(2025, 10, 26, 2, 0), "2025-10-26T03:00+01:00"),
        ],
    ),
    (
        "Europe/Paris",  # forward an hour, 02:00 +01 to 03:00 +02, at 01:00 UTC
        date(2025, 3, 29),
        [
            (datetime(2025, 3, 29, 22, 59), "2025-03-29T23:00+01:00"),
            (datetime(2025, 3, 30, 0, 59), "2025-03-30T01:00+01:00"),
            (datetime(2025, 3, 30, 1, 0), "2025-03-30T03:00+02:00"),
        ],
    ),
    (
        "Asia/Kolkata",  # +05:30: hours start at half past in UTC
        date(2025, 5, 1),
        [
            (datetime(2025, 5, 1, 18, 29), "2025-05-01T23:00+05:30"),
            (datetime(2025, 5, 1, 18, 30), "2025-05-02T00:00+05:30"),
            (datetime(2025, 5, 1, 19, 29, 59), "2025-05-02T00:00+05:30"),
        ],
    ),
]
"""Per zone, the first of two local days, and messages (their UTC time) with the local
hour each counts in: across midnight, and across a daylight-saving shift."""


def test_hours_are_counted_per_local_hour_across_midnight_and_daylight_saving(database):
    """The hours' tier: per local hour of the zone given to ``apply`` (`hours.py`), each
    dimension's counts. Across midnight, in a zone 5:30 off UTC, across a shift of an hour
    either way (the hour skipped has no row; the hour shown twice is two), and of half an
    hour (Australia/Lord_Howe: the half hour shown twice is an hour of its own; going
    forward, the hour from 02:30 lasts half an hour). Every row's hour is the start of an
    hourly report's bucket; ``hours`` reads one dimension, from ``since`` to before
    ``before``."""

    async def scenario(store: DashboardStore) -> None:
        for name, first, messages in HOURS_CASES:
            zone = ZoneInfo(name)
            await store.clear(name)
            facts = [
                MessageFact(f"m{n}", f"cv_{n}", "sms", when.replace(tzinfo=UTC), inbound=True)
                for n, (when, _) in enumerate(messages)
            ]
            assert await store.apply(facts, SLA, KEEP_ALL, zone) == len(facts)
            starts = bucket_starts(first, first + timedelta(days=1), Interval.HOUR, zone)
            expected = Counter(hour for _, hour in messages)
            for dimension in (TOTAL, "channel:sms", "agent:"):
                rows = await store.hours(starts[0], starts[-1], dimension)
                assert local_hours(rows, zone) == expected, (name, dimension)
                assert {row.hour for row in rows} <= set(starts[:-1]), name
                assert all(row.dimension == dimension for row in rows)
            assert await store.hours(starts[0], starts[-1], "channel:whatsapp") == []
            last = max(row.hour for row in await store.hours(starts[0], starts[-1], TOTAL))
            assert await store.hours(starts[0], last, TOTAL) != []
            assert last not in {row.hour for row in await store.hours(starts[0], last, TOTAL)}

    run_store(STORE, database, scenario)


def test_an_hours_row_keeps_each_dimensions_count_and_bins(database):
    """An hour's rows per dimension (the total, the channel, the agent; ``agent:`` for no
    one's) keep a duration's bins: a reply 90 s after a message in the half hour Lord Howe
    shows twice counts, in that half hour, a first response in bin 90 and a breach (SLA
    60 s) for its agent; the resolution 25 minutes after the message, in the next hour."""
    zone = ZoneInfo("Australia/Lord_Howe")
    message = datetime(2025, 4, 5, 15, 10, tzinfo=UTC)  # 01:40 +10:30, the second time
    facts: list[Fact] = [
        MessageFact("m1", "cv_1", "sms", message, inbound=True),
        MessageFact(
            "m2",
            "cv_1",
            "sms",
            message + timedelta(seconds=90),
            inbound=False,
            author_kind=AuthorKind.USER,
            author_id="usr_1",
        ),
        ChangeFact(
            "c1", "cv_1", "sms", message + timedelta(minutes=25), RESOLVED, OPEN, "usr_1"
        ),  # 02:05 +10:30
    ]
    half_hour, next_hour = "2025-04-06T01:30+10:30", "2025-04-06T02:00+10:30"

    async def scenario(store: DashboardStore) -> None:
        await store.clear(zone.key)
        assert await store.apply(facts, SLA, KEEP_ALL, zone) == 3
        since, before = message - timedelta(hours=2), message + timedelta(hours=2)
        for dimension in (TOTAL, "channel:sms", "agent:usr_1"):
            rows = {
                (row.hour.astimezone(zone).isoformat(timespec="minutes"), row.metric): (
                    row.count,
                    row.bins,
                )
                for row in await store.hours(since, before, dimension)
                if row.metric is not IN and row.metric is not OPENED
            }
            assert rows == {
                (half_hour, OUT): (1, {}),
                (half_hour, FIRST): (1, {90: 1}),
                (half_hour, BREACHED): (1, {}),
                (next_hour, DONE): (1, {}),
                (next_hour, RESOLUTION): (1, {bin_of(1500): 1}),
            }, dimension
        no_ones = await store.hours(since, before, "agent:")
        assert local_hours(no_ones, zone) == Counter({half_hour: 1})
        assert local_hours(no_ones, zone, OPENED) == Counter({half_hour: 1})

    run_store(STORE, database, scenario)


def random_facts(
    draw: random.Random, start: datetime, end: datetime, conversations: int
) -> list[Fact]:
    """Conversations starting anywhere from an hour before ``start`` to an hour after
    ``end``, on two channels: a message, maybe an assignment, a reply by an agent or a
    program, maybe a resolution."""
    facts: list[Fact] = []
    seconds = (end - start).total_seconds()
    for n in range(conversations):
        cv, channel = f"cv_{n}", draw.choice(["sms", "whatsapp"])
        agent = draw.choice(["usr_1", "usr_2", None])
        when = start + timedelta(seconds=draw.uniform(-3600, seconds + 3600))
        facts.append(MessageFact(f"m{n}a", cv, channel, when, inbound=True))
        if agent and draw.random() < 0.5:
            when += timedelta(seconds=draw.expovariate(1 / 60))
            facts.append(ChangeFact(f"c{n}a", cv, channel, when, OPEN, OPEN, agent))
        if draw.random() < 0.8:
            when += timedelta(seconds=draw.expovariate(1 / 300))
            kind, author = (AuthorKind.USER, agent) if agent else (AuthorKind.API_KEY, "key_1")
            facts.append(MessageFact(f"m{n}b", cv, channel, when, False, kind, author))
        if draw.random() < 0.6:
            when += timedelta(seconds=draw.expovariate(1 / 1800))
            facts.append(ChangeFact(f"c{n}b", cv, channel, when, RESOLVED, OPEN, agent))
    return facts


async def from_quarters(
    store: DashboardStore, starts: list[datetime], channel: str | None, agent: str | None
) -> tuple[list[Any], Any, dict[str, Any], dict[str | None, Any]]:
    """A report's figures summed from the quarter hours alone: per bucket, in total, per
    channel, per agent."""
    buckets, total = [Tally() for _ in starts[1:]], Tally()
    for row in await store.rollups(starts, channel, agent):
        buckets[row.bucket].add(row.metric, row.bin, row.count)
        total.add(row.metric, row.bin, row.count)

    async def grouped(key: str) -> dict[str, Tally]:
        groups: dict[str, Tally] = defaultdict(Tally)
        by_channel, by_agent = key == "channel", key == "agent"
        for row in await store.rollups(starts, channel, agent, by_channel, by_agent):
            groups[getattr(row, key)].add(row.metric, row.bin, row.count)
        return groups

    by_channel = {channel: total} if channel is not None else await grouped("channel")
    by_agent = {agent: total} if agent is not None else await grouped("agent")
    return (
        [tally.figures() for tally in buckets],
        total.figures(),
        {name: tally.figures() for name, tally in by_channel.items()},
        {name or None: tally.figures() for name, tally in by_agent.items()},
    )


REPORT_ZONES = [
    ("Australia/Lord_Howe", date(2025, 4, 5), 1),
    ("Australia/Lord_Howe", date(2025, 10, 4), 2),
    ("Europe/Paris", date(2025, 10, 25), 3),
    ("America/St_Johns", date(2025, 3, 8), 4),  # -03:30, forward an hour on the 9th
    ("Asia/Kolkata", date(2025, 5, 1), 5),
]
"""Zones, the first of two local days, and a seed for the random facts."""


def test_an_hourly_report_is_the_quarter_hours_summed_per_local_hour(database):
    """On random facts (conversations opened, assigned, answered by agents and programs,
    resolved) around two local days with a daylight-saving shift or a half-hour offset,
    an hourly report read from the hours' tier, in total, of a channel, of an agent, and of
    no one's, has the figures of the quarter hours summed into its buckets (and its
    breakdown per channel and agent, from the days, theirs); its totals are the daily
    report's."""

    async def scenario(store: DashboardStore) -> None:
        for name, first, seed in REPORT_ZONES:
            zone = ZoneInfo(name)
            await store.clear(name)
            last = first + timedelta(days=1)
            starts = bucket_starts(first, last, Interval.HOUR, zone)
            facts = random_facts(random.Random(seed), starts[0], starts[-1], 40)
            assert await store.apply(facts, SLA, KEEP_ALL, zone) == len(facts)
            before = starts[0] - timedelta(days=1)  # no wait running then: no breach now
            filters = [(None, None), ("sms", None), (None, "usr_1"), (None, ""), ("sms", "")]
            for channel, agent in filters:
                period = Period(first, last, Interval.HOUR, channel, agent)
                hourly = await report(store, period, zone, SLA, before)
                assert (
                    [bucket.figures for bucket in hourly.buckets],
                    hourly.totals,
                    {each.channel: each.figures for each in hourly.channels},
                    {each.user_id: each.figures for each in hourly.agents},
                ) == await from_quarters(store, starts, channel, agent), (name, channel, agent)
                assert [bucket.start for bucket in hourly.buckets] == [
                    start.astimezone(zone).isoformat() for start in starts[:-1]
                ]
                daily = await report(
                    store, attrs.evolve(period, interval=Interval.DAY), zone, SLA, before
                )
                assert daily.totals == hourly.totals, (name, channel, agent)

    run_store(STORE, database, scenario)


def test_the_hours_step_adds_up_the_quarter_hours_counted_before_it(sqlite_database):
    """SQLite's step 2 gives a store counted before the hours' tier its hours, added up
    from its quarter hours in the zone its days are counted in: the rows counting the
    facts gives."""
    zone = ZoneInfo("Australia/Lord_Howe")
    first = date(2025, 4, 5)
    starts = bucket_starts(first, first + timedelta(days=1), Interval.HOUR, zone)
    facts = random_facts(random.Random(7), starts[0], starts[-1], 30)
    dimensions = (TOTAL, "channel:sms", "channel:whatsapp", "agent:", "agent:usr_1")

    async def every_hour(store: DashboardStore) -> list[HourRow]:
        rows = []
        for dimension in dimensions:
            rows += await store.hours(starts[0] - BUCKET * 8, starts[-1] + BUCKET * 8, dimension)
        return sorted(rows, key=lambda row: (row.hour, row.dimension, row.metric))

    async def count(store: DashboardStore) -> list[HourRow]:
        await store.clear(zone.key)
        await store.apply(facts, SLA, KEEP_ALL, zone)
        return await every_hour(store)

    counted = run_store(STORE, sqlite_database, count)
    assert counted
    connection = sqlite3.connect(sqlite_database.path)
    with connection:  # the store as step 1 left it
        connection.execute("DROP TABLE dashboard_hours")
        connection.execute("UPDATE store_versions SET version = 1 WHERE store = 'dashboard'")
    connection.close()
    assert run_store(STORE, SqliteDatabase(sqlite_database.path), every_hour) == counted


def test_the_firestore_step_has_a_store_counted_before_the_hours_counted_again(
    firestore_database,
):
    """Firestore's step 1 forgets the zone the figures were counted in: the subscriber
    counts them again (a rebuild, hours included) at its next event."""

    async def scenario(store: DashboardStore) -> None:
        await store.clear("Asia/Kolkata")
        assert await store.zone() == "Asia/Kolkata"
        await count_the_hours(firestore_database)
        await count_the_hours(firestore_database)  # safe to run twice
        assert await store.zone() is None

    run_store(STORE, firestore_database, scenario)

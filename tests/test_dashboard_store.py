"""The dashboard's store on SQLite and on the Firestore emulator: one contract for both
backends (facts counted once, the keys kept and forgotten, the rollups summed into a
report's buckets, the conversations waiting, clearing it all)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from omnichannel_core.module import AuthorKind, ConversationStatus
from omnichannel_core.modules.dashboard.records import (
    NO_BIN,
    ChangeFact,
    ConversationState,
    MessageFact,
    Metric,
)
from omnichannel_core.modules.dashboard.store import (
    DashboardStore,
    RollupRow,
    dashboard_store_spec,
)
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
    """``clear`` forgets the states, the rollups and the counted keys (on Firestore in
    batches, here of 2): nothing waits, a report is empty, and the same facts count again
    from nothing."""
    if database.backend == "firestore":
        monkeypatch.setattr("omnichannel_core.modules.dashboard.firestore.BATCH", 2)
    facts = [inbound(f"m{n}", f"cv_{n}", n) for n in range(3)]

    async def scenario(store: DashboardStore) -> None:
        assert await store.apply(facts, SLA, KEEP_ALL) == 3
        await store.clear("UTC")
        assert await first_quarter(store) == {}
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
    with transactions of 18 writes, the most a single fact needs), each reading the states
    and keys the one before wrote."""
    if database.backend == "firestore":
        monkeypatch.setattr("omnichannel_core.modules.dashboard.firestore.WRITES", 18)
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

"""The dashboard's definitions, in code: what each fact does to a conversation's state and
to the rollups (`modules.dashboard.fold`), and the duration histograms' precision."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from omnichannel_core.models import AuthorKind, ConversationStatus
from omnichannel_core.modules.dashboard.durations import (
    EXACT_SECONDS,
    bin_of,
    lower_edge,
    percentile,
)
from omnichannel_core.modules.dashboard.fold import fold
from omnichannel_core.modules.dashboard.records import (
    ChangeFact,
    ConversationState,
    Fact,
    Increment,
    MessageFact,
    Metric,
    bucket_of,
)

T0 = datetime(2026, 12, 5, 22, 58, tzinfo=UTC)
SLA = timedelta(minutes=15)
OPEN, PENDING, RESOLVED = (
    ConversationStatus.OPEN,
    ConversationStatus.PENDING,
    ConversationStatus.RESOLVED,
)


def inbound(seconds: float, n: int = 0) -> MessageFact:
    return MessageFact(f"in{seconds}-{n}", "cv", "sms", T0 + timedelta(seconds=seconds), True)


def outbound(seconds: float, kind: AuthorKind | None = AuthorKind.USER, who: str = "u1") -> Fact:
    return MessageFact(
        f"out{seconds}", "cv", "sms", T0 + timedelta(seconds=seconds), False, kind, who
    )


def change(seconds: float, status: ConversationStatus, previous: ConversationStatus) -> Fact:
    at = T0 + timedelta(seconds=seconds)
    return ChangeFact(f"c{seconds}", "cv", "sms", at, status, previous, "u1")


def run(*facts: Fact) -> tuple[ConversationState, list[Increment]]:
    state, added = None, []
    for fact in facts:
        state, more = fold(state, fact, SLA)
        added.extend(more)
    assert state is not None
    return state, added


def counted(added: list[Increment], metric: Metric) -> list[Increment]:
    return [each for each in added if each.metric is metric]


def test_a_customer_message_opens_a_cycle_and_a_reply_is_its_first_response() -> None:
    state, added = run(inbound(0), inbound(30, 1), outbound(150), outbound(400))
    [opened] = counted(added, Metric.OPENED)
    assert opened.bucket == bucket_of(T0)
    [first] = counted(added, Metric.FIRST_RESPONSE)
    assert (first.bin, first.agent, first.bucket) == (150, "u1", bucket_of(T0))
    assert counted(added, Metric.SLA_BREACHED) == []
    assert len(counted(added, Metric.MESSAGES_IN)) == 2
    assert [each.agent for each in counted(added, Metric.MESSAGES_OUT)] == ["u1", "u1"]
    assert state.waiting_since is None and state.responded


def test_an_automation_neither_answers_nor_opens() -> None:
    state, added = run(outbound(0, AuthorKind.AUTOMATION, "campaign"))
    assert counted(added, Metric.OPENED) == []
    assert state.cycle_start is None
    state, added = run(inbound(0), outbound(5, AuthorKind.AUTOMATION, "away_message"))
    assert counted(added, Metric.FIRST_RESPONSE) == []
    assert state.waiting_since == T0 and state.wait_start == T0
    [out] = counted(added, Metric.MESSAGES_OUT)
    assert out.agent == ""  # an automation is no agent


def test_a_program_answers_but_opens_nothing() -> None:
    _, added = run(outbound(0, AuthorKind.API_KEY, "key1"))
    assert counted(added, Metric.OPENED) == []
    _, added = run(inbound(0), outbound(70, AuthorKind.API_KEY, "key1"))
    [first] = counted(added, Metric.FIRST_RESPONSE)
    assert (first.bin, first.agent) == (70, "")


def test_a_late_answer_breaches_the_sla_in_the_bucket_the_wait_began() -> None:
    _, added = run(inbound(0), outbound(16 * 60 + 1))
    [breach] = counted(added, Metric.SLA_BREACHED)
    assert breach.bucket == bucket_of(T0) != bucket_of(T0 + timedelta(minutes=16))


def test_resolved_unanswered_past_the_sla_is_a_breach_and_ends_the_cycle() -> None:
    state, added = run(inbound(0), change(20 * 60, RESOLVED, OPEN))
    assert len(counted(added, Metric.SLA_BREACHED)) == 1
    [resolution] = counted(added, Metric.RESOLUTION)
    assert lower_edge(resolution.bin) <= 1200 < lower_edge(resolution.bin + 1)
    assert state.cycle_start is None and state.status is RESOLVED


def test_a_reopened_conversation_starts_a_new_cycle_once() -> None:
    # the contact's message, then the store's reopening change: one cycle, not two
    _, added = run(
        inbound(0),
        outbound(10),
        change(20, RESOLVED, OPEN),
        inbound(60),
        change(60, OPEN, RESOLVED),
    )
    assert len(counted(added, Metric.OPENED)) == 2
    assert len(counted(added, Metric.RESOLVED)) == 1
    # an agent reopening opens one too
    _, added = run(inbound(0), change(20, RESOLVED, OPEN), change(30, PENDING, RESOLVED))
    assert len(counted(added, Metric.OPENED)) == 2


def test_the_first_response_is_once_per_cycle() -> None:
    _, added = run(inbound(0), outbound(10), inbound(100, 1), outbound(2000))
    assert len(counted(added, Metric.FIRST_RESPONSE)) == 1


def test_durations_are_exact_to_ten_minutes_and_within_one_percent_above() -> None:
    for seconds in range(EXACT_SECONDS + 1):
        assert lower_edge(bin_of(seconds)) == seconds
    generator = random.Random(7)
    for seconds in (generator.randint(EXACT_SECONDS + 1, 10**8) for _ in range(5000)):
        edge = lower_edge(bin_of(seconds))
        assert edge <= seconds <= edge * 1.0101 + 1


def test_percentiles_by_nearest_rank() -> None:
    bins = {bin_of(s): 1 for s in (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)}
    assert percentile(bins, 0.5) == 50
    assert percentile(bins, 0.9) == 90
    assert percentile({}, 0.5) is None
    assert percentile({bin_of(7): 3}, 0.9) == 7


def test_a_change_opens_a_cycle_only_from_resolved() -> None:
    """Assigning a conversation a campaign started opens nothing; reopening does."""
    campaign = outbound(0, AuthorKind.AUTOMATION, "campaign")
    assigned = change(60, OPEN, OPEN)
    state, added = run(campaign, assigned)
    assert counted(added, Metric.OPENED) == [] and state.cycle_start is None


def test_a_word_after_resolving_opens_nothing_and_the_customer_still_reopens() -> None:
    facts = (inbound(0), outbound(10), change(20, RESOLVED, OPEN), outbound(30))
    state, added = run(*facts)
    assert len(counted(added, Metric.OPENED)) == 1 and state.cycle_start is None
    _, added = run(*facts, inbound(90, 1), change(90, OPEN, RESOLVED))
    assert len(counted(added, Metric.OPENED)) == 2


def test_an_auto_reply_of_the_customer_is_a_message_in_and_nothing_else() -> None:
    auto = MessageFact("auto", "cv", "sms", T0, True, automated=True)
    state, added = run(auto)
    assert [each.metric for each in added] == [Metric.MESSAGES_IN]
    assert (state.cycle_start, state.wait_start, state.waiting_since) == (None, None, None)

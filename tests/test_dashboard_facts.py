"""A conversation read whole from the store, as a rebuild reads it, made facts: in the order
they happened, and what it was before its history was kept (stored before this version)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from omnichannel_core.models import (
    Author,
    AuthorKind,
    Conversation,
    ConversationStatus,
    DeliveryStatus,
    Direction,
    Message,
)
from omnichannel_core.modules.dashboard.facts import facts_of
from omnichannel_core.modules.dashboard.fold import fold
from omnichannel_core.modules.dashboard.records import ChangeFact, MessageFact, Metric
from omnichannel_core.services import ConversationChange, ConversationRecord

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OPEN, PENDING, RESOLVED = (
    ConversationStatus.OPEN,
    ConversationStatus.PENDING,
    ConversationStatus.RESOLVED,
)


def reopening(at: datetime) -> ConversationChange:
    """The customer's message reopened it (stored as the store stores it)."""
    return ConversationChange("chg_1", "cv_1", at, OPEN, RESOLVED, None, None)


def message(n: int, minutes: float, inbound: bool, author: Author | None = None) -> Message:
    return Message(
        id=f"msg_{n}",
        conversation_id="cv_1",
        contact_id="ct_1",
        channel="sms",
        direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
        status=DeliveryStatus.RECEIVED if inbound else DeliveryStatus.SENT,
        created_at=T0 + timedelta(minutes=minutes),
        author=author,
    )


def conversation(status: ConversationStatus, assignee: str | None, last: float) -> Conversation:
    return Conversation(
        id="cv_1",
        contact_id="ct_1",
        channel="sms",
        address="+15550001",
        status=status,
        assignee=assignee,
        created_at=T0,
        last_activity_at=T0 + timedelta(minutes=last),
        updated_at=T0 + timedelta(minutes=last + 100),  # a mark-as-read, later
    )


def totals(record: ConversationRecord) -> dict[Metric, int]:
    state, counts = None, {}
    for fact in facts_of(record):
        state, added = fold(state, fact, timedelta(minutes=15))
        for each in added:
            counts[each.metric] = counts.get(each.metric, 0) + 1
    return counts


def test_facts_come_in_time_order_a_message_before_a_change_of_the_same_instant() -> None:
    reopened = ConversationChange(
        "chg_1", "cv_1", T0 + timedelta(minutes=5), OPEN, RESOLVED, None, None
    )
    record = ConversationRecord(
        conversation(OPEN, None, 5),
        (message(1, 0, True), message(2, 5, True)),
        (reopened,),
    )
    facts = facts_of(record)
    assert [type(fact) for fact in facts][-2:] == [MessageFact, ChangeFact]
    assert [fact.at for fact in facts] == sorted(fact.at for fact in facts)


def test_a_conversation_from_before_the_history_keeps_its_status_and_assignee() -> None:
    """Assigned and pending before the upgrade, no change since: so from its start."""
    record = ConversationRecord(conversation(PENDING, "usr_1", 1), (message(1, 0, True),), ())
    state = None
    for fact in facts_of(record):
        state, _ = fold(state, fact, timedelta(minutes=15))
    assert state is not None and (state.status, state.assignee) == (PENDING, "usr_1")


def test_resolved_before_the_history_then_reopened_counts_two_cycles() -> None:
    """Resolved before the upgrade (at its last message then), reopened after it by the
    customer: two cycles, each opened, the first resolved."""
    user = Author(AuthorKind.USER, "usr_1")
    reopened = ConversationChange(
        "chg_1", "cv_1", T0 + timedelta(days=1), OPEN, RESOLVED, None, None
    )
    record = ConversationRecord(
        conversation(OPEN, None, 24 * 60),
        (message(1, 0, True), message(2, 3, False, user), message(3, 24 * 60, True)),
        (reopened,),
    )
    counts = totals(record)
    assert (counts[Metric.OPENED], counts[Metric.RESOLVED]) == (2, 1)
    assert counts[Metric.FIRST_RESPONSE] == 1


def test_resolved_before_the_history_is_resolved_at_its_last_activity() -> None:
    record = ConversationRecord(conversation(RESOLVED, None, 3), (message(1, 0, True),), ())
    [*_, resolved] = facts_of(record)
    assert isinstance(resolved, ChangeFact) and resolved.at == T0 + timedelta(minutes=3)

"""What one fact does to a conversation's state and the rollups: the figures' definitions,
in code (docs/dashboard.md says them in words). Pure, so the event subscriber and a rebuild
from the store count alike.

A conversation is counted in *cycles*: a cycle starts when it opens (the customer writes, a
user writes first in a conversation not resolved, or it is reopened from resolved) and ends
when it is resolved. A customer's automated message (an out-of-office reply) is counted
among messages in, and does nothing else. Within a cycle the first
response clock starts at the customer's first message and stops at the first message of a
person or program after it; an automation's (an away message, a campaign) never stops it,
and neither starts a cycle.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from omnichannel_core.module import AuthorKind, ConversationStatus
from omnichannel_core.modules.dashboard.durations import bin_of
from omnichannel_core.modules.dashboard.records import (
    NO_AGENT,
    ChangeFact,
    ConversationState,
    Fact,
    Increment,
    MessageFact,
    Metric,
    bucket_of,
)

ACTIVE = frozenset({ConversationStatus.OPEN, ConversationStatus.PENDING})


def fold(
    state: ConversationState | None, fact: Fact, sla: timedelta
) -> tuple[ConversationState, list[Increment]]:
    """The conversation's state after ``fact``, and what it adds to the rollups; ``sla`` is
    the first response target in force."""
    if state is None:
        state = ConversationState(fact.conversation_id, fact.channel)
    if isinstance(fact, MessageFact):
        return _message(state, fact, sla)
    return _change(state, fact, sla)


def _count(at: datetime, state: ConversationState, agent: str | None, metric: Metric) -> Increment:
    return Increment(bucket_of(at), state.channel, agent or NO_AGENT, metric)


def _duration(
    at: datetime, state: ConversationState, agent: str | None, metric: Metric, seconds: float
) -> Increment:
    return Increment(bucket_of(at), state.channel, agent or NO_AGENT, metric, bin_of(seconds))


def _opened(state: ConversationState, at: datetime) -> tuple[ConversationState, Increment]:
    return (
        attrs.evolve(state, cycle_start=at, wait_start=None, responded=False),
        _count(at, state, state.assignee, Metric.OPENED),
    )


def _message(
    state: ConversationState, fact: MessageFact, sla: timedelta
) -> tuple[ConversationState, list[Increment]]:
    added: list[Increment] = []
    if fact.inbound:
        added.append(_count(fact.at, state, state.assignee, Metric.MESSAGES_IN))
        if fact.automated:  # an auto-reply (out of office): no one waits for an answer
            return state, added
        if state.cycle_start is None:
            state, opened = _opened(state, fact.at)
            added.append(opened)
        if state.wait_start is None and not state.responded:
            state = attrs.evolve(state, wait_start=fact.at)
        if state.waiting_since is None:
            state = attrs.evolve(state, waiting_since=fact.at)
        return state, added

    kind = fact.author_kind
    agent = fact.author_id if kind is AuthorKind.USER else None
    added.append(_count(fact.at, state, agent, Metric.MESSAGES_OUT))
    if kind is AuthorKind.AUTOMATION:
        return state, added  # an away message or a campaign answers no one
    if state.cycle_start is None and kind is AuthorKind.USER and state.status in ACTIVE:
        # a user writing first opens it; a word after resolving it (a "thanks, closing")
        # does not: the inbox leaves it resolved
        state, opened = _opened(state, fact.at)
        added.append(opened)
    if state.wait_start is not None:
        waited = (fact.at - state.wait_start).total_seconds()
        added.append(_duration(state.wait_start, state, agent, Metric.FIRST_RESPONSE, waited))
        if waited > sla.total_seconds():
            added.append(_count(state.wait_start, state, agent, Metric.SLA_BREACHED))
        state = attrs.evolve(state, responded=True, wait_start=None)
    return attrs.evolve(state, waiting_since=None), added


def _change(
    state: ConversationState, fact: ChangeFact, sla: timedelta
) -> tuple[ConversationState, list[Increment]]:
    added: list[Increment] = []
    state = attrs.evolve(state, assignee=fact.assignee)
    resolving = fact.status is ConversationStatus.RESOLVED
    if resolving and fact.previous_status is not ConversationStatus.RESOLVED:
        added.append(_count(fact.at, state, fact.assignee, Metric.RESOLVED))
        if state.cycle_start is not None:
            took = (fact.at - state.cycle_start).total_seconds()
            added.append(_duration(fact.at, state, fact.assignee, Metric.RESOLUTION, took))
        if state.wait_start is not None and fact.at - state.wait_start > sla:
            # left unanswered past the SLA: a breach, though no response will come
            added.append(_count(state.wait_start, state, fact.assignee, Metric.SLA_BREACHED))
        state = attrs.evolve(
            state, cycle_start=None, wait_start=None, responded=False, waiting_since=None
        )
    elif (
        fact.status in ACTIVE
        and fact.previous_status is ConversationStatus.RESOLVED
        and state.cycle_start is None
    ):
        state, opened = _opened(state, fact.at)
        added.append(opened)
    return attrs.evolve(state, status=fact.status), added

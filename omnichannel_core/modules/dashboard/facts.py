"""Facts, from the two places they come from: an event of the log (``message.created``, a
``conversation.updated`` naming a history entry), and a conversation read whole from the
store for a rebuild. Both give the same fact for the same message or change: its own id for
key, its own time (the writer's clock, not the log's)."""

from __future__ import annotations

from datetime import datetime

from omnichannel_core.module import (
    AuthorKind,
    ConversationRecord,
    ConversationStatus,
    Direction,
    Event,
    parse_timestamp,
)
from omnichannel_core.modules.dashboard.records import ChangeFact, Fact, MessageFact

MESSAGE_CREATED = "message.created"
CONVERSATION_UPDATED = "conversation.updated"
EVENT_TYPES = frozenset({MESSAGE_CREATED, CONVERSATION_UPDATED})


def fact_of(event: Event) -> Fact | None:
    """The fact an event tells; None for one that tells none (an unread count changed, or
    an event logged before its data carried what a fact needs)."""
    data = event.data
    if event.conversation_id is None or "at" not in data:
        return None
    at = parse_timestamp(data["at"])
    if event.type == MESSAGE_CREATED:
        author = data.get("author") or {}
        return MessageFact(
            message_id=event.record_id,
            conversation_id=event.conversation_id,
            channel=data["channel"],
            at=at,
            inbound=data["direction"] == Direction.INBOUND,
            author_kind=AuthorKind(author["kind"]) if author else None,
            author_id=author.get("id"),
            automated=bool(data.get("automated")),
        )
    if event.type == CONVERSATION_UPDATED and "change_id" in data:
        status = ConversationStatus(data["status"])
        moved = data["changes"].get("status")
        return ChangeFact(
            change_id=data["change_id"],
            conversation_id=event.conversation_id,
            channel=data.get("channel", ""),
            at=at,
            status=status,
            previous_status=ConversationStatus(moved[0]) if moved else status,
            assignee=data["assignee"],
        )
    return None


def facts_of(record: ConversationRecord) -> list[Fact]:
    """A conversation's facts, in the order they happened (a message before a change made
    in the same instant: a contact's message is what reopens their conversation)."""
    conversation = record.conversation
    facts: list[tuple[object, int, Fact]] = []
    for message in record.messages:
        author = message.author
        facts.append(
            (
                message.created_at,
                0,
                MessageFact(
                    message_id=message.id,
                    conversation_id=conversation.id,
                    channel=conversation.channel,
                    at=message.created_at,
                    inbound=message.direction is Direction.INBOUND,
                    author_kind=None if author is None else author.kind,
                    author_id=None if author is None else author.id,
                    automated=message.direction is Direction.INBOUND
                    and bool(message.metadata.get("automated")),
                ),
            )
        )
    for change in record.changes:
        facts.append(
            (
                change.at,
                1,
                ChangeFact(
                    change_id=change.id,
                    conversation_id=conversation.id,
                    channel=conversation.channel,
                    at=change.at,
                    status=change.status,
                    previous_status=change.previous_status,
                    assignee=change.assignee,
                ),
            )
        )
    facts.extend(_before_history(record))
    facts.sort(key=lambda each: (each[0], each[1]))
    return [fact for _, _, fact in facts]


def _before_history(record: ConversationRecord) -> list[tuple[object, int, Fact]]:
    """What a conversation changed before its history was kept (stored before this
    version): the status and assignee it had then, as its first recorded change says (or,
    with none, as it is now). Resolved then: resolved at its last message before the first
    recorded change, the one that reopened it (or, with none, at its last activity).
    Pending or assigned: so from its start."""
    conversation = record.conversation
    first = record.changes[0] if record.changes else None
    status = first.previous_status if first else conversation.status
    assignee = first.previous_assignee if first else conversation.assignee

    def change(key: str, at: datetime, new: ConversationStatus) -> ChangeFact:
        return ChangeFact(
            change_id=f"{key}:{conversation.id}",
            conversation_id=conversation.id,
            channel=conversation.channel,
            at=at,
            status=new,
            previous_status=ConversationStatus.OPEN,
            assignee=assignee,
        )

    if status is ConversationStatus.RESOLVED:
        if first is None:
            at = conversation.last_activity_at
        else:
            before = [m.created_at for m in record.messages if m.created_at < first.at]
            at = max(before, default=conversation.created_at)
        return [(at, 1, change("before-history", at, status))]
    if status is ConversationStatus.PENDING or assignee is not None:
        at = conversation.created_at
        return [(at, -1, change("before-history-state", at, status))]
    return []

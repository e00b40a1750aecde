"""A conversation's history: each change of its status or assignee, kept for good in the
store (the event log is pruned after days), and the author of each outbound message, as both
backends write them. The dashboard rebuilds its figures from them (`services.InboxHistory`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from omnichannel_core.module import (
    AuditEntry,
    Author,
    AuthorKind,
    Conversation,
    ConversationChange,
    ConversationStatus,
    new_id,
)

CHANGE_PREFIX = "chg"


def change_of(
    before: Conversation,
    status: ConversationStatus,
    assignee: str | None,
    at: datetime,
    by: Author | None,
) -> ConversationChange | None:
    """The change from ``before`` to ``status`` and ``assignee``; None when neither moved
    (an unread count alone is no part of the history)."""
    if status == before.status and assignee == before.assignee:
        return None
    return ConversationChange(
        id=new_id(CHANGE_PREFIX),
        conversation_id=before.id,
        at=at,
        status=ConversationStatus(status),
        previous_status=before.status,
        assignee=assignee,
        previous_assignee=before.assignee,
        by=by,
    )


def reopened(conversation_id: str, assignee: str | None, at: datetime) -> ConversationChange:
    """The change a contact's message makes to their resolved conversation: open again."""
    return ConversationChange(
        id=new_id(CHANGE_PREFIX),
        conversation_id=conversation_id,
        at=at,
        status=ConversationStatus.OPEN,
        previous_status=ConversationStatus.RESOLVED,
        assignee=assignee,
        previous_assignee=assignee,
    )


def audit_author(audit: AuditEntry | None) -> Author | None:
    """Who made a change its audit entry names (a user, a key, the command line)."""
    if audit is None or audit.actor_type not in set(AuthorKind):
        return None
    return Author(AuthorKind(audit.actor_type), audit.actor_id)


def resolved_by_erasure(
    before: Conversation, at: datetime, audit: AuditEntry | None
) -> ConversationChange | None:
    """The change an erasure makes to its contact's conversation: resolved (None when it
    was already)."""
    return change_of(before, ConversationStatus.RESOLVED, before.assignee, at, audit_author(audit))


def author_fields(author: Author | None) -> dict[str, Any] | None:
    """``author`` as stored (JSON, or a Firestore map); None stays None."""
    if author is None:
        return None
    fields = {"kind": str(author.kind), "id": author.id, "name": author.name, "ref": author.ref}
    return {name: value for name, value in fields.items() if value is not None}


def author_from(fields: dict[str, Any] | None) -> Author | None:
    if not fields:
        return None
    return Author(fields["kind"], fields.get("id"), fields.get("name"), fields.get("ref"))


def change_fields(change: ConversationChange) -> dict[str, Any]:
    """A change as stored, its times left to the backend."""
    return {
        "id": change.id,
        "conversation_id": change.conversation_id,
        "status": str(change.status),
        "previous_status": str(change.previous_status),
        "assignee": change.assignee,
        "previous_assignee": change.previous_assignee,
        "by": author_fields(change.by),
    }


def change_from(fields: dict[str, Any], at: datetime) -> ConversationChange:
    return ConversationChange(
        id=fields["id"],
        conversation_id=fields["conversation_id"],
        at=at,
        status=ConversationStatus(fields["status"]),
        previous_status=ConversationStatus(fields["previous_status"]),
        assignee=fields["assignee"],
        previous_assignee=fields["previous_assignee"],
        by=author_from(fields["by"]),
    )

"""Conversations on Firestore: changes made through the API (with their audit entry) and
their history, typing, the conversation at an address, the filtered list, and a
conversation's messages."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import attrs
from google.cloud.firestore_v1 import DocumentSnapshot, FieldFilter, Or

from omnichannel_core.module import (
    UNSET,
    AuditEntry,
    Author,
    Conflict,
    Conversation,
    ConversationChange,
    ConversationRecord,
    ConversationStatus,
    Page,
    decode_cursor,
    encode_cursor,
    utcnow,
)
from omnichannel_core.module.firestore import (
    KeysetQuery,
    Transaction,
    decode_position,
    exact_time,
    log_event,
    queue_audit,
)
from omnichannel_core.modules.inbox import events
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.store.firestore.documents import (
    Layout,
    conversation_fields,
    read_conversation,
    read_message,
)
from omnichannel_core.modules.inbox.store.history import (
    CHANGE_PREFIX,
    change_fields,
    change_from,
    change_of,
)


async def update_conversation(
    transaction: Transaction,
    layout: Layout,
    conversation_id: str,
    status: ConversationStatus = UNSET,
    assignee: str | None = UNSET,
    unread_count: int = UNSET,
    expected_assignee: str | None = UNSET,
    audit: AuditEntry | None = None,
    by: Author | None = None,
) -> Conversation:
    """Change the given fields, create the audit entry, keep the change in the history and
    log ``conversation.updated``; Conflict, changing nothing, when the assignee is not
    ``expected_assignee``."""
    reference = layout.conversation(conversation_id)
    [snapshot] = await transaction.get(reference)
    current = read_conversation(snapshot)
    if expected_assignee is not UNSET and current.assignee != expected_assignee:
        raise Conflict(
            "the conversation's assignee changed meanwhile; read it again",
            assignee=current.assignee,
        )
    changes: dict[str, Any] = {"updated_at": utcnow()}
    if status is not UNSET:
        changes["status"] = ConversationStatus(status)
    if assignee is not UNSET:
        changes["assignee"] = assignee
    if unread_count is not UNSET:
        changes["unread_count"] = unread_count
    changed = attrs.evolve(current, **changes)
    transaction.set(reference, conversation_fields(changed))
    if audit is not None:
        queue_audit(transaction, layout.database, audit)
    change = change_of(current, changed.status, changed.assignee, changes["updated_at"], by)
    if change is not None:
        queue_change(transaction, layout, change)
    moved = changed.assignee != current.assignee
    fields = ("status", "assignee", "unread_count")
    log_event(
        transaction,
        layout.database,
        InboxEvent.CONVERSATION_UPDATED,
        conversation_id,
        conversation_id,
        (changed.assignee, current.assignee) if moved else (changed.assignee,),
        events.conversation_changes(
            current.channel,
            {name: getattr(current, name) for name in fields},
            {name: getattr(changed, name) for name in fields},
            change,
        ),
    )
    return changed


def queue_change(transaction: Transaction, layout: Layout, change: ConversationChange) -> None:
    """Keep ``change`` in its conversation's history (a subcollection, by time)."""
    fields = change_fields(change) | {"at": change.at}
    transaction.create(layout.change(change.conversation_id, change.id), fields)


def _change(snapshot: DocumentSnapshot) -> ConversationChange:
    fields = snapshot.to_dict() or {}
    return change_from(fields, exact_time(fields["at"]))


async def conversation_changes(
    layout: Layout, conversation_id: str
) -> tuple[ConversationChange, ...]:
    """The conversation's history, oldest first; NotFound for an unknown conversation."""
    read_conversation(await layout.conversation(conversation_id).get())
    query = layout.changes(conversation_id).order_by("at").order_by("__name__")
    return tuple([_change(snapshot) async for snapshot in query.stream()])


async def list_changes(
    layout: Layout, conversation_id: str, cursor: str | None, limit: int
) -> Page:
    """One page of the conversation's history, oldest first; NotFound for an unknown
    conversation (read beside the page, in the same round trip). The conversation's own
    subcollection, unfiltered, ordered by ``at`` then id: the automatic single-field index
    on ``at`` serves it, no composite index."""
    decode_position(cursor, CHANGE_PREFIX)
    changes = layout.changes(conversation_id)
    keyset = KeysetQuery(changes, changes, "at", descending=False, id_prefix=CHANGE_PREFIX)
    conversation, page = await asyncio.gather(
        layout.conversation(conversation_id).get(),
        keyset.page(cursor, limit, _change),
    )
    read_conversation(conversation)
    return page


async def scan_history(
    layout: Layout, cursor: str | None, limit: int
) -> tuple[list[ConversationRecord], str | None]:
    """Up to ``limit`` conversations in id order after ``cursor``, each whole."""
    query = layout.conversations.order_by("__name__").limit(limit)
    if cursor:
        query = query.start_after({"__name__": layout.conversation(decode_cursor(cursor, 1)[0])})
    snapshots = [snapshot async for snapshot in query.stream()]
    records = []
    for snapshot in snapshots:
        conversation = read_conversation(snapshot)
        messages = (
            layout.messages.where(filter=FieldFilter("conversation_id", "==", conversation.id))
            .order_by("created_at")
            .order_by("__name__")
        )
        records.append(
            ConversationRecord(
                conversation,
                tuple([read_message(message) async for message in messages.stream()]),
                await conversation_changes(layout, conversation.id),
            )
        )
    following = encode_cursor(snapshots[-1].id) if len(snapshots) == limit else None
    return records, following


async def log_typing(
    transaction: Transaction,
    layout: Layout,
    conversation: Conversation,
    by: str,
    user_id: str | None,
    until: datetime,
) -> None:
    """Log ``conversation.typing`` with the assignee of ``conversation``, read before the
    transaction: the conversation is neither written nor locked by it, so a typing visitor
    holds up no message landing there; an assignment made meanwhile is one the stream
    checks anyway (who has the conversation now)."""
    log_event(
        transaction,
        layout.database,
        InboxEvent.CONVERSATION_TYPING,
        conversation.id,
        conversation.id,
        (conversation.assignee,),
        events.typing(by, user_id, until),
    )


async def find_conversation(layout: Layout, channel: str, address: str) -> Conversation | None:
    """The conversation the identity at (``channel``, ``address``) names (its contact's most
    recently created there), read by id; None when there is no such identity, or it names
    none (a contact met only as a participant of another's thread)."""
    identity = await layout.identity(channel, address).get()
    conversation_id = identity.get("conversation_id") if identity.exists else None
    if conversation_id is None:
        return None
    return read_conversation(await layout.conversation(conversation_id).get())


async def list_conversations(
    layout: Layout,
    status: ConversationStatus | None,
    channel: str | None,
    assignee: str | None,
    cursor: str | None,
    limit: int,
    assigned_to_or_unassigned: str | None = None,
) -> Page:
    """Most recent activity first, with an equality filter per field given; an agent's view
    is ``assignee == agent OR assignee == null`` (one composite index per combination of
    filters, in firestore.indexes.json)."""
    decode_position(cursor, "cv")  # a bad cursor is InvalidInput, even for an empty answer
    query: Any = layout.conversations
    if assigned_to_or_unassigned is not None and assignee is not None:
        if assignee != assigned_to_or_unassigned:
            return Page([], None)  # another agent's conversations: none are visible
        assigned_to_or_unassigned = None
    for field, value in (("status", status), ("channel", channel), ("assignee", assignee)):
        if value is not None:
            query = query.where(filter=FieldFilter(field, "==", str(value)))
    if assigned_to_or_unassigned is not None:
        mine = FieldFilter("assignee", "==", assigned_to_or_unassigned)
        query = query.where(filter=Or([mine, FieldFilter("assignee", "==", None)]))
    keyset = KeysetQuery(
        layout.conversations, query, "last_activity_at", descending=True, id_prefix="cv"
    )
    return await keyset.page(cursor, limit, read_conversation)


async def list_messages(
    layout: Layout, conversation_id: str, cursor: str | None, limit: int
) -> Page:
    """A conversation's messages, oldest first; NotFound for an unknown conversation (read
    beside the page, in the same round trip)."""
    decode_position(cursor, "msg")
    query = layout.messages.where(filter=FieldFilter("conversation_id", "==", conversation_id))
    keyset = KeysetQuery(layout.messages, query, "created_at", descending=False, id_prefix="msg")
    conversation, page = await asyncio.gather(
        layout.conversation(conversation_id).get(),
        keyset.page(cursor, limit, read_message),
    )
    read_conversation(conversation)
    return page

"""Watermarks on Firestore: every outbound message of a conversation stored up to a time,
moved forward to a status, one bounded batch per transaction.

Firestore transactions here read documents by id only (`firestore_transaction`), so a batch
is found by a query outside the transaction: the conversation's messages still behind the
status (``status in`` what can move there), stored at or before the watermark, oldest first,
at most a batch of them (index: ``conversation_id``, ``status``, ``created_at``). The
transaction then reads those messages by id with their conversation and moves each one that
still can, through `outbound.advance`, logging its event. A message the query saw
that moved meanwhile is read again in the transaction, so nothing moves back; one stored
between the query and the transaction is left to the next watermark, which covers it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from google.cloud.firestore_v1 import DocumentSnapshot, FieldFilter

from omnichannel_core.module import DeliveryStatus, Message
from omnichannel_core.module.firestore import Transaction
from omnichannel_core.modules.inbox.store import statuses_behind
from omnichannel_core.modules.inbox.store.firestore.documents import Layout, read_message
from omnichannel_core.modules.inbox.store.firestore.outbound import advance


async def conversations_at(
    layout: Layout, channel: str, address: str, limit: int
) -> AsyncIterator[str]:
    """The ids of the conversations on ``channel`` answering to ``address`` (normally one),
    read ``limit`` at a time."""
    query = (
        layout.conversations.where(filter=FieldFilter("channel", "==", channel))
        .where(filter=FieldFilter("address", "==", address))
        .order_by("__name__")
        .limit(limit)
    )
    after: DocumentSnapshot | None = None
    while True:
        page = query if after is None else query.start_after(after)
        found = [snapshot async for snapshot in page.stream()]
        for snapshot in found:
            yield snapshot.id
        if len(found) < limit:
            return
        after = found[-1]


async def behind(
    layout: Layout,
    conversation_id: str,
    status: DeliveryStatus,
    up_to: datetime,
    limit: int,
    after: DocumentSnapshot | None,
) -> list[DocumentSnapshot]:
    """At most ``limit`` of the conversation's messages that can move to ``status``, stored
    at or before ``up_to``, oldest first, after ``after`` (the last of the previous batch)."""
    query = (
        layout.messages.where(filter=FieldFilter("conversation_id", "==", conversation_id))
        .where(filter=FieldFilter("status", "in", [str(s) for s in statuses_behind(status)]))
        .where(filter=FieldFilter("created_at", "<=", up_to))
        .order_by("created_at")
        .order_by("__name__")
        .limit(limit)
    )
    if after is not None:
        query = query.start_after(after)
    return [snapshot async for snapshot in query.stream()]


async def move_batch(
    transaction: Transaction,
    layout: Layout,
    conversation_id: str,
    message_ids: list[str],
    status: DeliveryStatus,
    ttl: timedelta,
) -> list[Message]:
    """Move each of the messages that still can to ``status``; returns the ones moved."""
    references = [layout.message(message_id) for message_id in message_ids]
    conversation, *snapshots = await transaction.get(
        layout.conversation(conversation_id), *references
    )
    moved = []
    for snapshot in snapshots:
        message = read_message(snapshot)
        applied = await advance(
            transaction, layout, message, status, None, None, None, ttl, conversation
        )
        if applied.changed:
            assert applied.message is not None
            moved.append(applied.message)
    return moved

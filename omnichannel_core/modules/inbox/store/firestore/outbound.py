"""Outbound messages on Firestore: queued with an idempotency key, moved forward only, and
status updates parked until their provider id is recorded.

Each unique key is a document in ``message_keys`` (see `omnichannel_core.store.firestore`):
an idempotency key, and each (channel, direction, provider id). A transaction reads the key
and creates it with the change it guards, so two writers of one key cannot both win.
Parked updates have deterministic ids, one per (channel, provider id, status): recording a
provider id reads all of that id's possible parked updates by id in the same round trip as
the key, with no query. Every function here runs inside a transaction (`firestore_transaction`)
and logs its event there.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs
from google.cloud.firestore_v1 import DocumentSnapshot

from omnichannel_core.channel import StatusUpdate
from omnichannel_core.module import (
    UNSET,
    Author,
    Conflict,
    DeliveryStatus,
    Direction,
    Media,
    Message,
    new_id,
    utcnow,
)
from omnichannel_core.module.firestore import Transaction, exact_time, log_event
from omnichannel_core.modules.inbox import events
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.store import SETTLED_RANK, StatusApplied
from omnichannel_core.modules.inbox.store.firestore.documents import (
    Layout,
    message_fields,
    message_key_fields,
    read_conversation,
    read_message,
)
from omnichannel_core.modules.inbox.store.outbox import REPLY, OutboxState


def entry_fields(message: Message, address: str, due_at: datetime, priority: int) -> dict[str, Any]:
    """A new outbox entry of ``message`` to ``address``, queued until ``due_at``."""
    return {
        "channel": message.channel,
        "address": address,
        "conversation_id": message.conversation_id,
        "state": str(OutboxState.QUEUED),
        "priority": priority,
        "due_at": due_at,
        "first_due_at": due_at,
        "failing_since": None,
        "attempts": message.attempts,
        "lease_holder": None,
        "lease_until": None,
        "doubt_until": None,
        "resend": False,
        "last_error": None,
        "attempted": True,  # cleared by a claim (`OutboxEntry.attempted`)
    }


PARKABLE = tuple(status for status in DeliveryStatus if status.rank > 0)
"""The statuses a parked update can apply (``queued`` and ``received`` never move a
message): one possible parked document each, read by id when a provider id is recorded."""


async def create_outbound(
    transaction: Transaction,
    layout: Layout,
    conversation_id: str,
    text: str | None,
    media: tuple[Media, ...],
    metadata: dict[str, Any],
    idempotency_key: str | None,
    expected_assignee: str | None = UNSET,
    send_at: datetime | None = None,
    priority: int = REPLY,
    author: Author | None = None,
) -> tuple[Message, bool]:
    """Store a queued message and its outbox entry (see Store.create_outbound); the
    idempotency key is checked first, then the conversation's assignee."""
    conversation_ref = layout.conversation(conversation_id)
    if idempotency_key is None:
        [conversation_snapshot] = await transaction.get(conversation_ref)
    else:
        key_ref = layout.idempotency_key(idempotency_key)
        conversation_snapshot, key = await transaction.get(conversation_ref, key_ref)
        if key.exists:
            [stored] = await transaction.get(layout.message((key.to_dict() or {})["message_id"]))
            return read_message(stored), False
    conversation = read_conversation(conversation_snapshot)
    if expected_assignee is not UNSET and conversation.assignee != expected_assignee:
        raise Conflict(
            "the conversation's assignee changed meanwhile; read it again",
            assignee=conversation.assignee,
        )
    now = utcnow()
    message = Message(
        id=new_id("msg"),
        conversation_id=conversation.id,
        contact_id=conversation.contact_id,
        channel=conversation.channel,
        direction=Direction.OUTBOUND,
        status=DeliveryStatus.QUEUED,
        text=text,
        media=tuple(media),
        idempotency_key=idempotency_key,
        metadata=dict(metadata),
        created_at=now,
        updated_at=now,
        send_at=send_at,
        author=author,
    )
    if idempotency_key is not None:
        transaction.create(key_ref, message_key_fields(message))
    transaction.create(layout.message(message.id), message_fields(message))
    due = now if send_at is None else max(send_at, now)
    transaction.create(
        layout.outbox(message.id), entry_fields(message, conversation.address, due, priority)
    )
    transaction.update(conversation_ref, {"last_activity_at": now, "updated_at": now})
    log_event(
        transaction,
        layout.database,
        InboxEvent.MESSAGE_CREATED,
        message.id,
        conversation.id,
        (conversation.assignee,),
        events.message_created(
            conversation.channel, Direction.OUTBOUND, conversation.contact_id, now, author
        ),
    )
    return message, True


def _moved(
    message: Message,
    status: DeliveryStatus,
    error_code: str | None,
    error_message: str | None,
    now: datetime,
) -> Message:
    """``message`` at ``status``; a given error code or text replaces the stored one."""
    return attrs.evolve(
        message,
        status=status,
        error_code=error_code if error_code is not None else message.error_code,
        error_message=error_message if error_message is not None else message.error_message,
        updated_at=now,
    )


def _fresh_parked(snapshots: list[DocumentSnapshot], ttl: timedelta) -> list[dict[str, Any]]:
    """The unexpired parked updates among ``snapshots``, lowest rank first."""
    cutoff = utcnow() - ttl
    parked = [snapshot.to_dict() or {} for snapshot in snapshots if snapshot.exists]
    fresh = [data for data in parked if exact_time(data["parked_at"]) >= cutoff]
    return sorted(fresh, key=lambda data: (DeliveryStatus(data["status"]).rank, data["parked_at"]))


async def advance(
    transaction: Transaction,
    layout: Layout,
    start: Message,
    status: DeliveryStatus,
    provider_message_id: str | None,
    error_code: str | None,
    error_message: str | None,
    ttl: timedelta,
    conversation: DocumentSnapshot | None = None,
    settle: bool = False,
) -> StatusApplied:
    """Move ``start`` (read in this transaction) forward to ``status``, record its provider
    id if it has none and nobody else holds it, and apply what was parked for that id.

    ``conversation`` is the message's conversation when the caller read it already (for the
    assignee the event names); else it is read here, with the key, or alone if needed.
    """
    status = DeliveryStatus(status)
    outbound = start.direction is Direction.OUTBOUND
    recording = provider_message_id is not None and start.provider_message_id is None
    references = []
    if conversation is None:
        references.append(layout.conversation(start.conversation_id))
    if recording:
        assert provider_message_id is not None
        references.append(layout.provider_key(start.channel, start.direction, provider_message_id))
        if outbound:
            references += [
                layout.parked(start.channel, provider_message_id, parked) for parked in PARKABLE
            ]
    moves = outbound and start.status.can_move_to(status)
    needed = references and (recording or moves)
    snapshots = await transaction.get(*references) if needed else []
    if conversation is None and snapshots:
        conversation, snapshots = snapshots[0], snapshots[1:]
    now = utcnow()
    message = _moved(start, status, error_code, error_message, now) if moves else start
    if settle or (moves and message.status.rank >= SETTLED_RANK):  # its entry goes with it
        transaction.delete(layout.outbox(start.id))
        message = attrs.evolve(message, in_doubt=False)
    if settle and not message.status.is_terminal:  # an earlier attempt's error is over
        message = attrs.evolve(message, error_code=None, error_message=None, error_details={})
    conflict = recorded = False
    if recording:
        key, parked = snapshots[0], snapshots[1:]
        conflict = key.exists and (key.to_dict() or {}).get("message_id") != start.id
        if not conflict:
            recorded = True
            message = attrs.evolve(message, provider_message_id=provider_message_id, updated_at=now)
            transaction.create(key.reference, message_key_fields(message))
            for update in _fresh_parked(parked, ttl) if outbound else ():
                parked_status = DeliveryStatus(update["status"])
                if message.status.can_move_to(parked_status):
                    code, text = update["error_code"], update["error_message"]
                    message = _moved(message, parked_status, code, text, now)
            for snapshot in parked:
                if snapshot.exists:
                    transaction.delete(snapshot.reference)
    changed = message.status is not start.status
    if not changed and not recorded and message == start:
        return StatusApplied(start, changed=False, provider_id_conflict=conflict)
    transaction.set(layout.message(start.id), message_fields(message))
    if changed:
        assert conversation is not None
        assignee = read_conversation(conversation).assignee
        log_event(
            transaction,
            layout.database,
            InboxEvent.MESSAGE_STATUS_CHANGED,
            message.id,
            message.conversation_id,
            (assignee,),
            events.status_changed(message.channel, message.status, start.status),
        )
    elif recorded:  # the provider took it, and its first status is one we had passed
        assert conversation is not None
        log_event(
            transaction,
            layout.database,
            InboxEvent.MESSAGE_UPDATED,
            message.id,
            message.conversation_id,
            (read_conversation(conversation).assignee,),
            events.message_updated(message.channel, ["provider_message_id"]),
        )
    return StatusApplied(message, changed=changed, provider_id_conflict=conflict)


def _park(
    transaction: Transaction,
    channel: str,
    update: StatusUpdate,
    existing: DocumentSnapshot,
    ttl: timedelta,
) -> StatusApplied:
    """Keep an update for a provider id not yet recorded, once per (channel, id, status):
    a repeat of an unexpired one changes nothing. Expired ones are deleted by Firestore's
    TTL policy on ``expire_at`` (see firestore.indexes.json), or when the id is recorded."""
    now = utcnow()
    data = existing.to_dict() if existing.exists else None
    if data is None or exact_time(data["parked_at"]) < now - ttl:
        transaction.set(
            existing.reference,
            {
                "channel": channel,
                "provider_message_id": update.provider_message_id,
                "status": str(DeliveryStatus(update.status)),
                "error_code": update.error_code,
                "error_message": update.error_message,
                "parked_at": now,
                "expire_at": now + ttl,
            },
        )
    return StatusApplied(None, changed=False, parked=True)


async def apply_status(
    transaction: Transaction, layout: Layout, channel: str, update: StatusUpdate, ttl: timedelta
) -> StatusApplied:
    """Apply a provider's update to the outbound message with its provider id, or park it
    (an update that could never apply, ``queued``, is answered as parked and not kept)."""
    pid = update.provider_message_id
    parkable = DeliveryStatus(update.status) in PARKABLE
    references = [layout.provider_key(channel, Direction.OUTBOUND, pid)]
    if parkable:
        references.append(layout.parked(channel, pid, update.status))
    key, *parked = await transaction.get(*references)
    if not key.exists:
        if not parkable:
            return StatusApplied(None, changed=False, parked=True)
        return _park(transaction, channel, update, parked[0], ttl)
    ids = key.to_dict() or {}
    message, conversation = await transaction.get(
        layout.message(ids["message_id"]), layout.conversation(ids["conversation_id"])
    )
    status, code, text = DeliveryStatus(update.status), update.error_code, update.error_message
    return await advance(
        transaction, layout, read_message(message), status, None, code, text, ttl, conversation
    )

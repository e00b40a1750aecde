"""The outbox on Firestore: ``outbox/{message_id}`` and ``send_paces`` (see the layout in
`omnichannel_core.modules.inbox.store.firestore.store`).

Each state change is a transaction that reads the entry and changes it only from the state
it expects, so two runners (or a runner and a status callback) cannot both win it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import attrs
from google.cloud.firestore_v1 import DocumentSnapshot, FieldFilter

from omnichannel_core.module import (
    AuditEntry,
    Conflict,
    DeliveryStatus,
    Message,
    NotFound,
    utcnow,
)
from omnichannel_core.module.firestore import (
    FirestoreDatabase,
    Transaction,
    exact_time,
    log_event,
    optional_time,
    queue_audit,
)
from omnichannel_core.modules.inbox import events
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.pace import PaceRecord, reserved, slowed
from omnichannel_core.modules.inbox.store import PARKED_STATUS_TTL, StatusApplied
from omnichannel_core.modules.inbox.store.firestore.documents import (
    Layout,
    live_contact,
    message_fields,
    read_conversation,
    read_message,
)
from omnichannel_core.modules.inbox.store.firestore.outbound import advance, entry_fields
from omnichannel_core.modules.inbox.store.outbox import (
    BULK,
    NOT_CONFIRMED,
    NOT_CONFIRMED_TEXT,
    REPLY,
    ChannelBacklog,
    Claimed,
    Failure,
    OutboxEntry,
    OutboxState,
)


def entry_from(snapshot: DocumentSnapshot) -> OutboxEntry:
    data = snapshot.to_dict() or {}
    return OutboxEntry(
        message_id=snapshot.id,
        channel=data["channel"],
        address=data["address"],
        state=OutboxState(data["state"]),
        priority=data["priority"],
        due_at=exact_time(data["due_at"]),
        first_due_at=exact_time(data["first_due_at"]),
        failing_since=optional_time(data.get("failing_since")),
        attempts=data["attempts"],
        lease_holder=data["lease_holder"],
        lease_until=optional_time(data["lease_until"]),
        doubt_until=optional_time(data["doubt_until"]),
        resend=bool(data["resend"]),
        last_error=data["last_error"],
        attempted=bool(data.get("attempted", True)),  # an entry from before the mark: True
    )


def _status_event(
    transaction: Transaction,
    layout: Layout,
    message: Message,
    before: DeliveryStatus,
    conversation: DocumentSnapshot,
) -> None:
    log_event(
        transaction,
        layout.database,
        InboxEvent.MESSAGE_STATUS_CHANGED,
        message.id,
        message.conversation_id,
        (read_conversation(conversation).assignee,),
        events.status_changed(message.channel, message.status, before),
    )


class FirestoreOutbox:
    """:class:`omnichannel_core.modules.inbox.store.outbox.OutboxStore` on Firestore (a part
    of the inbox store)."""

    database: FirestoreDatabase
    parked_status_ttl = PARKED_STATUS_TTL

    @property
    def layout(self) -> Layout:
        raise NotImplementedError

    async def _transact(self, key: tuple[str, ...], body: Any) -> Any:
        raise NotImplementedError

    async def _entries(self, query: Any) -> list[OutboxEntry]:
        return [entry_from(snapshot) async for snapshot in query.stream()]

    async def due_outbound(
        self, now: datetime, limit: int, channel: str | None = None
    ) -> list[OutboxEntry]:
        entries: list[OutboxEntry] = []
        for priority in (REPLY, BULK):
            if len(entries) >= limit:
                break
            query = self.layout.outbox_entries.where(filter=FieldFilter("state", "==", "queued"))
            if channel is not None:
                query = query.where(filter=FieldFilter("channel", "==", channel))
            query = (
                query.where(filter=FieldFilter("priority", "==", priority))
                .where(filter=FieldFilter("due_at", "<=", now))
                .order_by("due_at")
                .limit(limit - len(entries))
            )
            entries += await self._entries(query)
        return entries

    async def next_due_at(self) -> datetime | None:
        query = (
            self.layout.outbox_entries.where(filter=FieldFilter("state", "==", "queued"))
            .order_by("due_at")
            .limit(1)
        )
        found = await self._entries(query)
        return found[0].due_at if found else None

    async def claim_outbound(
        self, message_id: str, holder: str, lease_until: datetime, now: datetime
    ) -> Claimed | None:
        layout = self.layout

        async def write(transaction: Transaction) -> tuple[OutboxEntry, Message] | None:
            entry_ref, message_ref = layout.outbox(message_id), layout.message(message_id)
            snapshot, message_snapshot = await transaction.get(entry_ref, message_ref)
            if not snapshot.exists:
                return None
            entry = entry_from(snapshot)
            if entry.state is not OutboxState.QUEUED or entry.due_at > now:
                return None
            claimed = attrs.evolve(
                entry,
                state=OutboxState.SENDING,
                lease_holder=holder,
                lease_until=lease_until,
                attempted=False,
            )
            transaction.update(
                entry_ref,
                {
                    "state": str(OutboxState.SENDING),
                    "lease_holder": holder,
                    "lease_until": lease_until,
                    "attempted": False,
                },
            )
            return claimed, read_message(message_snapshot)

        taken = await self._transact(("message", message_id), write)
        if taken is None:
            return None
        # Read after the claim, outside its transaction: the address never changes, and a
        # transaction that read the conversation would hold up every writer of it.
        # A contact merged away reads as its survivor, which holds its opt-outs too.
        conversation_snapshot, opted_out = await asyncio.gather(
            layout.conversation(taken[1].conversation_id).get(),
            _opted_out(layout, taken[1].contact_id),
        )
        conversation = read_conversation(conversation_snapshot)
        return Claimed(
            taken[0], taken[1], conversation.address, conversation.last_inbound_at, opted_out
        )

    async def begin_attempt(self, message_id: str, holder: str, now: datetime) -> bool:
        layout = self.layout

        async def write(transaction: Transaction) -> bool:
            snapshot, message_snapshot = await transaction.get(
                layout.outbox(message_id), layout.message(message_id)
            )
            if not snapshot.exists or not message_snapshot.exists:
                return False
            entry = entry_from(snapshot)
            held = entry.state is OutboxState.SENDING and entry.lease_holder == holder
            if not held or entry.lease_until is None or entry.lease_until <= now:
                return False
            transaction.update(
                snapshot.reference, {"attempted": True, "attempts": entry.attempts + 1}
            )
            attempts = read_message(message_snapshot).attempts + 1
            transaction.update(message_snapshot.reference, {"attempts": attempts})
            return True

        return await self._transact(("message", message_id), write)

    async def extend_lease(self, message_id: str, holder: str, lease_until: datetime) -> bool:
        layout = self.layout

        async def write(transaction: Transaction) -> bool:
            [snapshot] = await transaction.get(layout.outbox(message_id))
            if not snapshot.exists:
                return False
            entry = entry_from(snapshot)
            if entry.state is not OutboxState.SENDING or entry.lease_holder != holder:
                return False
            transaction.update(snapshot.reference, {"lease_until": lease_until})
            return True

        return await self._transact(("message", message_id), write)

    async def retry_outbound(
        self, message_id: str, holder: str, due_at: datetime, failure: Failure
    ) -> bool:
        layout = self.layout

        async def write(transaction: Transaction) -> bool:
            snapshot, message_snapshot = await transaction.get(
                layout.outbox(message_id), layout.message(message_id)
            )
            if not snapshot.exists:
                return False
            entry = entry_from(snapshot)
            if entry.state is not OutboxState.SENDING or entry.lease_holder != holder:
                return False
            [conversation] = await transaction.get(
                layout.conversation(snapshot.get("conversation_id"))
            )
            now = utcnow()
            transaction.update(
                snapshot.reference,
                {
                    "state": str(OutboxState.QUEUED),
                    "due_at": due_at,
                    "lease_holder": None,
                    "lease_until": None,
                    "last_error": failure.text,
                    "failing_since": entry.failing_since or now,
                },
            )
            message = attrs.evolve(
                read_message(message_snapshot),
                error_code=failure.code,
                error_message=failure.text,
                error_details=failure.details,
                updated_at=now,
            )
            transaction.set(layout.message(message_id), message_fields(message))
            log_event(
                transaction,
                layout.database,
                InboxEvent.MESSAGE_ATTEMPT_FAILED,
                message.id,
                message.conversation_id,
                (read_conversation(conversation).assignee,),
                events.attempt_failed(message.channel, failure.code, entry.attempts, due_at),
            )
            return True

        return await self._transact(("message", message_id), write)

    async def fail_outbound(self, message_id: str, holder: str, failure: Failure) -> Message | None:
        layout, ttl = self.layout, self.parked_status_ttl

        async def write(transaction: Transaction) -> Message | None:
            entry_snapshot, snapshot = await transaction.get(
                layout.outbox(message_id), layout.message(message_id)
            )
            if not entry_snapshot.exists:
                return None
            entry = entry_from(entry_snapshot)
            if entry.state is not OutboxState.SENDING or entry.lease_holder != holder:
                return None
            start = attrs.evolve(read_message(snapshot), error_details=failure.details)
            applied = await advance(
                transaction,
                layout,
                start,
                DeliveryStatus.FAILED,
                None,
                failure.code,
                failure.text,
                ttl,
                settle=True,
            )
            assert applied.message is not None
            return applied.message

        return await self._transact(("message", message_id), write)

    async def doubt_outbound(
        self,
        message_id: str,
        holder: str | None,
        doubt_until: datetime,
        resend_at: datetime | None,
        error: str,
        now: datetime,
    ) -> Message | None:
        layout = self.layout

        async def write(transaction: Transaction) -> Message | None:
            [snapshot] = await transaction.get(layout.outbox(message_id))
            if not snapshot.exists:
                return None
            entry = entry_from(snapshot)
            ours = (
                entry.lease_holder == holder
                if holder is not None
                else entry.lease_until is not None and entry.lease_until < now
            )
            if entry.state is not OutboxState.SENDING or not ours:
                return None
            message_snapshot, conversation = await transaction.get(
                layout.message(message_id), layout.conversation(snapshot.get("conversation_id"))
            )
            start = read_message(message_snapshot)
            transaction.update(
                snapshot.reference,
                {
                    "state": str(OutboxState.QUEUED if resend_at else OutboxState.IN_DOUBT),
                    "due_at": resend_at or entry.due_at,
                    "resend": resend_at is not None,
                    "doubt_until": entry.doubt_until or doubt_until,
                    "lease_holder": None,
                    "lease_until": None,
                    "last_error": error,
                },
            )
            moves = start.status.can_move_to(DeliveryStatus.SENDING)
            message = attrs.evolve(
                start,
                in_doubt=True,
                status=DeliveryStatus.SENDING if moves else start.status,
                updated_at=now,
            )
            transaction.set(layout.message(message_id), message_fields(message))
            if moves:
                _status_event(transaction, layout, message, start.status, conversation)
            return message

        return await self._transact(("message", message_id), write)

    async def requeue_unattempted(self, message_id: str, now: datetime) -> bool:
        layout = self.layout

        async def write(transaction: Transaction) -> bool:
            [snapshot] = await transaction.get(layout.outbox(message_id))
            if not snapshot.exists:
                return False
            entry = entry_from(snapshot)
            lapsed = entry.lease_until is not None and entry.lease_until < now
            if entry.state is not OutboxState.SENDING or entry.attempted or not lapsed:
                return False
            transaction.update(
                snapshot.reference,
                {
                    "state": str(OutboxState.QUEUED),
                    "due_at": now,
                    "lease_holder": None,
                    "lease_until": None,
                    "attempted": True,  # as if stored before the mark, until claimed again
                },
            )
            return True

        return await self._transact(("message", message_id), write)

    async def expired_leases(self, now: datetime, limit: int) -> list[OutboxEntry]:
        query = (
            self.layout.outbox_entries.where(filter=FieldFilter("state", "==", "sending"))
            .where(filter=FieldFilter("lease_until", "<", now))
            .limit(limit)
        )
        return await self._entries(query)

    async def lapsed_doubts(self, now: datetime, limit: int) -> list[OutboxEntry]:
        query = self.layout.outbox_entries.where(filter=FieldFilter("doubt_until", "<", now)).limit(
            limit
        )
        entries = await self._entries(query)
        return [entry for entry in entries if entry.state is not OutboxState.SENDING]

    async def expire_doubt(self, message_id: str, now: datetime) -> Message | None:
        layout, ttl = self.layout, self.parked_status_ttl

        async def write(transaction: Transaction) -> Message | None:
            snapshot, message_snapshot = await transaction.get(
                layout.outbox(message_id), layout.message(message_id)
            )
            if not snapshot.exists:
                return None
            entry = entry_from(snapshot)
            lapsed = entry.doubt_until is not None and entry.doubt_until < now
            if entry.state is OutboxState.SENDING or not lapsed:
                return None
            applied: StatusApplied = await advance(
                transaction,
                layout,
                read_message(message_snapshot),
                DeliveryStatus.FAILED,
                None,
                NOT_CONFIRMED,
                NOT_CONFIRMED_TEXT,
                ttl,
            )
            return applied.message

        return await self._transact(("message", message_id), write)

    async def retry_failed(self, message_id: str, audit: AuditEntry, now: datetime) -> Message:
        layout = self.layout

        async def write(transaction: Transaction) -> Message:
            [snapshot] = await transaction.get(layout.message(message_id))
            if not snapshot.exists:
                raise NotFound(f"message {message_id!r} not found", id=message_id)
            start = read_message(snapshot)
            if start.direction != "outbound" or start.status is not DeliveryStatus.FAILED:
                raise Conflict(
                    f"only a failed outbound message can be retried; this one is {start.status}",
                    status=str(start.status),
                )
            references = [layout.conversation(start.conversation_id)]
            if start.provider_message_id is not None:  # its callbacks no longer apply
                references.append(
                    layout.provider_key(start.channel, start.direction, start.provider_message_id)
                )
            conversation, *keys = await transaction.get(*references)
            for key in keys:
                if key.exists and key.get("message_id") == message_id:
                    transaction.delete(key.reference)
            message = attrs.evolve(
                start,
                status=DeliveryStatus.QUEUED,
                error_code=None,
                error_message=None,
                error_details={},
                provider_message_id=None,
                in_doubt=False,
                send_at=None,
                updated_at=now,
            )
            transaction.set(layout.message(message_id), message_fields(message))
            address = read_conversation(conversation).address
            transaction.set(layout.outbox(message_id), entry_fields(message, address, now, REPLY))
            _status_event(transaction, layout, message, start.status, conversation)
            queue_audit(transaction, layout.database, audit)
            return message

        return await self._transact(("message", message_id), write)

    async def cancel_outbound(self, message_id: str, audit: AuditEntry) -> Message:
        layout, ttl = self.layout, self.parked_status_ttl

        async def write(transaction: Transaction) -> Message:
            snapshot, entry_snapshot = await transaction.get(
                layout.message(message_id), layout.outbox(message_id)
            )
            if not snapshot.exists:
                raise NotFound(f"message {message_id!r} not found", id=message_id)
            start = read_message(snapshot)
            entry = entry_from(entry_snapshot) if entry_snapshot.exists else None
            if entry is None or entry.state is not OutboxState.QUEUED or entry.resend:
                raise Conflict(
                    "only a message not yet being sent can be cancelled; this one is"
                    f" {start.status}" + (" and in doubt" if start.in_doubt else ""),
                    status=str(start.status),
                )
            applied = await advance(
                transaction, layout, start, DeliveryStatus.CANCELLED, None, None, None, ttl
            )
            queue_audit(transaction, layout.database, audit)
            assert applied.message is not None
            return applied.message

        return await self._transact(("message", message_id), write)

    async def outbox_backlog(self, now: datetime) -> dict[str, ChannelBacklog]:
        fields = ["channel", "state", "due_at", "first_due_at", "attempts", "resend"]
        counts: dict[str, dict[str, Any]] = {}
        async for snapshot in self.layout.outbox_entries.select(fields).stream():
            data = snapshot.to_dict() or {}
            backlog = counts.setdefault(data["channel"], {})
            due, first = exact_time(data["due_at"]), exact_time(data["first_due_at"])
            if data["state"] == OutboxState.SENDING:
                kind = "sending"
            elif data["state"] == OutboxState.IN_DOUBT or data["resend"]:
                kind = "in_doubt"
            elif due <= now:
                kind = "queued"
            else:
                kind = "retrying" if data["attempts"] else "scheduled"
            backlog[kind] = backlog.get(kind, 0) + 1
            if first <= now and kind != "in_doubt":
                oldest = backlog.get("oldest_due_at")
                backlog["oldest_due_at"] = first if oldest is None else min(oldest, first)
        return {channel: ChannelBacklog(**counts[channel]) for channel in sorted(counts)}

    async def reserve_pace(
        self, key: str, interval: float, count: int, now: float
    ) -> tuple[float, float]:
        reference = self.layout.send_pace(key)

        async def write(transaction: Transaction) -> tuple[float, float]:
            [snapshot] = await transaction.get(reference)
            record, start, spacing = reserved(_pace(snapshot), interval, count, now)
            transaction.set(reference, attrs.asdict(record))
            return start, spacing

        return await self._transact(("pace", key), write)

    async def slow_pace(self, key: str, until: float, now: float) -> None:
        reference = self.layout.send_pace(key)

        async def write(transaction: Transaction) -> None:
            [snapshot] = await transaction.get(reference)
            transaction.set(reference, attrs.asdict(slowed(_pace(snapshot), until, now)))

        await self._transact(("pace", key), write)


def _pace(snapshot: DocumentSnapshot) -> PaceRecord:
    if not snapshot.exists:
        return PaceRecord()
    data = snapshot.to_dict() or {}
    return PaceRecord(data["next_free"], data["fraction"], data["slowed_at"])


async def _opted_out(layout: Layout, contact_id: str) -> tuple[str, ...]:
    """The channels the contact (the survivor, for one merged away: never "not opted
    out") opted out on; none for a contact that is not stored."""
    try:
        contact = await live_contact(layout, contact_id)
    except NotFound:
        return ()
    return tuple(contact.get("opted_out") or ())

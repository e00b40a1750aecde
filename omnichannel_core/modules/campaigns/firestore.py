"""The campaigns' store on Firestore (imported only when the server runs on Firestore: it
needs Google's client).

``campaigns/{campaign_id}``
    ``status``, ``start_at`` (``schedule.at``; null: at launch), ``finished_at``,
    ``created_at``, and the campaign itself as ``data_json`` (text, exempt from indexing).
    Listed newest first by ``created_at`` (a single-field index), or with one ``status``
    (a composite index: ``status``, ``created_at`` descending). The campaigns due for a
    runner are the running ones and the scheduled ones whose ``start_at`` is null or past
    (a composite index: ``status``, ``start_at``); the recently finished, a range on
    ``finished_at`` (single-field), kept when completed or cancelled.
``campaign_recipients/{document_key(campaign_id, contact_id)}``
    ``campaign_id``, ``contact_id``, ``seq``, ``channel``, ``state``, ``skip_reason``,
    ``not_before``, ``message_id``, ``status``, ``in_doubt``, ``error_code`` and the times
    ``queued_at``, ``sent_at``, ``delivered_at``, ``read_at``, ``failed_at``,
    ``replied_at``, ``opted_out_at``: every field written from the start (null until set),
    so a query can ask for a null one. The id is the pair's key, so a contact is a
    campaign's recipient once, and the documents of a campaign spread over the key space.
    Composite indexes (firestore.indexes.json):

    - ``campaign_id``, ``seq``: a campaign's recipients in order, a page at a time;
      ``seq`` descending: its highest (:meth:`~FirestoreCampaignStore.next_seq`);
    - ``campaign_id``, ``state``, ``seq``: those in one state;
    - ``campaign_id``, ``state``, ``not_before``, ``seq``: the pending ones a runner may
      send to, as two queries: those with no ``not_before`` in ``seq`` order, and those
      whose ``not_before`` is past, by ``not_before`` then ``seq``;
    - ``contact_id``, ``channel``, ``state``, ``queued_at`` descending: a contact's queued
      recipients.

    Counting, the timeline and deleting read a campaign's recipients by ``campaign_id``;
    whether any is pending, and skipping them, ask ``campaign_id`` and ``state`` with no
    order (single-field indexes, which Firestore makes and merges by itself). Counting and
    the timeline read every recipient of the campaign (only the fields they need): a
    document read each.

Every conditional write (a status change, a delete, settling a recipient, stamping one,
mirroring its message) is a transaction that reads the document and writes it only while
the condition holds, so two servers cannot both win it. Each batch of recipients is added
in one transaction that reads them first and creates only the missing ones.

Two differences from SQLite, where one statement cannot do it here:

- :meth:`FirestoreCampaignStore.pending` merges the first ``limit`` recipients with no
  ``not_before`` (by ``seq``) with the first ``limit`` whose ``not_before`` is past (by
  ``not_before``, then ``seq``): when more than ``limit`` of the latter are waiting, those
  that woke first come first, not those of lowest ``seq``. Either way the page is in
  ``seq`` order, and every recipient comes in turn.
- Deleting a campaign deletes its document in a transaction, then its recipients (a draft
  has none) in batches of :data:`BATCH`, each committed alone.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
from google.api_core.exceptions import AlreadyExists
from google.cloud.firestore_v1 import (
    AsyncCollectionReference,
    AsyncDocumentReference,
    AsyncQuery,
    DocumentSnapshot,
    FieldFilter,
)
from google.cloud.firestore_v1.base_query import BaseQuery

from omnichannel_core.module import (
    AuditEntry,
    Conflict,
    Page,
    from_json,
    utcnow,
)
from omnichannel_core.module.firestore import (
    FirestoreDatabase,
    KeysetQuery,
    Transaction,
    document,
    document_key,
    exact_time,
    existing,
    json_text,
    log_event,
    optional_time,
    queue_audit,
)
from omnichannel_core.modules.campaigns.records import (
    CAMPAIGN_PREFIX,
    Campaign,
    CampaignStatus,
    Counts,
    Minute,
    Recipient,
    RecipientState,
    SkipReason,
    counted,
)
from omnichannel_core.modules.campaigns.store import (
    CAMPAIGN_UPDATED,
    STAMPED,
    TIMES,
    reached,
    require_status,
    seq_cursor,
    seq_of_cursor,
)

CAMPAIGNS = "campaigns"
RECIPIENTS = "campaign_recipients"
WRITES = 500
"""Recipients added, or skipped, in one transaction (Firestore takes 500 writes in a
commit): a freeze's batch of up to 500 is added whole or not at all."""
BATCH = 400
"""Recipients deleted per commit with their campaign."""
OF_CONTACT = 100
"""The most recently queued recipients :meth:`FirestoreCampaignStore.of_contact` reads."""

GROUPED = ("state", "skip_reason", "status", "in_doubt", "error_code")
"""The fields :func:`counted` groups recipients by, as they are."""
REACHED = {
    "sent": "sent_at",
    "delivered": "delivered_at",
    "read": "read_at",
    "replied": "replied_at",
    "opted_out": "opted_out_at",
}
"""The times :func:`counted` asks only whether they are set, by the name it gives that."""
FINISHED = frozenset({CampaignStatus.COMPLETED.value, CampaignStatus.CANCELLED.value})


def _campaign(snapshot: DocumentSnapshot) -> Campaign:
    return from_json(json.loads(existing(snapshot, "campaign")["data_json"]), Campaign)


def _campaign_fields(campaign: Campaign) -> dict[str, Any]:
    return {
        "status": campaign.status.value,
        "start_at": campaign.schedule.at,
        "finished_at": campaign.finished_at,
        "created_at": campaign.created_at,
        "data_json": json_text(campaign),
    }


def _recipient(snapshot: DocumentSnapshot) -> Recipient:
    data = existing(snapshot, "recipient")
    return Recipient(
        campaign_id=data["campaign_id"],
        contact_id=data["contact_id"],
        seq=data["seq"],
        channel=data["channel"],
        state=RecipientState(data["state"]),
        skip_reason=SkipReason(data["skip_reason"]) if data.get("skip_reason") else None,
        message_id=data.get("message_id"),
        status=data.get("status"),
        in_doubt=bool(data.get("in_doubt")),
        error_code=data.get("error_code"),
        **{name: optional_time(data.get(name)) for name in TIMES},
    )


def _new_recipient(campaign_id: str, contact_id: str, seq: int, channel: str) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "contact_id": contact_id,
        "seq": seq,
        "channel": channel,
        "state": RecipientState.PENDING.value,
        "skip_reason": None,
        "message_id": None,
        "status": None,
        "in_doubt": False,
        "error_code": None,
        **dict.fromkeys(TIMES),
    }


def _settled_fields(recipient: Recipient) -> dict[str, Any]:
    return {
        "state": recipient.state.value,
        "skip_reason": None if recipient.skip_reason is None else recipient.skip_reason.value,
        "not_before": recipient.not_before,
        "message_id": recipient.message_id,
        "queued_at": recipient.queued_at,
    }


def _is_pending(snapshot: DocumentSnapshot) -> bool:
    return snapshot.exists and (snapshot.to_dict() or {}).get("state") == RecipientState.PENDING


def _log(transaction: Transaction, database: FirestoreDatabase, campaign: Campaign) -> None:
    log_event(
        transaction, database, CAMPAIGN_UPDATED, campaign.id, data={"status": campaign.status.value}
    )


class FirestoreCampaignStore:
    def __init__(self, database: FirestoreDatabase) -> None:
        self.database = database

    def _campaigns(self) -> AsyncCollectionReference:
        return self.database.collection(CAMPAIGNS)

    def _campaign_document(self, campaign_id: str) -> AsyncDocumentReference:
        return document(self._campaigns(), campaign_id, "campaign")

    def _recipient_document(self, campaign_id: str, contact_id: str) -> AsyncDocumentReference:
        return self.database.collection(RECIPIENTS).document(document_key(campaign_id, contact_id))

    def _of_campaign(self, campaign_id: str) -> AsyncQuery:
        return self.database.collection(RECIPIENTS).where(
            filter=FieldFilter("campaign_id", "==", campaign_id)
        )

    def _pending_of(self, campaign_id: str) -> AsyncQuery:
        return self._of_campaign(campaign_id).where(
            filter=FieldFilter("state", "==", RecipientState.PENDING.value)
        )

    # Campaigns.

    async def create(self, campaign: Campaign) -> Campaign:
        reference = self._campaign_document(campaign.id)

        async def body(transaction: Transaction) -> Campaign:
            transaction.create(reference, _campaign_fields(campaign))
            _log(transaction, self.database, campaign)
            return campaign

        try:
            return await self.database.transact((CAMPAIGNS, campaign.id), body)
        except AlreadyExists:
            raise Conflict(f"campaign {campaign.id!r} exists", id=campaign.id) from None

    async def get(self, campaign_id: str) -> Campaign:
        return _campaign(await self._campaign_document(campaign_id).get())

    async def list_campaigns(
        self, status: CampaignStatus | None, cursor: str | None, limit: int
    ) -> Page:
        campaigns = self._campaigns()
        query: Any = campaigns
        if status is not None:
            query = campaigns.where(filter=FieldFilter("status", "==", status.value))
        keyset = KeysetQuery(campaigns, query, "created_at", True, CAMPAIGN_PREFIX)
        return await keyset.page(cursor, limit, _campaign)

    async def change(
        self,
        campaign_id: str,
        changes: Mapping[str, Any],
        when: Collection[CampaignStatus],
        audit: AuditEntry | None = None,
    ) -> Campaign:
        reference = self._campaign_document(campaign_id)

        async def body(transaction: Transaction) -> Campaign:
            (snapshot,) = await transaction.get(reference)
            campaign = _campaign(snapshot)
            require_status(campaign, when)
            changed = attrs.evolve(campaign, **changes, updated_at=utcnow())
            transaction.set(reference, _campaign_fields(changed))
            _log(transaction, self.database, changed)
            if audit is not None:
                queue_audit(transaction, self.database, audit)
            return changed

        try:
            return await self.database.transact((CAMPAIGNS, campaign_id), body)
        except AlreadyExists:  # the audit entry's id is taken: nothing was written
            entry_id = None if audit is None else audit.id
            raise Conflict(f"audit entry {entry_id!r} exists", id=entry_id) from None

    async def delete(self, campaign_id: str, when: Collection[CampaignStatus]) -> None:
        reference = self._campaign_document(campaign_id)

        async def body(transaction: Transaction) -> None:
            (snapshot,) = await transaction.get(reference)
            require_status(_campaign(snapshot), when)
            transaction.delete(reference)

        await self.database.transact((CAMPAIGNS, campaign_id), body)
        query = self._of_campaign(campaign_id).limit(BATCH)
        while True:
            found = [snapshot.reference async for snapshot in query.stream()]
            if not found:
                return
            batch = self.database.client.batch()
            for recipient in found:
                batch.delete(recipient)
            await batch.commit()
            if len(found) < BATCH:
                return

    async def due(self, now: datetime) -> list[Campaign]:
        campaigns = self._campaigns()
        scheduled = campaigns.where(
            filter=FieldFilter("status", "==", CampaignStatus.SCHEDULED.value)
        )
        queries = (
            campaigns.where(filter=FieldFilter("status", "==", CampaignStatus.RUNNING.value)),
            scheduled.where(filter=FieldFilter("start_at", "==", None)),
            scheduled.where(filter=FieldFilter("start_at", "<=", now)),
        )
        found = [_campaign(snapshot) for query in queries async for snapshot in query.stream()]
        return sorted(found, key=lambda campaign: (campaign.created_at, campaign.id))

    async def recently_finished(self, since: datetime) -> list[Campaign]:
        query = self._campaigns().where(filter=FieldFilter("finished_at", ">=", since))
        return [
            _campaign(snapshot)
            async for snapshot in query.stream()
            if snapshot.get("status") in FINISHED
        ]

    # Recipients.

    async def add_recipients(
        self, campaign_id: str, channel: str, contact_ids: Sequence[str], first_seq: int
    ) -> int:
        added = 0
        for start in range(0, len(contact_ids), WRITES):
            chunk = contact_ids[start : start + WRITES]
            added += await self._add(campaign_id, channel, chunk, first_seq + start)
        return added

    async def _add(
        self, campaign_id: str, channel: str, contact_ids: Sequence[str], first_seq: int
    ) -> int:
        """Create the recipients of ``contact_ids`` that are missing, in one transaction (a
        contact named twice is numbered where it first appears)."""
        numbered: dict[str, int] = {}
        for index, contact_id in enumerate(contact_ids):
            numbered.setdefault(contact_id, first_seq + index)
        references = [self._recipient_document(campaign_id, each) for each in numbered]

        async def body(transaction: Transaction) -> int:
            snapshots = await transaction.get(*references)
            missing = [
                (reference, contact_id, seq)
                for reference, snapshot, (contact_id, seq) in zip(
                    references, snapshots, numbered.items(), strict=True
                )
                if not snapshot.exists
            ]
            for reference, contact_id, seq in missing:
                transaction.create(reference, _new_recipient(campaign_id, contact_id, seq, channel))
            return len(missing)

        return await self.database.transact((RECIPIENTS, campaign_id), body)

    async def next_seq(self, campaign_id: str) -> int:
        query = (
            self._of_campaign(campaign_id)
            .order_by("seq", direction=BaseQuery.DESCENDING)
            .select(["seq"])
            .limit(1)
        )
        async for snapshot in query.stream():
            return int(snapshot.get("seq")) + 1
        return 0

    async def pending(self, campaign_id: str, now: datetime, limit: int) -> list[Recipient]:
        pending = self._pending_of(campaign_id)
        ready = pending.where(filter=FieldFilter("not_before", "==", None)).order_by("seq")
        woken = (
            pending.where(filter=FieldFilter("not_before", "<=", now))
            .order_by("not_before")
            .order_by("seq")
        )
        found = [
            _recipient(snapshot)
            for query in (ready.limit(limit), woken.limit(limit))
            async for snapshot in query.stream()
        ]
        return sorted(found, key=lambda recipient: recipient.seq)[:limit]

    async def has_pending(self, campaign_id: str) -> bool:
        async for _ in self._pending_of(campaign_id).limit(1).stream():
            return True
        return False

    async def settle(self, recipient: Recipient) -> bool:
        reference = self._recipient_document(recipient.campaign_id, recipient.contact_id)

        async def body(transaction: Transaction) -> bool:
            (snapshot,) = await transaction.get(reference)
            if not _is_pending(snapshot):
                return False
            transaction.update(reference, _settled_fields(recipient))
            return True

        key = (RECIPIENTS, recipient.campaign_id, recipient.contact_id)
        return await self.database.transact(key, body)

    async def skip_pending(self, campaign_id: str, reason: SkipReason, limit: int) -> int:
        skipped = 0
        while skipped < limit:
            size = min(limit - skipped, WRITES)
            query = self._pending_of(campaign_id).limit(size)
            found = [snapshot.reference async for snapshot in query.stream()]
            if not found:
                break
            skipped += await self._skip(campaign_id, found, reason)
            if len(found) < size:
                break
        return skipped

    async def _skip(
        self, campaign_id: str, references: list[AsyncDocumentReference], reason: SkipReason
    ) -> int:
        """Skip those of the recipients that are still pending, in one transaction; how
        many."""
        fields = {
            "state": RecipientState.SKIPPED.value,
            "skip_reason": reason.value,
            "not_before": None,
        }

        async def body(transaction: Transaction) -> int:
            still = [s for s in await transaction.get(*references) if _is_pending(s)]
            for snapshot in still:
                transaction.update(snapshot.reference, fields)
            return len(still)

        return await self.database.transact((RECIPIENTS, campaign_id), body)

    async def record_outcome(
        self,
        campaign_id: str,
        contact_id: str,
        status: str,
        in_doubt: bool,
        error_code: str | None,
        at: datetime,
    ) -> None:
        reference = self._recipient_document(campaign_id, contact_id)

        async def body(transaction: Transaction) -> None:
            (snapshot,) = await transaction.get(reference)
            if not snapshot.exists:
                return
            data = snapshot.to_dict() or {}
            fields: dict[str, Any] = {
                "status": status,
                "in_doubt": in_doubt,
                "error_code": error_code,
            }
            for name in reached(status):
                if data.get(name) is None:
                    fields[name] = at
            transaction.update(reference, fields)

        await self.database.transact((RECIPIENTS, campaign_id, contact_id), body)

    async def of_contact(self, contact_id: str, channel: str) -> list[Recipient]:
        query = (
            self.database.collection(RECIPIENTS)
            .where(filter=FieldFilter("contact_id", "==", contact_id))
            .where(filter=FieldFilter("channel", "==", channel))
            .where(filter=FieldFilter("state", "==", RecipientState.QUEUED.value))
            .order_by("queued_at", direction=BaseQuery.DESCENDING)
            .limit(OF_CONTACT)
        )
        return [_recipient(snapshot) async for snapshot in query.stream()]

    async def stamp(self, campaign_id: str, contact_id: str, name: str, at: datetime) -> bool:
        if name not in STAMPED:
            raise ValueError(f"not a stamp: {name!r}")
        reference = self._recipient_document(campaign_id, contact_id)

        async def body(transaction: Transaction) -> bool:
            (snapshot,) = await transaction.get(reference)
            if not snapshot.exists or (snapshot.to_dict() or {}).get(name) is not None:
                return False
            transaction.update(reference, {name: at})
            return True

        return await self.database.transact((RECIPIENTS, campaign_id, contact_id), body)

    # Reports.

    async def counts(self, campaign_id: str) -> Counts:
        query = self._of_campaign(campaign_id).select([*GROUPED, *REACHED.values()])
        groups: Counter[tuple[Any, ...]] = Counter()
        async for snapshot in query.stream():
            data = snapshot.to_dict() or {}
            grouped = tuple(data.get(name) for name in GROUPED)
            stamped = tuple(data.get(name) is not None for name in REACHED.values())
            groups[grouped + stamped] += 1
        names = (*GROUPED, *REACHED)
        return counted(
            [{**dict(zip(names, key, strict=True)), "n": n} for key, n in groups.items()]
        )

    async def timeline(self, campaign_id: str) -> list[Minute]:
        query = self._of_campaign(campaign_id).select(["sent_at", "delivered_at"])
        minutes: dict[datetime, list[int]] = {}
        async for snapshot in query.stream():
            data = snapshot.to_dict() or {}
            for index, name in enumerate(("sent_at", "delivered_at")):
                if data.get(name) is not None:
                    minute = exact_time(data[name]).replace(second=0, microsecond=0)
                    minutes.setdefault(minute, [0, 0])[index] += 1
        return [
            Minute(minute, sent, delivered) for minute, (sent, delivered) in sorted(minutes.items())
        ]

    async def recipients(
        self,
        campaign_id: str,
        state: RecipientState | None,
        cursor: str | None,
        limit: int,
    ) -> Page:
        after = -1 if cursor is None else seq_of_cursor(cursor)
        query = self._of_campaign(campaign_id)
        if state is not None:
            query = query.where(filter=FieldFilter("state", "==", state.value))
        query = query.where(filter=FieldFilter("seq", ">", after)).order_by("seq").limit(limit + 1)
        found = [snapshot async for snapshot in query.stream()]
        items = [_recipient(snapshot) for snapshot in found[:limit]]
        next_cursor = seq_cursor(items[-1].seq) if len(found) > limit else None
        return Page(items, next_cursor)

    async def log_progress(self, campaign_id: str) -> None:
        reference = self._campaign_document(campaign_id)

        async def body(transaction: Transaction) -> None:
            (snapshot,) = await transaction.get(reference)
            _log(transaction, self.database, _campaign(snapshot))

        await self.database.transact((CAMPAIGNS, campaign_id), body)

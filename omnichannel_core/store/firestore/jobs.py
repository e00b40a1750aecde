"""The job runner's leases and subscribers' cursors on Firestore
(`omnichannel_core.jobs.store`): ``job_leases/{name}`` (``holder``, ``expires_at``,
``last_run_at``) and ``subscriber_cursors/{name}`` (``cursor``, ``updated_at``,
``failures``, ``last_error``, ``behind``). A lease is taken in a transaction that reads it
first, so of two runners asking at once one gets it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from google.cloud.firestore_v1 import DocumentSnapshot

from omnichannel_core.store.firestore.documents import exact_time, optional_time
from omnichannel_core.store.firestore.transaction import Transaction
from omnichannel_core.store.protocols import Lease, SubscriberState
from omnichannel_core.timestamps import utcnow

if TYPE_CHECKING:
    from omnichannel_core.store.firestore.database import FirestoreDatabase

LEASES = "job_leases"
CURSORS = "subscriber_cursors"


def _lease(snapshot: DocumentSnapshot) -> Lease:
    data = snapshot.to_dict() or {}
    return Lease(
        name=snapshot.id,
        holder=data["holder"],
        expires_at=exact_time(data["expires_at"]),
        last_run_at=optional_time(data.get("last_run_at")),
    )


def _subscriber(snapshot: DocumentSnapshot) -> SubscriberState:
    data = snapshot.to_dict() or {}
    return SubscriberState(
        name=snapshot.id,
        cursor=data.get("cursor"),
        updated_at=exact_time(data["updated_at"]),
        failures=data.get("failures", 0),
        last_error=data.get("last_error"),
        behind=bool(data.get("behind", False)),
    )


def _subscriber_fields(state: SubscriberState) -> dict[str, Any]:
    return {
        "cursor": state.cursor,
        "updated_at": state.updated_at,
        "failures": state.failures,
        "last_error": state.last_error,
        "behind": state.behind,
    }


class FirestoreJobStore:
    """:class:`omnichannel_core.jobs.store.JobStore` on the Firestore database."""

    def __init__(self, database: FirestoreDatabase) -> None:
        self.database = database

    async def take_lease(
        self, name: str, holder: str, ttl: timedelta, now: datetime
    ) -> Lease | None:
        reference = self.database.collection(LEASES).document(name)

        async def take(transaction: Transaction) -> Lease | None:
            [snapshot] = await transaction.get(reference)
            last_run_at = None
            if snapshot.exists:
                current = _lease(snapshot)
                if current.holder != holder and current.expires_at > now:
                    return None
                last_run_at = current.last_run_at
            fields: dict[str, Any] = {
                "holder": holder,
                "expires_at": now + ttl,
                "last_run_at": last_run_at,
            }
            transaction.set(reference, fields)
            return Lease(name, holder, exact_time(now + ttl), last_run_at)

        return await self.database.transact(("lease", name), take)

    async def release_lease(self, name: str, holder: str) -> None:
        reference = self.database.collection(LEASES).document(name)

        async def release(transaction: Transaction) -> None:
            [snapshot] = await transaction.get(reference)
            if snapshot.exists and snapshot.get("holder") == holder:
                transaction.update(reference, {"expires_at": utcnow()})

        await self.database.transact(("lease", name), release)

    async def record_run(self, name: str, holder: str, at: datetime) -> None:
        reference = self.database.collection(LEASES).document(name)

        async def record(transaction: Transaction) -> None:
            [snapshot] = await transaction.get(reference)
            if snapshot.exists and snapshot.get("holder") == holder:
                transaction.update(reference, {"last_run_at": at})

        await self.database.transact(("lease", name), record)

    async def leases(self) -> list[Lease]:
        collection = self.database.collection(LEASES)
        return sorted(
            [_lease(snapshot) async for snapshot in collection.stream()],
            key=lambda lease: lease.name,
        )

    async def subscriber(self, name: str) -> SubscriberState | None:
        snapshot = await self.database.collection(CURSORS).document(name).get()
        return _subscriber(snapshot) if snapshot.exists else None

    async def start_subscriber(self, state: SubscriberState) -> SubscriberState:
        reference = self.database.collection(CURSORS).document(state.name)

        async def start(transaction: Transaction) -> SubscriberState:
            [snapshot] = await transaction.get(reference)
            if snapshot.exists:
                return _subscriber(snapshot)
            transaction.create(reference, _subscriber_fields(state))
            return state

        return await self.database.transact(("subscriber", state.name), start)

    async def save_subscriber(self, state: SubscriberState) -> None:
        await self.database.collection(CURSORS).document(state.name).set(_subscriber_fields(state))

    async def mark_behind(self, name: str) -> None:
        reference = self.database.collection(CURSORS).document(name)
        snapshot = await reference.get()
        if snapshot.exists:
            await reference.update({"behind": True})

    async def subscribers(self) -> list[SubscriberState]:
        collection = self.database.collection(CURSORS)
        return sorted(
            [_subscriber(snapshot) async for snapshot in collection.stream()],
            key=lambda state: state.name,
        )

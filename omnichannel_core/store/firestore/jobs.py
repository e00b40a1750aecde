"""The job runner's leases and subscribers' cursors on Firestore
(`omnichannel_core.store.protocols`): ``job_leases/{name}`` (``holder``, ``expires_at``,
``last_run_at``) and ``subscriber_cursors/{name}`` (``cursor``, ``updated_at``,
``failures``, ``last_error``, ``behind``).

A lease is read, then written on the condition that it has not changed since (its update
time), so of two runners asking at once one gets it. Not in a transaction: a transaction
locks the document from its read to its commit, and a runner killed in between (SIGKILL, a
machine lost) would leave it locked until Firestore gives the lock up, a minute later,
however short the lease; a conditional write holds no lock the client could leave behind.
Within one process, the lease's writers (its renewal, a finished run) take turns."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from google.api_core.exceptions import Conflict, FailedPrecondition
from google.cloud.firestore_v1 import AsyncDocumentReference, DocumentSnapshot

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
        resync_asked=int(data.get("resync_asked", 0)),
        resynced=int(data.get("resynced", 0)),
    )


def _subscriber_fields(state: SubscriberState) -> dict[str, Any]:
    """What ``save_subscriber`` writes (merged: ``resync_asked`` is ``ask_resync``'s)."""
    return {
        "cursor": state.cursor,
        "updated_at": state.updated_at,
        "failures": state.failures,
        "last_error": state.last_error,
        "behind": state.behind,
        "resynced": state.resynced,
    }


class FirestoreJobStore:
    """:class:`omnichannel_core.store.protocols.JobStore` on the Firestore database."""

    def __init__(self, database: FirestoreDatabase) -> None:
        self.database = database

    def _lease_document(self, name: str) -> AsyncDocumentReference:
        return self.database.collection(LEASES).document(name)

    async def _update_unchanged(self, snapshot: DocumentSnapshot, fields: dict[str, Any]) -> bool:
        """Write ``fields`` to the lease read as ``snapshot`` unless it changed since; whether
        it was written."""
        option = self.database.client.write_option(last_update_time=snapshot.update_time)
        try:
            await snapshot.reference.update(fields, option=option)
        except FailedPrecondition:
            return False
        return True

    async def take_lease(
        self, name: str, holder: str, ttl: timedelta, now: datetime
    ) -> Lease | None:
        reference = self._lease_document(name)
        async with self.database.turn("lease", name):
            snapshot = await reference.get()
            if not snapshot.exists:
                try:
                    await reference.create(
                        {"holder": holder, "expires_at": now + ttl, "last_run_at": None}
                    )
                except Conflict:  # another runner created it first
                    return None
                return Lease(name, holder, exact_time(now + ttl), None)
            current = _lease(snapshot)
            if current.holder != holder and current.expires_at > now:
                return None
            if not await self._update_unchanged(
                snapshot, {"holder": holder, "expires_at": now + ttl}
            ):
                return None
            return Lease(name, holder, exact_time(now + ttl), current.last_run_at)

    async def _change_held(self, name: str, holder: str, fields: dict[str, Any]) -> None:
        """Write ``fields`` to the lease if ``holder`` holds it."""
        async with self.database.turn("lease", name):
            snapshot = await self._lease_document(name).get()
            if snapshot.exists and snapshot.get("holder") == holder:
                await self._update_unchanged(snapshot, fields)

    async def release_lease(self, name: str, holder: str) -> None:
        await self._change_held(name, holder, {"expires_at": utcnow()})

    async def record_run(self, name: str, holder: str, at: datetime) -> None:
        await self._change_held(name, holder, {"last_run_at": at})

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
            fields = _subscriber_fields(state) | {"resync_asked": state.resync_asked}
            transaction.create(reference, fields)
            return state

        return await self.database.transact(("subscriber", state.name), start)

    async def save_subscriber(self, state: SubscriberState) -> None:
        reference = self.database.collection(CURSORS).document(state.name)
        await reference.set(_subscriber_fields(state), merge=True)

    async def mark_behind(self, name: str) -> None:
        reference = self.database.collection(CURSORS).document(name)
        snapshot = await reference.get()
        if snapshot.exists:
            await reference.update({"behind": True})

    async def ask_resync(self, name: str) -> int:
        reference = self.database.collection(CURSORS).document(name)

        async def ask(transaction: Transaction) -> int:
            [snapshot] = await transaction.get(reference)
            if not snapshot.exists:
                return 0
            asked = int((snapshot.to_dict() or {}).get("resync_asked", 0)) + 1
            transaction.update(reference, {"resync_asked": asked})
            return asked

        return await self.database.transact(("subscriber", name), ask)

    async def subscribers(self) -> list[SubscriberState]:
        collection = self.database.collection(CURSORS)
        return sorted(
            [_subscriber(snapshot) async for snapshot in collection.stream()],
            key=lambda state: state.name,
        )

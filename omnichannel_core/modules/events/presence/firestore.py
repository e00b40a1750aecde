"""Presence on Firestore (imported only when the server runs on Firestore: it needs Google's
client).

``presence_streams/{stream_id}``
    ``user_id``, ``process``, ``opened_at``, ``seen_at``: one per open event stream,
    written when it opens and again at each refresh (every 30 s at most: well under a
    write a second per document). The streams seen lately are a range on ``seen_at``, and
    those pruned the other side of it (single-field indexes, which Firestore makes by
    itself); a user's streams are asked by ``user_id`` alone (single-field too), their
    ``seen_at`` checked here, so no composite index is needed.
``presence_statuses/{user_id}``
    ``status``, ``changed_at``: one per user who set a status, read by id.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from google.cloud.firestore_v1 import AsyncCollectionReference, DocumentSnapshot, FieldFilter

from omnichannel_core.module.firestore import (
    FirestoreDatabase,
    exact_time,
    existing,
    is_document_id,
)
from omnichannel_core.modules.events.presence.records import OpenStream, Status, UserStatus

STREAMS = "presence_streams"
STATUSES = "presence_statuses"
DELETES_PER_BATCH = 400
"""Streams deleted per commit when pruning (Firestore takes 500 writes in one)."""


def _stream(snapshot: DocumentSnapshot) -> OpenStream:
    data = existing(snapshot, "stream")
    return OpenStream(
        stream_id=snapshot.id,
        user_id=data["user_id"],
        process=data["process"],
        opened_at=exact_time(data["opened_at"]),
        seen_at=exact_time(data["seen_at"]),
    )


class FirestorePresenceStore:
    def __init__(self, database: FirestoreDatabase) -> None:
        self.database = database

    def _streams(self) -> AsyncCollectionReference:
        return self.database.collection(STREAMS)

    def _statuses(self) -> AsyncCollectionReference:
        return self.database.collection(STATUSES)

    async def keep_stream(self, stream: OpenStream) -> None:
        await (
            self._streams()
            .document(stream.stream_id)
            .set(
                {
                    "user_id": stream.user_id,
                    "process": stream.process,
                    "opened_at": stream.opened_at,
                    "seen_at": stream.seen_at,
                }
            )
        )

    async def drop_stream(self, stream_id: str) -> None:
        if is_document_id(stream_id):
            await self._streams().document(stream_id).delete()

    async def streams(self, seen_since: datetime, user_id: str | None = None) -> list[OpenStream]:
        if user_id is None:
            query = self._streams().where(filter=FieldFilter("seen_at", ">=", seen_since))
            return [_stream(snapshot) async for snapshot in query.stream()]
        query = self._streams().where(filter=FieldFilter("user_id", "==", user_id))
        found = [_stream(snapshot) async for snapshot in query.stream()]
        return [stream for stream in found if stream.seen_at >= seen_since]

    async def prune_streams(self, seen_before: datetime) -> int:
        stale = self._streams().where(filter=FieldFilter("seen_at", "<", seen_before))
        pruned = 0
        while True:
            found = [
                snapshot.reference async for snapshot in stale.limit(DELETES_PER_BATCH).stream()
            ]
            if not found:
                return pruned
            batch = self.database.client.batch()
            for reference in found:
                batch.delete(reference)
            await batch.commit()
            pruned += len(found)

    async def set_status(self, status: UserStatus) -> None:
        await (
            self._statuses()
            .document(status.user_id)
            .set({"status": status.status.value, "changed_at": status.changed_at})
        )

    async def statuses(self, user_ids: Collection[str]) -> dict[str, UserStatus]:
        wanted = [user_id for user_id in dict.fromkeys(user_ids) if is_document_id(user_id)]
        if not wanted:
            return {}
        references = [self._statuses().document(user_id) for user_id in wanted]
        found: dict[str, UserStatus] = {}
        async for snapshot in self.database.client.get_all(references):
            if snapshot.exists:
                data = snapshot.to_dict() or {}
                found[snapshot.id] = UserStatus(
                    snapshot.id, Status(data["status"]), exact_time(data["changed_at"])
                )
        return found

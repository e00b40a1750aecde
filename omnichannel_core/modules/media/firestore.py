"""The media module's store on Firestore (imported only when the server runs on
Firestore: it needs Google's client).

``media_items/{media_id}``
    ``content_type``, ``size``, ``filename``, ``sha256``, ``created_at``, ``uploaded_by``.
``media_items/{media_id}/holders/{message_id}``
    ``message_id``: a message that holds the item. The newest are found ordered by it
    (a single-field index, which Firestore makes by itself).
``media_fetches/{key(message_id, index)}``
    ``message_id``, ``index``, ``channel``, ``media_json``, ``state``, ``attempts``,
    ``due_at`` (absent once done or failed), ``failing_since``, ``error``, ``media_id``,
    ``updated_at``. Due fetches are found by a range on ``due_at`` ordered by it, and
    pending ones counted by ``state``: single-field indexes, which Firestore makes by
    itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from google.cloud.firestore_v1 import DELETE_FIELD, DocumentSnapshot, FieldFilter, Query

from omnichannel_core.module import Media, NotFound
from omnichannel_core.module.firestore import (
    FirestoreDatabase,
    Transaction,
    document,
    document_key,
    exact_time,
    json_text,
    optional_time,
)
from omnichannel_core.modules.media.records import FetchState, PendingFetch, StoredMedia

ITEMS = "media_items"
HOLDERS = "holders"
FETCHES = "media_fetches"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _fetch_fields(fetch: PendingFetch) -> dict[str, Any]:
    return {
        "message_id": fetch.message_id,
        "index": fetch.index,
        "channel": fetch.channel,
        "media_json": json_text(fetch.media),
        "state": str(fetch.state),
        "attempts": fetch.attempts,
        "due_at": fetch.due_at if fetch.due_at is not None else DELETE_FIELD,
        "failing_since": fetch.failing_since,
        "error": fetch.error,
        "media_id": fetch.media_id,
        "updated_at": fetch.updated_at,
    }


def _fetch(snapshot: DocumentSnapshot) -> PendingFetch:
    data = snapshot.to_dict() or {}
    return PendingFetch(
        message_id=data["message_id"],
        index=int(data["index"]),
        channel=data["channel"],
        media=Media(**json.loads(data["media_json"])),
        state=FetchState(data["state"]),
        attempts=int(data["attempts"]),
        due_at=optional_time(data.get("due_at")),
        failing_since=optional_time(data.get("failing_since")),
        error=data.get("error"),
        media_id=data.get("media_id"),
        updated_at=optional_time(data.get("updated_at")),
    )


class FirestoreMediaStore:
    def __init__(self, database: FirestoreDatabase) -> None:
        self.database = database

    def _fetch_document(self, message_id: str, index: int) -> Any:
        return self.database.collection(FETCHES).document(document_key(message_id, str(index)))

    async def add_media(self, media: StoredMedia) -> None:
        await document(self.database.collection(ITEMS), media.id).create(
            {
                "content_type": media.content_type,
                "size": media.size,
                "filename": media.filename,
                "sha256": media.sha256,
                "created_at": media.created_at,
                "uploaded_by": media.uploaded_by,
            }
        )

    async def get_media(self, media_id: str) -> StoredMedia:
        snapshot = await document(self.database.collection(ITEMS), media_id).get()
        if not snapshot.exists:
            raise NotFound(f"media {media_id!r} not found", id=media_id)
        data = snapshot.to_dict() or {}
        return StoredMedia(
            id=snapshot.id,
            content_type=data["content_type"],
            size=int(data["size"]),
            filename=data.get("filename"),
            sha256=data["sha256"],
            created_at=exact_time(data["created_at"]),
            uploaded_by=data.get("uploaded_by"),
        )

    async def add_holders(self, message_id: str, media_ids: Sequence[str]) -> None:
        if not media_ids:
            return
        batch = self.database.client.batch()
        for media_id in media_ids:
            holders = document(self.database.collection(ITEMS), media_id).collection(HOLDERS)
            batch.set(document(holders, message_id), {"message_id": message_id})
        await batch.commit()

    async def holders(self, media_id: str, limit: int) -> list[str]:
        try:
            item = document(self.database.collection(ITEMS), media_id)
        except NotFound:
            return []
        query = (
            item.collection(HOLDERS).order_by("message_id", direction=Query.DESCENDING).limit(limit)
        )
        return [str(snapshot.get("message_id")) async for snapshot in query.stream()]

    async def expect_fetch(self, fetch: PendingFetch) -> bool:
        reference = self._fetch_document(fetch.message_id, fetch.index)
        fields = {
            key: value for key, value in _fetch_fields(fetch).items() if value is not DELETE_FIELD
        }

        async def body(transaction: Transaction) -> bool:
            (snapshot,) = await transaction.get(reference)
            if snapshot.exists:
                return False
            transaction.create(reference, fields)
            return True

        return await self.database.transact((FETCHES, fetch.message_id, str(fetch.index)), body)

    async def get_fetch(self, message_id: str, index: int) -> PendingFetch | None:
        snapshot = await self._fetch_document(message_id, index).get()
        return _fetch(snapshot) if snapshot.exists else None

    async def save_fetch(self, fetch: PendingFetch) -> None:
        await self._fetch_document(fetch.message_id, fetch.index).set(
            _fetch_fields(fetch), merge=True
        )

    async def due_fetches(self, now: datetime, limit: int) -> list[PendingFetch]:
        query = (
            self.database.collection(FETCHES)
            .where(filter=FieldFilter("due_at", "<=", now))
            .order_by("due_at")
            .limit(limit)
        )
        return [_fetch(snapshot) async for snapshot in query.stream()]

    async def next_due_at(self) -> datetime | None:
        query = (
            self.database.collection(FETCHES)
            .where(filter=FieldFilter("due_at", ">=", EPOCH))
            .order_by("due_at")
            .limit(1)
        )
        async for snapshot in query.stream():
            return exact_time(snapshot.get("due_at"))
        return None

    async def count_pending(self) -> int:
        query = self.database.collection(FETCHES).where(
            filter=FieldFilter("state", "==", str(FetchState.PENDING))
        )
        counting: Any = query.count()  # the library types it as the class, not an instance
        (counted,) = await counting.get()
        return int(counted[0].value)

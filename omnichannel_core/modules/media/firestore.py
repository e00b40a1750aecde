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
``media_erasures/{sha256}``
    ``claims`` (claim id: when it was made) and ``newest_at``: the erasure claims on those
    bytes (`omnichannel_core.modules.media.store`). Abandoned ones are found by a range on
    ``newest_at``.

Forgetting finds items by ``sha256`` and fetches by ``media_id`` and ``message_id``
(equality on one field: single-field indexes again). An upload's transaction reads the
erasure document of its bytes and a forget's writes it, so Firestore orders the two; the
forget looks for items naming the bytes only after its claim is committed (a query in a
transaction would not see an item created after it ran).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions
from google.cloud.firestore_v1 import DELETE_FIELD, DocumentSnapshot, FieldFilter, Query

from omnichannel_core.module import Media, NotFound
from omnichannel_core.module.firestore import (
    FirestoreDatabase,
    Transaction,
    document,
    document_key,
    exact_time,
    is_document_id,
    json_text,
    optional_time,
)
from omnichannel_core.modules.media.records import (
    FetchState,
    ForgottenItems,
    PendingFetch,
    StoredMedia,
)

ITEMS = "media_items"
HOLDERS = "holders"
FETCHES = "media_fetches"
ERASURES = "media_erasures"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ITEMS_PER_TRANSACTION = 200
"""Items forgotten per transaction: a delete each, a claim per distinct SHA-256 (Firestore
takes at most 500 writes in one)."""
DELETES_PER_BATCH = 400


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

    def _erasure(self, sha256: str) -> Any:
        return document(self.database.collection(ERASURES), sha256, "media bytes")

    async def add_media(self, media: StoredMedia) -> datetime | None:
        item = document(self.database.collection(ITEMS), media.id)
        erasure = self._erasure(media.sha256)
        fields = {
            "content_type": media.content_type,
            "size": media.size,
            "filename": media.filename,
            "sha256": media.sha256,
            "created_at": media.created_at,
            "uploaded_by": media.uploaded_by,
        }

        async def body(transaction: Transaction) -> datetime | None:
            (claimed,) = await transaction.get(erasure)
            if claimed.exists:
                return exact_time(claimed.get("newest_at"))
            transaction.create(item, fields)
            return None

        return await self.database.transact((ITEMS, media.id), body)

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
        with contextlib.suppress(exceptions.NotFound):  # forgotten meanwhile: stays so
            await self._fetch_document(fetch.message_id, fetch.index).update(_fetch_fields(fetch))

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

    async def _delete_all(self, query: Any) -> int:
        """Delete what ``query`` finds, in batches; how many."""
        deleted = 0
        while True:
            found = [
                snapshot.reference async for snapshot in query.limit(DELETES_PER_BATCH).stream()
            ]
            if not found:
                return deleted
            batch = self.database.client.batch()
            for reference in found:
                batch.delete(reference)
            await batch.commit()
            deleted += len(found)

    async def forget_media(
        self, media_ids: Collection[str], claim: str, now: datetime
    ) -> ForgottenItems:
        unique = [media_id for media_id in dict.fromkeys(media_ids) if is_document_id(media_id)]
        forgotten = 0
        digests: dict[str, None] = {}
        for start in range(0, len(unique), ITEMS_PER_TRANSACTION):
            chunk = unique[start : start + ITEMS_PER_TRANSACTION]
            for media_id in chunk:  # before the items: a retry still finds them
                item = self.database.collection(ITEMS).document(media_id)
                await self._delete_all(item.collection(HOLDERS))
                await self._delete_all(
                    self.database.collection(FETCHES).where(
                        filter=FieldFilter("media_id", "==", media_id)
                    )
                )
            count, named = await self._forget_items(chunk, claim, now)
            forgotten += count
            digests.update(dict.fromkeys(named))
        return ForgottenItems(forgotten, tuple(digests))

    async def _forget_items(
        self, media_ids: list[str], claim: str, now: datetime
    ) -> tuple[int, list[str]]:
        items = [self.database.collection(ITEMS).document(media_id) for media_id in media_ids]

        async def body(transaction: Transaction) -> tuple[int, list[str]]:
            found = [snapshot for snapshot in await transaction.get(*items) if snapshot.exists]
            digests = list(dict.fromkeys(str(snapshot.get("sha256")) for snapshot in found))
            erasures = [self._erasure(digest) for digest in digests]
            claimed = await transaction.get(*erasures) if erasures else []
            for snapshot in found:
                transaction.delete(snapshot.reference)
            for erasure, snapshot in zip(erasures, claimed, strict=True):
                claims = _claims(snapshot)
                claims[claim] = now
                transaction.set(erasure, {"claims": claims, "newest_at": max(claims.values())})
            return len(found), digests

        return await self.database.transact((ERASURES, claim), body)

    async def forget_fetches(self, message_ids: Collection[str]) -> int:
        deleted = 0
        for message_id in dict.fromkeys(message_ids):
            if is_document_id(message_id):  # a value Firestore can compare
                deleted += await self._delete_all(
                    self.database.collection(FETCHES).where(
                        filter=FieldFilter("message_id", "==", message_id)
                    )
                )
        return deleted

    async def sha256_in_use(self, sha256: str) -> bool:
        query = (
            self.database.collection(ITEMS)
            .where(filter=FieldFilter("sha256", "==", sha256))
            .limit(1)
        )
        return [snapshot async for snapshot in query.stream()] != []

    async def release_erasure(self, sha256: str, claim: str) -> None:
        erasure = self._erasure(sha256)

        async def body(transaction: Transaction) -> None:
            (snapshot,) = await transaction.get(erasure)
            claims = _claims(snapshot)
            if claims.pop(claim, None) is None:
                return
            if claims:
                transaction.set(erasure, {"claims": claims, "newest_at": max(claims.values())})
            else:
                transaction.delete(erasure)

        await self.database.transact((ERASURES, sha256), body)

    async def take_over_erasures(self, before: datetime, claim: str, now: datetime) -> list[str]:
        query = self.database.collection(ERASURES).where(
            filter=FieldFilter("newest_at", "<", before)
        )
        abandoned = [snapshot.id async for snapshot in query.stream()]
        taken: list[str] = []
        for sha256 in abandoned:
            erasure = self._erasure(sha256)

            async def body(transaction: Transaction, erasure: Any = erasure) -> bool:
                (snapshot,) = await transaction.get(erasure)
                if not snapshot.exists or exact_time(snapshot.get("newest_at")) >= before:
                    return False  # released, or claimed again, meanwhile
                transaction.set(erasure, {"claims": {claim: now}, "newest_at": now})
                return True

            if await self.database.transact((ERASURES, sha256), body):
                taken.append(sha256)
        return taken


def _claims(snapshot: DocumentSnapshot) -> dict[str, datetime]:
    """The claims an erasure document holds (none when it does not exist)."""
    if not snapshot.exists:
        return {}
    held = snapshot.to_dict() or {}
    return {claim: exact_time(at) for claim, at in (held.get("claims") or {}).items()}

"""API keys on Firestore: kept under their hash (authenticating is one read), found by id
with a query, listed, revoked, and the time of their last use moved forward."""

from __future__ import annotations

from datetime import datetime

import attrs
from google.api_core.exceptions import AlreadyExists
from google.cloud.firestore_v1 import DocumentSnapshot, FieldFilter

from omnichannel_core.module import (
    Conflict,
    NotFound,
    Page,
    encode_cursor,
    format_timestamp,
    new_id,
    utcnow,
)
from omnichannel_core.module.firestore import (
    Transaction,
    decode_position,
    exact_time,
    is_document_id,
    is_record_id,
)
from omnichannel_core.modules.access.records import ApiKey
from omnichannel_core.modules.access.store.firestore.documents import (
    Layout,
    hashed_document,
    read_api_key,
)


def _later_or_same(stored: datetime | None, at: datetime) -> bool:
    return stored is not None and exact_time(stored) >= at


async def create_api_key(
    layout: Layout,
    name: str,
    scopes: tuple[str, ...],
    prefix: str,
    key_hash: str,
    created_by: str | None,
) -> ApiKey:
    reference = hashed_document(layout.keys, key_hash)
    key = ApiKey(new_id("key"), name, tuple(sorted(scopes)), prefix, created_by, utcnow())
    fields = {
        "id": key.id,
        "name": key.name,
        "scopes": list(key.scopes),
        "prefix": key.prefix,
        "created_by": key.created_by,
        "created_at": key.created_at,
        "last_used_at": None,
        "revoked_at": None,
    }
    try:
        await reference.create(fields)
    except AlreadyExists:
        raise Conflict("an API key with this hash is already stored") from None
    return key


async def _key_document(layout: Layout, key_id: str) -> DocumentSnapshot:
    """The key's document, found by its id (an id never moves to another document);
    NotFound for one no key can have, which the query would refuse (a value too long)."""
    if not is_record_id(key_id, "key"):
        raise NotFound(f"API key {key_id!r} not found", id=key_id)
    query = layout.keys.where(filter=FieldFilter("id", "==", key_id)).limit(1)
    async for snapshot in query.stream():
        return snapshot
    raise NotFound(f"API key {key_id!r} not found", id=key_id)


async def get_api_key(layout: Layout, key_id: str) -> ApiKey:
    return read_api_key(await _key_document(layout, key_id))


async def api_key_by_hash(layout: Layout, key_hash: str) -> ApiKey | None:
    if not is_document_id(key_hash):
        return None
    snapshot = await layout.keys.document(key_hash).get()
    return read_api_key(snapshot) if snapshot.exists else None


async def list_api_keys(layout: Layout, cursor: str | None, limit: int) -> Page:
    # Ordered by the key id, not the document id (the hash stays out of cursors).
    after = decode_position(cursor, "key")
    query = layout.keys.order_by("created_at").order_by("id")
    if after is not None:
        query = query.start_after({"created_at": after[0], "id": after[1]})
    documents = [document async for document in query.limit(limit + 1).stream()]
    keys = [read_api_key(document) for document in documents]
    next_cursor = None
    if len(keys) > limit:
        last = keys[limit - 1]
        next_cursor = encode_cursor(format_timestamp(last.created_at), last.id)
    return Page(keys[:limit], next_cursor)


async def revoke_api_key(layout: Layout, key_id: str, at: datetime) -> ApiKey:
    reference = (await _key_document(layout, key_id)).reference

    async def revoke(transaction: Transaction) -> ApiKey:
        [snapshot] = await transaction.get(reference)
        key = read_api_key(snapshot)
        if key.revoked_at is not None:
            return key
        transaction.update(reference, {"revoked_at": at})
        return attrs.evolve(key, revoked_at=exact_time(at))

    return await layout.transact(("key", key_id), revoke)


async def touch_api_key(layout: Layout, key_id: str, at: datetime) -> None:
    snapshot = await _key_document(layout, key_id)
    if _later_or_same(snapshot.get("last_used_at"), at):
        return  # last_used_at only moves forward: it can never fall behind ``at`` again

    async def touch(transaction: Transaction) -> None:
        [current] = await transaction.get(snapshot.reference)
        if not _later_or_same(current.get("last_used_at"), at):
            transaction.update(snapshot.reference, {"last_used_at": at})

    await layout.transact(("key", key_id), touch)

"""Keyset pages of Firestore queries, with the project's opaque cursors.

Every list is ordered by one timestamp field and the document id (``__name__``), both in the
same direction, so a cursor (`omnichannel_core.paging`: the timestamp as text and the
id) names a position exactly, and a page goes on from it with ``start_after``. Each list
knows the prefix of its records' ids (``ct``, ``cv``, ``msg``...) and refuses a cursor
naming anything else.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.cloud.firestore_v1 import AsyncCollectionReference, AsyncQuery, DocumentSnapshot
from google.cloud.firestore_v1.base_query import BaseQuery

from omnichannel_core.paging import Page, decode_list_cursor, encode_cursor
from omnichannel_core.timestamps import format_timestamp, parse_timestamp

Build = Callable[[DocumentSnapshot], Any]


def decode_position(cursor: str | None, id_prefix: str) -> tuple[datetime, str] | None:
    """The (time, id) a page cursor holds; InvalidInput for one that a list of records whose
    ids start ``<id_prefix>_`` did not make (the id, once checked, is a valid document id)."""
    if cursor is None:
        return None
    at, document_id = decode_list_cursor(cursor, id_prefix)
    return parse_timestamp(at), document_id


def _position(snapshot: DocumentSnapshot, field: str) -> str:
    return encode_cursor(format_timestamp(snapshot.get(field)), snapshot.id)


class KeysetQuery:
    """``query`` on ``collection``, ordered by ``field`` then id, newest or oldest first;
    the collection's document ids start ``<id_prefix>_``."""

    def __init__(
        self,
        collection: AsyncCollectionReference,
        query: AsyncQuery | AsyncCollectionReference,
        field: str,
        descending: bool,
        id_prefix: str,
    ) -> None:
        direction = BaseQuery.DESCENDING if descending else BaseQuery.ASCENDING
        self.collection = collection
        self.field = field
        self.id_prefix = id_prefix
        self.query = query.order_by(field, direction=direction).order_by(
            "__name__", direction=direction
        )

    def _from(
        self, after: tuple[datetime, str] | DocumentSnapshot | None, limit: int
    ) -> AsyncQuery:
        query = self.query.limit(limit)
        if isinstance(after, DocumentSnapshot):
            return query.start_after(after)
        if after is not None:
            time, document_id = after
            position = {self.field: time, "__name__": self.collection.document(document_id)}
            return query.start_after(position)
        return query

    async def page(self, cursor: str | None, limit: int, build: Build) -> Page:
        """One page after ``cursor``: ``limit`` items, reading one more to learn whether
        another page follows."""
        after = decode_position(cursor, self.id_prefix)
        documents = [document async for document in self._from(after, limit + 1).stream()]
        next_cursor = None
        if len(documents) > limit:
            next_cursor = _position(documents[limit - 1], self.field)
        return Page([build(document) for document in documents[:limit]], next_cursor)

    async def filtered_page(
        self,
        cursor: str | None,
        limit: int,
        keep: Callable[[DocumentSnapshot], bool],
        build: Build,
        scan_limit: int,
    ) -> Page:
        """One page of the documents ``keep`` accepts, reading at most ``scan_limit`` (or
        ``limit + 1``) documents: a page that reaches the bound first comes back short, its
        cursor at the last document read."""
        after: tuple[datetime, str] | DocumentSnapshot | None = decode_position(
            cursor, self.id_prefix
        )
        budget = max(scan_limit, limit + 1)
        kept: list[DocumentSnapshot] = []
        while budget > 0:
            size = min(budget, max(2 * (limit + 1), 50))
            documents = [document async for document in self._from(after, size).stream()]
            budget -= len(documents)
            for document in documents:
                if keep(document):
                    kept.append(document)
                    if len(kept) > limit:
                        next_cursor = _position(kept[limit - 1], self.field)
                        return Page([build(d) for d in kept[:limit]], next_cursor)
            if len(documents) < size:
                return Page([build(d) for d in kept], None)
            after = documents[-1]
        assert isinstance(after, DocumentSnapshot)
        return Page([build(d) for d in kept], _position(after, self.field))

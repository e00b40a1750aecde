"""The imports' store on Firestore (imported only when the server runs on Firestore: it
needs Google's client).

``crm_imports/{import_id}``
    Every field of :class:`~omnichannel_core.modules.crm.transfer.records.ContactImport`
    (``mapping_json``, ``errors_json`` as text), and ``waiting_since`` (its ``created_at``)
    only while it is pending or running. The job finds the oldest waiting import ordered by
    ``waiting_since``, and imports are listed newest first by (``created_at``, id):
    single-field indexes, which Firestore makes by itself. A save by the job is a
    transaction that reads the document first and writes only over its own ``version``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from google.cloud.firestore_v1 import DELETE_FIELD, DocumentSnapshot, FieldFilter

from omnichannel_core.module import NotFound, Page, utcnow
from omnichannel_core.module.firestore import (
    FirestoreDatabase,
    KeysetQuery,
    Transaction,
    document,
    exact_time,
    optional_time,
)
from omnichannel_core.modules.crm.transfer.records import (
    IMPORT_PREFIX,
    WAITING,
    ContactImport,
    Dedupe,
    ImportState,
    OnMatch,
    RowError,
)

IMPORTS = "crm_imports"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _progress(record: ContactImport) -> dict[str, Any]:
    """The fields the job changes."""
    return {
        "state": str(record.state),
        "updated_at": record.updated_at,
        "next_byte": record.next_byte,
        "next_row": record.next_row,
        "rows_read": record.rows_read,
        "created": record.created,
        "updated": record.updated,
        "skipped": record.skipped,
        "failed": record.failed,
        "errors_json": json.dumps([[e.row, e.column, e.message] for e in record.errors]),
        "error": record.error,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "batch_started_at": record.batch_started_at,
        "version": record.version,
        "waiting_since": record.created_at if record.state in WAITING else DELETE_FIELD,
    }


def _fields(record: ContactImport) -> dict[str, Any]:
    fields = {
        "media_id": record.media_id,
        "mapping_json": json.dumps(record.mapping),
        "dedupe": str(record.dedupe),
        "on_match": str(record.on_match),
        "dry_run": record.dry_run,
        "delimiter": record.delimiter,
        "created_by": record.created_by,
        "created_at": record.created_at,
        "size": record.size,
        **_progress(record),
    }
    return {key: value for key, value in fields.items() if value is not DELETE_FIELD}


def _import(snapshot: DocumentSnapshot) -> ContactImport:
    data = snapshot.to_dict() or {}
    return ContactImport(
        id=snapshot.id,
        state=ImportState(data["state"]),
        media_id=data["media_id"],
        mapping=json.loads(data["mapping_json"]),
        dedupe=Dedupe(data["dedupe"]),
        on_match=OnMatch(data["on_match"]),
        dry_run=bool(data["dry_run"]),
        delimiter=data["delimiter"],
        created_by=data["created_by"],
        created_at=exact_time(data["created_at"]),
        updated_at=exact_time(data["updated_at"]),
        size=int(data["size"]),
        next_byte=int(data["next_byte"]),
        next_row=int(data["next_row"]),
        rows_read=int(data["rows_read"]),
        created=int(data["created"]),
        updated=int(data["updated"]),
        skipped=int(data["skipped"]),
        failed=int(data["failed"]),
        errors=tuple(RowError(*error) for error in json.loads(data["errors_json"])),
        error=data.get("error"),
        started_at=optional_time(data.get("started_at")),
        finished_at=optional_time(data.get("finished_at")),
        batch_started_at=optional_time(data.get("batch_started_at")),
        version=int(data["version"]),
    )


class FirestoreImportStore:
    def __init__(self, database: FirestoreDatabase) -> None:
        self.database = database

    def _document(self, import_id: str) -> Any:
        return document(self.database.collection(IMPORTS), import_id)

    async def add_import(self, record: ContactImport) -> None:
        await self._document(record.id).create(_fields(record))

    async def get_import(self, import_id: str) -> ContactImport:
        snapshot = await self._document(import_id).get()
        if not snapshot.exists:
            raise NotFound(f"import {import_id!r} not found", id=import_id)
        return _import(snapshot)

    async def list_imports(self, cursor: str | None, limit: int) -> Page:
        imports = self.database.collection(IMPORTS)
        newest_first = KeysetQuery(imports, imports, "created_at", True, IMPORT_PREFIX)
        return await newest_first.page(cursor, limit, _import)

    async def next_import(self) -> ContactImport | None:
        query = (
            self.database.collection(IMPORTS)
            .where(filter=FieldFilter("waiting_since", ">=", EPOCH))
            .order_by("waiting_since")
            .limit(1)
        )
        async for snapshot in query.stream():
            return _import(snapshot)
        return None

    async def save_import(self, record: ContactImport, version: int) -> ContactImport | None:
        reference = self._document(record.id)

        async def body(transaction: Transaction) -> ContactImport | None:
            (snapshot,) = await transaction.get(reference)
            if not snapshot.exists or int(snapshot.get("version")) != version:
                return None
            fields = _progress(record)
            fields["version"] = version + 1
            if snapshot.get("state") == ImportState.CANCELLED:
                for kept in ("state", "finished_at", "waiting_since"):
                    del fields[kept]
                fields["batch_started_at"] = None
            transaction.update(reference, fields)
            stored = {**(snapshot.to_dict() or {}), **fields}
            stored.pop("waiting_since", None)
            return _import_from(snapshot.id, stored)

        return await self.database.transact((IMPORTS, record.id), body)

    async def cancel_import(self, import_id: str) -> ContactImport:
        reference = self._document(import_id)
        now = utcnow()

        async def body(transaction: Transaction) -> ContactImport:
            (snapshot,) = await transaction.get(reference)
            if not snapshot.exists:
                raise NotFound(f"import {import_id!r} not found", id=import_id)
            data = snapshot.to_dict() or {}
            if data["state"] not in WAITING:
                return _import(snapshot)
            fields = {
                "state": str(ImportState.CANCELLED),
                "finished_at": now,
                "updated_at": now,
                "batch_started_at": None,
                "waiting_since": DELETE_FIELD,
            }
            transaction.update(reference, fields)
            stored = {**data, **fields}
            stored.pop("waiting_since", None)
            return _import_from(import_id, stored)

        return await self.database.transact((IMPORTS, import_id), body)

    async def count_waiting(self) -> int:
        query = self.database.collection(IMPORTS).where(
            filter=FieldFilter("waiting_since", ">=", EPOCH)
        )
        counting: Any = query.count()  # the library types it as the class, not an instance
        (counted,) = await counting.get()
        return int(counted[0].value)


class _Stored:
    """A snapshot's stand-in for a document as a transaction leaves it."""

    def __init__(self, document_id: str, data: dict[str, Any]) -> None:
        self.id = document_id
        self._data = data

    def to_dict(self) -> dict[str, Any]:
        return self._data


def _import_from(document_id: str, data: dict[str, Any]) -> ContactImport:
    return _import(_Stored(document_id, data))  # type: ignore[arg-type]

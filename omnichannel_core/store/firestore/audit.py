"""The audit log on Firestore (`omnichannel_core.audit`): ``audit_log/{entry_id}``, with
the fields of `omnichannel_core.audit.AuditEntry` and ``details_json`` as text (free-form,
never indexed). Created, never written again: a taken id is a Conflict. Listed newest first
by (``at``, id), optionally with ``action ==``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from google.api_core.exceptions import AlreadyExists
from google.cloud.firestore_v1 import AsyncDocumentReference, DocumentSnapshot, FieldFilter

from omnichannel_core.audit import AuditEntry
from omnichannel_core.errors import Conflict, InvalidInput
from omnichannel_core.paging import Page
from omnichannel_core.store.firestore.documents import exact_time, is_document_id, json_text
from omnichannel_core.store.firestore.paging import KeysetQuery
from omnichannel_core.store.firestore.transaction import Transaction

if TYPE_CHECKING:
    from omnichannel_core.store.firestore.database import FirestoreDatabase

AUDIT_LOG = "audit_log"


def _entry(snapshot: DocumentSnapshot) -> AuditEntry:
    data = snapshot.to_dict() or {}
    return AuditEntry(
        id=snapshot.id,
        action=data["action"],
        actor_type=data["actor_type"],
        actor_id=data["actor_id"],
        target_type=data["target_type"],
        target_id=data["target_id"],
        details=json.loads(data["details_json"]),
        client_address=data["client_address"],
        at=exact_time(data["at"]),
    )


def audit_document(
    database: FirestoreDatabase, entry: AuditEntry
) -> tuple[AsyncDocumentReference, dict[str, Any]]:
    """Where ``entry`` goes and its fields: to be created, never set."""
    if not is_document_id(entry.id):
        raise InvalidInput("an audit entry id must be a plain id", id=entry.id)
    fields = {
        "action": entry.action,
        "actor_type": entry.actor_type,
        "actor_id": entry.actor_id,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "details_json": json_text(entry.details),
        "client_address": entry.client_address,
        "at": entry.at,
    }
    return database.collection(AUDIT_LOG).document(entry.id), fields


def queue_audit(transaction: Transaction, database: FirestoreDatabase, entry: AuditEntry) -> None:
    """Append ``entry`` in ``transaction``: kept if, and when, it commits. A taken id fails
    the commit with AlreadyExists (the caller answers Conflict)."""
    reference, fields = audit_document(database, entry)
    transaction.create(reference, fields)


class FirestoreAuditLog:
    """:class:`omnichannel_core.audit.AuditLog` on the Firestore database."""

    def __init__(self, database: FirestoreDatabase) -> None:
        self.database = database

    async def append(self, entry: AuditEntry) -> None:
        reference, fields = audit_document(self.database, entry)
        try:
            await reference.create(fields)
        except AlreadyExists:
            raise Conflict(f"audit entry {entry.id!r} exists", id=entry.id) from None

    async def list(self, action: str | None, cursor: str | None, limit: int) -> Page:
        collection = self.database.collection(AUDIT_LOG)
        query: Any = collection
        if action is not None:
            query = query.where(filter=FieldFilter("action", "==", action))
        pages = KeysetQuery(collection, query, "at", descending=True, id_prefix="aud")
        return await pages.page(cursor, limit, _entry)

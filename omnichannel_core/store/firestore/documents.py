"""Documents every Firestore store shares: ids made of keys, times read back exactly, JSON
kept as text, and NotFound for a document that is not there."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from google.cloud.firestore_v1 import (
    AsyncCollectionReference,
    AsyncDocumentReference,
    DocumentSnapshot,
)

from omnichannel_core.errors import NotFound
from omnichannel_core.serialization import compact_json, converter


def document_key(*parts: str) -> str:
    """A document id for a unique key made of several strings: any characters, any length,
    always a valid id. SHA-256 of the parts as JSON (so ``("a b", "c")`` and ``("a",
    "b c")`` differ)."""
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def is_document_id(value: str) -> bool:
    """Whether ``value`` can name a document (ids from URLs and tokens are checked, so a
    strange one reads as missing rather than as another path or an error)."""
    return (
        bool(value)
        and "/" not in value
        and value not in (".", "..")
        and not (value.startswith("__") and value.endswith("__"))
        and len(value.encode()) <= 1500
    )


def document(
    collection: AsyncCollectionReference, document_id: str, what: str | None = None
) -> AsyncDocumentReference:
    """The document ``document_id`` of ``collection``; NotFound, as for any unknown id, if
    no document can have it (an id from a request: ``a/b``, ``..``, ``__x__``, ``""``), so
    it never names another path or raises the client's ValueError. ``what`` names the
    record in the error (default: the collection)."""
    if not is_document_id(document_id):
        raise NotFound(f"{what or collection.id} {document_id!r} not found", id=document_id)
    return collection.document(document_id)


def exact_time(value: datetime) -> datetime:
    """A plain UTC datetime (the library reads timestamps as a subclass with nanoseconds)."""
    value = value.astimezone(UTC)
    return datetime(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
        tzinfo=UTC,
    )


def optional_time(value: datetime | None) -> datetime | None:
    return None if value is None else exact_time(value)


def json_text(value: Any) -> str:
    """Free-form data (metadata, attributes, media) as JSON text: stored exactly as given
    (Firestore maps reject empty keys and integers beyond 64 bits), and never indexed."""
    return compact_json(converter.unstructure(value))


def existing(snapshot: DocumentSnapshot, what: str) -> dict[str, Any]:
    """The document's fields, or raise NotFound naming it."""
    if not snapshot.exists:
        raise NotFound(f"{what} {snapshot.id!r} not found", id=snapshot.id)
    return snapshot.to_dict() or {}

"""What a module's Firestore store needs: the database handle its factory is given, and the
helpers every Firestore store of the core uses. Importing it needs Google's client
(``pip install 'omnichannel-core[gcp]'``): reach it only from a store factory
(``StoreSpec(firestore=lazy("my_module.firestore_store", "MyStore"))``).

- :class:`FirestoreDatabase`: ``database.collection(name)`` (prefixed), and
  ``await database.transact(key, body)``: a read-write transaction that reads first, then
  queues writes (:class:`Transaction`), retried while Firestore aborts it, after this
  process's other writers of ``key``.
- :func:`log_event` logs an event in a transaction; :func:`queue_audit` appends an audit
  entry in one.
- :class:`KeysetQuery`: a list in pages with the core's cursors; :func:`document_key`,
  :func:`document`, :func:`existing`, :func:`exact_time`, :func:`optional_time`,
  :func:`json_text`: documents. :func:`document` answers NotFound for an id from a request
  that no document can have (``a/b``, ``..``, ``__x__``); :func:`is_record_id` tells
  whether a value can be an id of your records before a query compares a field with it
  (Firestore refuses a value of about 1,500 bytes or more with an error).
- :data:`FirestoreMigration`: a step that moves documents.
"""

from __future__ import annotations

from omnichannel_core.paging import is_record_id
from omnichannel_core.store.firestore.audit import queue_audit
from omnichannel_core.store.firestore.database import FirestoreDatabase
from omnichannel_core.store.firestore.documents import (
    document,
    document_key,
    exact_time,
    existing,
    is_document_id,
    json_text,
    optional_time,
)
from omnichannel_core.store.firestore.events import log_event
from omnichannel_core.store.firestore.paging import KeysetQuery, decode_position
from omnichannel_core.store.firestore.transaction import Transaction
from omnichannel_core.store.specs import FirestoreMigration

__all__ = [
    "FirestoreDatabase",
    "FirestoreMigration",
    "KeysetQuery",
    "Transaction",
    "decode_position",
    "document",
    "document_key",
    "exact_time",
    "existing",
    "is_document_id",
    "is_record_id",
    "json_text",
    "log_event",
    "optional_time",
    "queue_audit",
]

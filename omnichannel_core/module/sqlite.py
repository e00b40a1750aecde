"""What a module's SQLite store needs: the database handle its factory is given, and the
helpers every SQLite store of the core uses.

- :class:`SqliteDatabase`: ``await database.read(fn)`` runs ``fn(connection)`` on a reader;
  ``await database.write(fn)`` runs it in the next committed batch and returns once durable
  (``fn`` runs on the event loop's thread, inside the transaction: statements only).
- :func:`append_event` logs an event in the write that runs; :func:`append_audit` appends an
  audit entry likewise: each is kept if, and when, that write commits.
- :func:`fetch_one`, :func:`keyset_page`, :func:`json_text`: rows and pages.
- :data:`SqliteMigration`: a schema step (SQL, or a function of the connection).
"""

from __future__ import annotations

from omnichannel_core.store.specs import SqliteMigration
from omnichannel_core.store.sqlite.audit import append_audit
from omnichannel_core.store.sqlite.database import SqliteDatabase
from omnichannel_core.store.sqlite.events import append_event
from omnichannel_core.store.sqlite.migrations import apply_migration
from omnichannel_core.store.sqlite.rows import fetch_one, json_text, keyset_page

__all__ = [
    "SqliteDatabase",
    "SqliteMigration",
    "append_audit",
    "append_event",
    "apply_migration",
    "fetch_one",
    "json_text",
    "keyset_page",
]

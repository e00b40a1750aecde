"""The store: one database per server (SQLite by default, Firestore at scale), shared by the
kernel's stores and every module's.

- :func:`open_database` builds the database ``OMNICHANNEL_STORE`` names;
- `omnichannel_core.store.specs`: what a module declares to own storage;
- `omnichannel_core.store.sqlite` and `omnichannel_core.store.firestore`: each backend's
  database handle, and the kernel's own stores on it (the event log, the audit log, the job
  runner's leases and cursors);
- :data:`KERNEL_STORES`: those three, registered like any module's.

Every query a store makes is answerable by one simple index (no joins a document database
could not do); every write that must be atomic is one method, so each backend can make it
one transaction. The contract suites under ``tests/store_contract/`` pin each store on both
backends.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from omnichannel_core.errors import ConfigError
from omnichannel_core.store.protocols import AuditLog, EventLog, JobStore
from omnichannel_core.store.specs import StoreSpec

if TYPE_CHECKING:
    from omnichannel_core.store.firestore.database import FirestoreDatabase
    from omnichannel_core.store.sqlite.database import SqliteDatabase


class Database(Protocol):
    """What the kernel does with either backend's database handle."""

    backend: str
    """``sqlite`` or ``firestore``: which factory of a :class:`StoreSpec` builds on it."""

    @property
    def location(self) -> str:
        """Where the data is, for people: the file, or the project."""

    async def migrate(self, stores: Sequence[StoreSpec]) -> dict[str, int]: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> dict[str, Any]: ...

    def on_events_logged(self, listener: Callable[[], None]) -> None: ...

    async def data_version(self) -> int | None:
        """A number that changes whenever anything is committed to the database, by any
        process; None when the backend cannot tell cheaply. A polling event bus asks it at
        each poll, and wakes the process's readers only when it moved."""


def lazy(module: str, name: str) -> Callable[[Any], Any]:
    """A store factory that imports ``module`` only when called: a Firestore store's
    module needs Google's client, which a server on SQLite need not have installed."""

    def build(database: Any) -> Any:
        return getattr(importlib.import_module(module), name)(database)

    return build


def _sqlite(module: str, name: str) -> Callable[[Any], Any]:
    return lazy(f"omnichannel_core.store.sqlite.{module}", name)


def _firestore(module: str, name: str) -> Callable[[Any], Any]:
    return lazy(f"omnichannel_core.store.firestore.{module}", name)


def _kernel_stores() -> tuple[StoreSpec, ...]:
    from omnichannel_core.store.sqlite.audit import AUDIT_MIGRATIONS
    from omnichannel_core.store.sqlite.events import EVENT_MIGRATIONS
    from omnichannel_core.store.sqlite.jobs import JOB_MIGRATIONS

    return (
        StoreSpec(
            "events",
            EventLog,
            sqlite=_sqlite("events", "SqliteEventLog"),
            firestore=_firestore("events", "FirestoreEventLog"),
            sqlite_migrations=EVENT_MIGRATIONS,
        ),
        StoreSpec(
            "audit",
            AuditLog,
            sqlite=_sqlite("audit", "SqliteAuditLog"),
            firestore=_firestore("audit", "FirestoreAuditLog"),
            sqlite_migrations=AUDIT_MIGRATIONS,
        ),
        StoreSpec(
            "jobs",
            JobStore,
            sqlite=_sqlite("jobs", "SqliteJobStore"),
            firestore=_firestore("jobs", "FirestoreJobStore"),
            sqlite_migrations=JOB_MIGRATIONS,
        ),
    )


KERNEL_STORES = _kernel_stores()
"""The kernel's own stores: the event log, the audit log, the job runner's leases and
cursors. They are migrated and built like a module's, before any module's."""


def open_database(url: str) -> SqliteDatabase | FirestoreDatabase:
    """Build the database ``OMNICHANNEL_STORE`` names: ``sqlite:///path`` or a bare path, or
    ``firestore://PROJECT`` (credentials from the environment, see
    `omnichannel_core.store.firestore.client`; ``firestore://`` takes the project from them).
    Nothing is opened yet."""
    if url.startswith("firestore://"):
        project = url.removeprefix("firestore://").rstrip("/")
        if "/" in project or "?" in project:
            raise ConfigError(
                "OMNICHANNEL_STORE: use firestore://PROJECT, with nothing after the project",
                variable="OMNICHANNEL_STORE",
            )
        # Imported here: SQLite users need not install firebase-admin.
        from omnichannel_core.store.firestore.database import FirestoreDatabase

        return FirestoreDatabase(project or None)
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://").removeprefix("/")
        if url.startswith("sqlite:////"):
            path = "/" + path.lstrip("/")
    elif "://" in url:
        scheme = url.split("://", 1)[0]
        raise ConfigError(
            f"OMNICHANNEL_STORE: unsupported store {scheme!r}; use sqlite:///PATH or"
            " firestore://PROJECT",
            variable="OMNICHANNEL_STORE",
        )
    else:
        path = url
    if not path:
        raise ConfigError("OMNICHANNEL_STORE: no path given", variable="OMNICHANNEL_STORE")
    from omnichannel_core.store.sqlite.database import SqliteDatabase

    return SqliteDatabase(path)

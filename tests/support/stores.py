"""Every store the core has, opened on one database, as the tests of the stores use them:
the kernel's (event log, audit log, jobs) and the built-in modules' (inbox, access)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import attrs

from omnichannel_core.modules.access.plugin import STORE as ACCESS_STORE
from omnichannel_core.modules.access.store import AccessStore
from omnichannel_core.modules.inbox.plugin import STORE as INBOX_STORE
from omnichannel_core.modules.inbox.store import InboxStore
from omnichannel_core.store import KERNEL_STORES, Database
from omnichannel_core.store.protocols import AuditLog, EventLog, JobStore
from omnichannel_core.store.sqlite.database import SqliteDatabase

SPECS = (*KERNEL_STORES, INBOX_STORE, ACCESS_STORE)
"""Every built-in store, in the order the server registers them."""


@attrs.frozen
class Stores:
    database: Any
    inbox: InboxStore
    access: AccessStore
    events: EventLog
    audit: AuditLog
    jobs: JobStore

    async def close(self) -> None:
        await self.database.close()


async def open_stores(database: Database) -> Stores:
    """Migrate and open ``database``, and build every built-in store on it."""
    await database.migrate(SPECS)
    await database.open()
    built: dict[type, Any] = {}
    for spec in SPECS:
        factory = spec.factory(database.backend)
        assert factory is not None
        built[spec.interface] = factory(database)
    return Stores(
        database,
        built[InboxStore],
        built[AccessStore],
        built[EventLog],
        built[AuditLog],
        built[JobStore],
    )


def open_sqlite_stores(path: Path) -> Stores:
    """The stores on a SQLite file at ``path``, opened on an event loop of their own (the
    caller closes them with ``asyncio.run(stores.close())``)."""
    return asyncio.run(open_stores(SqliteDatabase(path)))

"""SQLite files as the tests of the SQLite backend use them: every store opened on a file
(`tests.support.stores.open_sqlite_stores`), a file left by an older release built with its
SQL, and a file read with plain ``sqlite3``, outside the stores."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omnichannel_core.modules.access.store.sqlite.schema import ACCESS_MIGRATIONS
from omnichannel_core.modules.inbox.store.sqlite.schema import INBOX_MIGRATIONS
from omnichannel_core.store.specs import SqliteMigration
from omnichannel_core.store.sqlite.audit import AUDIT_MIGRATIONS
from omnichannel_core.store.sqlite.events import EVENT_MIGRATIONS
from omnichannel_core.store.sqlite.migrations import LEGACY_STEPS, apply_migration
from tests.support.stores import Stores, open_sqlite_stores

STORE_STEPS: dict[str, tuple[SqliteMigration, ...]] = {
    "inbox": INBOX_MIGRATIONS,
    "access": ACCESS_MIGRATIONS,
    "audit": AUDIT_MIGRATIONS,
    "events": EVENT_MIGRATIONS,
}
"""The stores that existed before the schema was split by store, and their steps today."""

LEGACY_VERSIONS = range(1, max(LEGACY_STEPS) + 1)
"""Every ``user_version`` a release from before the split could leave a file at."""


@contextmanager
def stores_on_file(path: Path) -> Iterator[Stores]:
    """Every store on the SQLite file at ``path``, opened (the file created and migrated),
    closed afterwards. Each call the test makes runs on an event loop of its own
    (``asyncio.run``), as a command-line tool's would."""
    stores = open_sqlite_stores(path)
    try:
        yield stores
    finally:
        asyncio.run(stores.close())


def legacy_steps(version: int) -> list[SqliteMigration]:
    """The steps a release from before the split applied to reach ``version``, in its
    order: the same SQL as the stores' steps today (`LEGACY_STEPS` says which)."""
    return [
        STORE_STEPS[store][step - 1]
        for number in range(1, version + 1)
        for store, step in LEGACY_STEPS[number]
    ]


def write_legacy_file(path: Path, version: int, *rows: str) -> None:
    """A file as a release from before the split left it at ``user_version`` ``version``
    (one number for every store, no ``store_versions``), holding ``rows`` (SQL)."""
    connection = sqlite3.connect(path)
    try:
        for step in [*legacy_steps(version), *rows]:
            apply_migration(connection, step)
        connection.execute(f"PRAGMA user_version = {version}")
        connection.commit()
    finally:
        connection.close()


def read_rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows ``sql`` selects, read on a connection of its own, outside the stores."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()

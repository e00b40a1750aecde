"""A SQLite store opened on a file, and that file read with plain ``sqlite3``: what the tests
of the SQLite backend share."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from omnichannel_core.store.sqlite import SqliteStore


def open_store_file(path: Path) -> SqliteStore:
    """A SqliteStore on ``path``, opened (created and migrated); the caller closes it."""
    store = SqliteStore(path)
    asyncio.run(store.open())
    return store


def read_rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows ``sql`` selects, read on a connection of its own, outside the store."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()

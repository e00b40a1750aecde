"""The embedded default database: one SQLite file in WAL mode, zero set-up.

Every store on it (the kernel's and each module's) runs its statements through the one
:class:`SqliteDatabase` of the process: writes are group-committed and serialized across
processes (`omnichannel_core.store.sqlite.runner`), reads run on a pool. A write whose
statements logged events (`omnichannel_core.store.sqlite.events.append_event`) tells the
event bus once it is committed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from omnichannel_core.store.specs import StoreSpec
from omnichannel_core.store.sqlite.file import create_private_file, unusable_store
from omnichannel_core.store.sqlite.migrations import migrate, store_versions
from omnichannel_core.store.sqlite.runner import SqliteRunner, connect, holding_writer_lock

T = TypeVar("T")


def _nobody_listens() -> None:
    pass


class SqliteDatabase:
    """One SQLite file, shared by every store of the process.

    :param path: the database file; created (0600, in 0700 folders) when missing.
    """

    backend = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._listener: Callable[[], None] = _nobody_listens
        self._latest: dict[str, int] = {}
        self._runner = SqliteRunner(self.path, events_logged=self._events_logged)

    @property
    def location(self) -> str:
        """The file, whole."""
        return f"the SQLite file {self.path.resolve()}"

    def on_events_logged(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (quick, not a coroutine) after each write of this process that
        logged events, once it is committed: how a bus learns there is news to announce."""
        self._listener = listener

    def _events_logged(self) -> None:
        self._listener()

    async def migrate(self, stores: Sequence[StoreSpec]) -> dict[str, int]:
        """Create the file (private) if missing and bring every store's schema up to date;
        a path that cannot be used raises ConfigError naming OMNICHANNEL_STORE and why."""
        steps = [(spec.name, spec.sqlite_migrations) for spec in stores]
        self._latest = {name: len(migrations) for name, migrations in steps}
        # Off the event loop: another process may hold the write lock for a while.
        return await asyncio.to_thread(self._migrate, steps)

    def _migrate(self, steps: list[tuple[str, Any]]) -> dict[str, int]:
        try:
            create_private_file(self.path)
            with holding_writer_lock(self.path):
                connection = connect(self.path)
                try:
                    return migrate(connection, steps)
                finally:
                    connection.close()
        except (OSError, sqlite3.Error) as error:
            raise unusable_store(self.path, error) from error

    async def open(self) -> None:
        self._runner.start()

    async def close(self) -> None:
        await self._runner.close()

    async def ping(self) -> dict[str, Any]:
        """A cheap round trip; facts for the health report: each store's schema version,
        and whether every store this process knows is at its latest."""
        versions = await self._runner.read(store_versions)
        current = all(versions.get(name) == latest for name, latest in self._latest.items())
        return {"backend": self.backend, "schema": versions, "schema_current": current}

    async def data_version(self) -> int:
        """Changes whenever anything is committed to the file, by any process."""
        return await self._runner.data_version()

    async def read(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``function`` on a read-only connection of the pool."""
        return await self._runner.read(function)

    async def write(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``function`` in the next committed batch; returns once it is durable.

        ``function`` runs on this event loop's thread, inside the batch's transaction: it
        should only run statements, and may raise to undo its own statements alone.
        """
        return await self._runner.write(function)

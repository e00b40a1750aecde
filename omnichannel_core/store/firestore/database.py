"""The production database: Firestore (native mode), through the async client of
firebase-admin's google-cloud-firestore.

Every store on it (the kernel's and each module's) shares the one :class:`FirestoreDatabase`
of the process: its client (made by :meth:`open`, on the event loop that uses it), its
collection prefix, and :meth:`transact`, which runs a read-write transaction in as few round
trips as Firestore allows (`omnichannel_core.store.firestore.transaction`), after this
process's other writers of the same key, and tells the event bus when it logged events.

Firestore has no schema: a store's migrations here move documents when their layout
changes. ``meta/store_versions`` records how many of each store's steps were applied.
Composite indexes are deployed from ``firestore.indexes.json``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any, TypeVar

from google.cloud.firestore_v1 import AsyncClient, AsyncCollectionReference

from omnichannel_core.errors import ConfigError
from omnichannel_core.store.firestore.client import (
    FirestoreSettings,
    connect,
    disconnect,
    load_credentials,
    settings_from_environment,
)
from omnichannel_core.store.firestore.events import COMMIT_WINDOW, check_commit
from omnichannel_core.store.firestore.transaction import TakingTurns, Transaction, transact
from omnichannel_core.store.specs import StoreSpec

T = TypeVar("T")

VERSIONS = "store_versions"
"""The ``meta`` document recording each store's applied migrations."""


def _nobody_listens() -> None:
    pass


class FirestoreDatabase:
    """One Firestore database (and collection prefix), shared by every store of the process.

    Credentials are read when it is built (a bad one raises ConfigError naming its variable);
    the connection is made by :meth:`open`.

    :param prefix: prepended to every collection name, so several deployments (or tests)
        can share a database.
    :param event_commit_window: see `omnichannel_core.store.firestore.events`.
    """

    backend = "firestore"

    def __init__(
        self,
        project: str | None = None,
        *,
        prefix: str = "",
        settings: FirestoreSettings | None = None,
        event_commit_window: timedelta = COMMIT_WINDOW,
    ) -> None:
        self.settings = settings or settings_from_environment(project)
        self.prefix = prefix
        self.event_commit_window = event_commit_window
        self._client: AsyncClient | None = None
        self._turns = TakingTurns()
        self._listener: Callable[[], None] = _nobody_listens
        self._latest: dict[str, int] = {}

    @property
    def location(self) -> str:
        """The project, and the collections' prefix if any."""
        prefix = f", collections prefixed {self.prefix!r}" if self.prefix else ""
        return f"the Firestore project {self.settings.project}{prefix}"

    def on_events_logged(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (quick, not a coroutine) after each transaction of this
        process that logged events, once it is committed."""
        self._listener = listener

    @property
    def client(self) -> AsyncClient:
        if self._client is None:
            raise RuntimeError("open() the Firestore database first")
        return self._client

    def collection(self, name: str) -> AsyncCollectionReference:
        """The collection ``name``, prefixed."""
        return self.client.collection(self.prefix + name)

    def turn(self, *key: str) -> AbstractAsyncContextManager[None]:
        """Wait for this process's other writers of ``key`` (as :meth:`transact` does), for
        writes made outside a transaction."""
        return self._turns.turn(*key)

    async def open(self) -> None:
        """Connect (idempotent)."""
        if self._client is not None:
            return
        credentials = self.settings.credentials
        if credentials is None:  # Application Default: may ask the metadata server
            credentials = await asyncio.to_thread(load_credentials, self.settings)
            if self._client is not None:  # opened meanwhile
                return
        self._client = connect(self.settings, credentials)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await disconnect(client)

    async def migrate(self, stores: Sequence[StoreSpec]) -> dict[str, int]:
        """Run the missing document migrations of each store, in order, and record them.
        A step must be safe to run twice: two servers may start one at once."""
        await self.open()
        reference = self.collection("meta").document(VERSIONS)
        snapshot = await reference.get()
        versions: dict[str, int] = dict(snapshot.to_dict() or {}) if snapshot.exists else {}
        for spec in stores:
            steps = spec.firestore_migrations
            current = versions.get(spec.name, 0)
            if current > len(steps):
                raise ConfigError(
                    f"OMNICHANNEL_STORE: store {spec.name!r} is at version {current}, this"
                    f" code has {len(steps)}; upgrade omnichannel-core and its modules",
                    variable="OMNICHANNEL_STORE",
                )
            for step in steps[current:]:
                await step(self)
            versions[spec.name] = len(steps)
            self._latest[spec.name] = len(steps)
        await reference.set(versions, merge=True)
        return versions

    async def data_version(self) -> None:
        """Firestore cannot tell cheaply whether anything was committed: a polling bus on it
        wakes the readers at every poll (Pub/Sub rings them instead)."""
        return None

    async def ping(self) -> dict[str, Any]:
        """A cheap round trip; facts for the health report (nothing secret)."""
        snapshot = await self.collection("meta").document(VERSIONS).get()
        versions = dict(snapshot.to_dict() or {}) if snapshot.exists else {}
        current = all(versions.get(name) == latest for name, latest in self._latest.items())
        return {
            "backend": self.backend,
            "schema": versions,
            "schema_current": current,
            **self.settings.facts(),
        }

    async def transact(
        self, key: tuple[str, ...], body: Callable[[Transaction], Awaitable[T]]
    ) -> T:
        """Run ``body`` in a transaction and commit it (again, while Firestore aborts it),
        after this process's other writers of ``key``: writers of one record in one process
        take turns instead of aborting each other. ``body`` reads first, then queues writes,
        and may run more than once."""
        window = self.event_commit_window

        def committed(transaction: Transaction) -> None:
            check_commit(transaction, window)
            if transaction.logged_events:
                self._listener()

        async with self._turns.turn(*key):
            return await transact(self.client, body, committed=committed)

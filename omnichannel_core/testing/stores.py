"""A module's store on a real database, for its contract tests: :func:`run_store`.

The server migrates the kernel's stores and every module's on one database, then builds each
store with the factory for its backend. :func:`run_store` does the same for one module's
:class:`~omnichannel_core.store.specs.StoreSpec` on a database a test gives (the kit's
``sqlite_database`` and ``firestore_database`` fixtures), so one test body runs on both
backends::

    @pytest.fixture(params=["sqlite", "firestore"])
    def database(request):
        return request.getfixturevalue(f"{request.param}_database")


    def test_greets_a_contact_once(database):
        async def scenario(store):
            assert await store.greet(greeting("ct_1"))
            assert not await store.greet(greeting("ct_1"))

        run_store(STORE, database, scenario)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from omnichannel_core.store import KERNEL_STORES, Database
from omnichannel_core.store.specs import StoreSpec

T = TypeVar("T")


def run_store(spec: StoreSpec, database: Database, scenario: Callable[[Any], Awaitable[T]]) -> T:
    """Migrate ``database`` (built, not opened) for the kernel's stores and ``spec``, open
    it, build ``spec``'s store for its backend and return ``await scenario(store)``; the
    database is closed after. It all runs on an event loop of its own.

    The kernel's stores are there because a module's writes may log events and audit
    entries in their own transaction (``append_event``, ``log_event``...).
    """
    factory = spec.factory(database.backend)
    if factory is None:
        raise ValueError(f"store {spec.name!r} has no {database.backend} implementation")

    async def run() -> T:
        await database.migrate([*KERNEL_STORES, spec])
        await database.open()
        try:
            return await scenario(factory(database))
        finally:
            await database.close()

    return asyncio.run(run())

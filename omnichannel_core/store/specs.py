"""What a module declares to own storage: :class:`StoreSpec`.

A module's store is a protocol of its own (what it needs, as coroutines) with an
implementation per backend. The kernel opens one database (``OMNICHANNEL_STORE``: SQLite or
Firestore), applies every store's migrations for that backend, then builds each store on it
with the factory for that backend. A module reaches its store through
``context.store(Interface)``, never another module's.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from omnichannel_core.store.firestore.database import FirestoreDatabase
    from omnichannel_core.store.sqlite.database import SqliteDatabase

SqliteMigration = str | Callable[[sqlite3.Connection], None]
"""SQL (statements separated by ``;``) or a function of the connection, run inside the
migration's transaction."""
FirestoreMigration = Callable[["FirestoreDatabase"], Awaitable[None]]
"""A coroutine that moves documents to a new layout; it must be safe to run again (another
server may have started it)."""

STORE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,31})?$")


def _name(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not STORE_NAME.match(value):
        raise ValueError(f"store names look like 'greeter' (lower case), not {value!r}")


@attrs.frozen
class StoreSpec:
    """A module's store.

    :param name: the store's name: its migrations are counted under it, and it prefixes
        nothing by itself (choose table and collection names that say whose they are).
    :param interface: what ``context.store(interface)`` returns (the store's protocol, or
        its class).
    :param sqlite: builds the store on the SQLite database; None: the module has no SQLite
        store, and the server refuses to start on SQLite with it.
    :param firestore: the same for Firestore.
    :param sqlite_migrations: the schema, as numbered steps: never change or remove a step
        once released, append a new one.
    :param firestore_migrations: steps that move documents when their layout changes.
    """

    name: str = attrs.field(validator=_name)
    interface: type[Any]
    sqlite: Callable[[SqliteDatabase], Any] | None = None
    firestore: Callable[[FirestoreDatabase], Any] | None = None
    sqlite_migrations: tuple[SqliteMigration, ...] = ()
    firestore_migrations: tuple[FirestoreMigration, ...] = ()

    def factory(self, backend: str) -> Callable[[Any], Any] | None:
        return self.sqlite if backend == "sqlite" else self.firestore

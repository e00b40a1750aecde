"""The SQLite schema, store by store: each store's migrations are numbered steps, and the
table ``store_versions`` records how many of each were applied.

Every process that opens the database (the gunicorn master, each worker, the job runner)
runs :func:`migrate` under the writers' lock, in one transaction: the first applies what is
missing, the others find nothing to do.

Files made before the schema was split by store carry one number for everything in
``PRAGMA user_version`` (1 to 8). :data:`LEGACY_STEPS` says which store step each of those
numbers was, so such a file is adopted as it is: every step it already has is counted as
applied, and only the rest run. Since the split, ``user_version`` is :data:`SCHEME`; a
release from before the split refuses such a file ("newer than this release knows") instead
of misreading it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from omnichannel_core.errors import ConfigError
from omnichannel_core.store.specs import SqliteMigration

SCHEME = 9
"""``PRAGMA user_version`` of a database whose versions are kept per store."""

LEGACY_STEPS: dict[int, tuple[tuple[str, int], ...]] = {
    1: (("inbox", 1),),
    2: (("inbox", 2),),
    3: (("inbox", 3),),
    4: (("inbox", 4),),
    5: (("inbox", 5),),
    6: (("access", 1), ("audit", 1)),
    7: (("events", 1),),
    8: (("inbox", 6),),
}
"""What each pre-split schema version made, as (store, step)."""

StoreMigrations = tuple[str, Sequence[SqliteMigration]]


def apply_migration(connection: sqlite3.Connection, migration: SqliteMigration) -> None:
    """Run one step on ``connection``, inside the caller's transaction."""
    if callable(migration):
        migration(connection)
        return
    for statement in migration.split(";"):
        if statement.strip():
            connection.execute(statement)


def _adopt_legacy(connection: sqlite3.Connection, version: int) -> None:
    adopted: dict[str, int] = {}
    for number in range(1, version + 1):
        for store, step in LEGACY_STEPS[number]:
            adopted[store] = max(adopted.get(store, 0), step)
    connection.executemany(
        "INSERT INTO store_versions (store, version) VALUES (?, ?)", sorted(adopted.items())
    )


class MigrationFailed(sqlite3.Error):
    """A store's step failed: which store and step, and SQLite's reason. Nothing of the
    migration is kept, and start-up stops (``OMNICHANNEL_STORE: cannot use <file>: ...``)."""


def _newer(detail: str) -> ConfigError:
    return ConfigError(
        f"OMNICHANNEL_STORE: the database is newer than this release ({detail});"
        " upgrade omnichannel-core and its modules",
        variable="OMNICHANNEL_STORE",
    )


def migrate(connection: sqlite3.Connection, stores: Sequence[StoreMigrations]) -> dict[str, int]:
    """Apply every store's missing steps, in the order given, in one transaction; returns
    each store's version. A store the file knows but ``stores`` does not (a module that was
    uninstalled) is left as it is."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEME:
            raise _newer(f"schema scheme {version}, this release knows {SCHEME}")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS store_versions"
            " (store TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID"
        )
        if 0 < version < SCHEME:
            _adopt_legacy(connection, version)
        connection.execute(f"PRAGMA user_version = {SCHEME}")
        versions = dict(connection.execute("SELECT store, version FROM store_versions"))
        for name, steps in stores:
            current = versions.get(name, 0)
            if current > len(steps):
                raise _newer(f"store {name!r} is at version {current}, this code has {len(steps)}")
            for number, step in enumerate(steps[current:], start=current + 1):
                try:
                    apply_migration(connection, step)
                except sqlite3.Error as error:
                    raise MigrationFailed(f"store {name!r}, step {number}: {error}") from error
            if len(steps) != current:
                connection.execute(
                    "INSERT INTO store_versions (store, version) VALUES (?, ?)"
                    " ON CONFLICT (store) DO UPDATE SET version = excluded.version",
                    (name, len(steps)),
                )
            versions[name] = len(steps)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return versions


def store_versions(connection: sqlite3.Connection) -> dict[str, int]:
    """Each store's version (empty before the first migration)."""
    try:
        return dict(connection.execute("SELECT store, version FROM store_versions"))
    except sqlite3.OperationalError:  # no such table yet
        return {}

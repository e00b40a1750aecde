"""The SQLite schema, as numbered migrations; ``PRAGMA user_version`` records the last applied.

A migration is SQL (statements separated by ``;``) or a Python step taking the connection,
for data SQL alone cannot recompute.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from omnichannel_core.errors import ConfigError
from omnichannel_core.store.sqlite_contacts import recompute_search_terms

Migration = str | Callable[[sqlite3.Connection], None]

MIGRATIONS: tuple[Migration, ...] = (
    # 1: contacts, identities, conversations, messages
    """
    CREATE TABLE contacts (
        id TEXT PRIMARY KEY,
        display_name TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        attributes TEXT NOT NULL DEFAULT '{}',
        search_terms TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX contacts_by_created ON contacts (created_at DESC, id DESC);

    CREATE TABLE identities (
        channel TEXT NOT NULL,
        address TEXT NOT NULL,
        contact_id TEXT NOT NULL,
        PRIMARY KEY (channel, address)
    ) WITHOUT ROWID;
    CREATE INDEX identities_by_contact ON identities (contact_id);

    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        contact_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        address TEXT NOT NULL,
        status TEXT NOT NULL,
        assignee TEXT,
        unread_count INTEGER NOT NULL DEFAULT 0,
        last_activity_at TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (contact_id, channel)
    );
    CREATE INDEX conversations_by_activity ON conversations (last_activity_at DESC, id DESC);

    CREATE TABLE messages (
        id TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        contact_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        direction TEXT NOT NULL,
        status TEXT NOT NULL,
        text TEXT,
        media TEXT NOT NULL DEFAULT '[]',
        provider_message_id TEXT,
        idempotency_key TEXT,
        error_code TEXT,
        error_message TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX messages_by_provider_id
        ON messages (channel, provider_message_id) WHERE provider_message_id IS NOT NULL;
    CREATE UNIQUE INDEX messages_by_idempotency_key
        ON messages (idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX messages_by_conversation ON messages (conversation_id, created_at, id);
    """,
    # 2: provider ids are unique per direction: a provider (or a custom system) may give an
    # outbound message the id of an inbound one; inbound dedupe and status lookups each
    # search their own direction.
    """
    DROP INDEX messages_by_provider_id;
    CREATE UNIQUE INDEX messages_by_provider_id
        ON messages (channel, direction, provider_message_id)
        WHERE provider_message_id IS NOT NULL;
    """,
    # 3: status updates that arrive before their message's provider id is recorded wait
    # here (one row per channel, provider id and status) until it is, or until they expire.
    """
    CREATE TABLE parked_statuses (
        channel TEXT NOT NULL,
        provider_message_id TEXT NOT NULL,
        status TEXT NOT NULL,
        error_code TEXT,
        error_message TEXT,
        parked_at TEXT NOT NULL,
        PRIMARY KEY (channel, provider_message_id, status)
    ) WITHOUT ROWID;
    CREATE INDEX parked_statuses_by_time ON parked_statuses (parked_at);
    """,
    # 4: search words gained phone digits and email domains: recompute every contact's.
    recompute_search_terms,
    # 5: the channels on which a contact opted out (SMS STOP), as a JSON list.
    """
    ALTER TABLE contacts ADD COLUMN opted_out TEXT NOT NULL DEFAULT '[]';
    """,
)


def apply_migration(connection: sqlite3.Connection, migration: Migration) -> None:
    """Run one migration on ``connection``, inside the caller's transaction."""
    if callable(migration):
        migration(connection)
        return
    for statement in migration.split(";"):
        if statement.strip():
            connection.execute(statement)


def migrate(connection: sqlite3.Connection) -> int:
    """Apply every migration not yet applied, under one write lock; returns the version."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise ConfigError(
                f"OMNICHANNEL_STORE: the database is at schema version {version}, newer than"
                f" this release knows ({len(MIGRATIONS)}); upgrade omnichannel-core",
                variable="OMNICHANNEL_STORE",
            )
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            apply_migration(connection, migration)
            connection.execute(f"PRAGMA user_version = {number}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)

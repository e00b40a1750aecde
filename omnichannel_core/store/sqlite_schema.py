"""The SQLite schema, as numbered migrations; ``PRAGMA user_version`` records the last applied.

A migration is SQL (statements separated by ``;``) or a Python step taking the connection,
for data SQL alone cannot recompute, or for statements that hold ``;`` themselves (a
trigger's body).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from omnichannel_core.errors import ConfigError
from omnichannel_core.store.sqlite_contacts import recompute_search_terms
from omnichannel_core.store.sqlite_events import EVENT_TABLES

Migration = str | Callable[[sqlite3.Connection], None]

ACCESS_TABLES = """
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE CHECK (email = lower(email)),
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX users_by_created ON users (created_at, id);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id) WHERE ended_at IS NULL;

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    expires_at TEXT NOT NULL,
    used_at TEXT
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL DEFAULT '[]',
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_by TEXT,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE INDEX api_keys_by_created ON api_keys (created_at, id);

CREATE TABLE login_failures (
    email TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX login_failures_by_email ON login_failures (email, at);
CREATE INDEX login_failures_by_time ON login_failures (at);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_id TEXT,
    target_type TEXT,
    target_id TEXT,
    details TEXT NOT NULL DEFAULT '{}',
    client_address TEXT,
    at TEXT NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_by_action ON audit_log (action, at DESC, id DESC);
"""
"""Users (emails stored lower-cased), their sessions and each session's refresh tokens, API
keys, failed logins and the audit log.

An agent's conversations (assigned to them or to nobody) get no index of their own: most
conversations match, so walking ``conversations_by_activity`` finds a page soonest, and an
index on the assignee would cost every inbound message, which moves ``last_activity_at``."""

AUDIT_LOG_TRIGGERS = (
    """
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END
    """,
    """
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END
    """,
    # INSERT OR REPLACE deletes the row it replaces without firing DELETE triggers (unless
    # recursive_triggers is on): refuse an insert whose id is taken before it gets there.
    """
    CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log
    WHEN EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id)
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END
    """,
)
"""The audit log is append-only by the database's own rule, whoever writes to the file."""


def create_access_tables(connection: sqlite3.Connection) -> None:
    """Migration step: :data:`ACCESS_TABLES`, then :data:`AUDIT_LOG_TRIGGERS` one by one (a
    trigger's body holds ``;``, which a SQL migration splits on)."""
    apply_migration(connection, ACCESS_TABLES)
    for trigger in AUDIT_LOG_TRIGGERS:
        connection.execute(trigger)


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
    # 6: access: users, sessions, refresh tokens, API keys, failed logins, the audit log.
    create_access_tables,
    # 7: the event log that realtime streams read (omnichannel_core.store.sqlite_events).
    EVENT_TABLES,
    # 8: receipts and the messaging window: when the customer last wrote in each
    # conversation (filled from its newest inbound message), and the two lookups of a
    # watermark, a conversation by its address and its messages not yet at a status.
    """
    ALTER TABLE conversations ADD COLUMN last_inbound_at TEXT;
    UPDATE conversations SET last_inbound_at = (
        SELECT max(created_at) FROM messages
        WHERE messages.conversation_id = conversations.id AND direction = 'inbound'
    );
    CREATE INDEX conversations_by_address ON conversations (channel, address);
    CREATE INDEX messages_by_status ON messages (conversation_id, status, created_at);
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

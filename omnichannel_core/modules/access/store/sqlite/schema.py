"""The access store's SQLite schema, as numbered migrations (the core applies them, and
records how many were, per store: `omnichannel_core.store.sqlite.migrations`)."""

from __future__ import annotations

from omnichannel_core.module.sqlite import SqliteMigration

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
CREATE INDEX login_failures_by_time ON login_failures (at)
"""
"""Users (emails stored lower-cased), their sessions and each session's refresh tokens, API
keys and failed logins."""

ACCESS_MIGRATIONS: tuple[SqliteMigration, ...] = (ACCESS_TABLES,)
"""The ``access`` store; its step 1 is part of the pre-module schema's migration 6 (the
audit log, made by the same migration, is the core's ``audit`` store)."""

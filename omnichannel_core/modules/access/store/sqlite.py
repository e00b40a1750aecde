"""Access in SQLite: users, sessions and their refresh tokens, API keys and failed logins
(`omnichannel_core.modules.access.store.AccessStore` is the contract).

Each function takes the connection and runs inside the runner's transaction (a write) or on
a reader; writes are a few statements on primary keys or indexes, as they run on the event
loop's thread. When a session ends, its refresh tokens are deleted: a token of an ended
session answers UNKNOWN whether it is kept or not.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta

from omnichannel_core.module import (
    UNSET,
    Conflict,
    NotFound,
    Page,
    Role,
    decode_list_cursor,
    format_timestamp,
    new_id,
    parse_timestamp,
    utcnow,
)
from omnichannel_core.module.sqlite import SqliteDatabase, SqliteMigration, fetch_one, keyset_page
from omnichannel_core.modules.access.records import (
    ApiKey,
    Refreshed,
    RefreshOutcome,
    User,
    UserCredentials,
)

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

# Rows to records


def user_from_row(row: sqlite3.Row) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        display_name=row["display_name"],
        role=Role(row["role"]),
        active=bool(row["active"]),
        created_at=parse_timestamp(row["created_at"]),
        updated_at=parse_timestamp(row["updated_at"]),
    )


def credentials_from_row(row: sqlite3.Row) -> UserCredentials:
    return UserCredentials(user=user_from_row(row), password_hash=row["password_hash"])


def api_key_from_row(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        scopes=tuple(json.loads(row["scopes"])),
        prefix=row["prefix"],
        created_by=row["created_by"],
        created_at=parse_timestamp(row["created_at"]),
        last_used_at=_optional_timestamp(row["last_used_at"]),
        revoked_at=_optional_timestamp(row["revoked_at"]),
    )


def _optional_timestamp(value: str | None) -> datetime | None:
    return None if value is None else parse_timestamp(value)


# Users


def _user_row(connection: sqlite3.Connection, user_id: str) -> sqlite3.Row:
    return fetch_one(connection, "SELECT * FROM users WHERE id = ?", (user_id,), "user")


def fetch_user(connection: sqlite3.Connection, user_id: str) -> User:
    return user_from_row(_user_row(connection, user_id))


def fetch_credentials_by_id(connection: sqlite3.Connection, user_id: str) -> UserCredentials:
    return credentials_from_row(_user_row(connection, user_id))


def find_credentials(connection: sqlite3.Connection, email: str) -> UserCredentials | None:
    row = connection.execute("SELECT * FROM users WHERE email = ?", (email.lower(),)).fetchone()
    return None if row is None else credentials_from_row(row)


def insert_user(
    connection: sqlite3.Connection, email: str, display_name: str, role: Role, password_hash: str
) -> User:
    """A new active user; Conflict when the (lower-cased) email is taken."""
    now = format_timestamp(utcnow())
    row = connection.execute(
        "INSERT INTO users (id, email, display_name, role, active, password_hash, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, 1, ?, ?, ?) ON CONFLICT (email) DO NOTHING"
        " RETURNING *",
        (new_id("usr"), email.lower(), display_name, Role(role), password_hash, now, now),
    ).fetchone()
    if row is None:
        raise Conflict("a user with this email exists", email=email.lower())
    return user_from_row(row)


def list_users(connection: sqlite3.Connection, after: tuple[str, str] | None, limit: int) -> Page:
    return keyset_page(
        connection,
        "SELECT * FROM users WHERE 1 = 1",
        [],
        after,
        ("created_at", "id"),
        descending=False,
        limit=limit,
        build=user_from_row,
    )


def has_active_admin(connection: sqlite3.Connection) -> bool:
    row = connection.execute(
        "SELECT 1 FROM users WHERE role = ? AND active = 1 LIMIT 1", (Role.ADMIN.value,)
    ).fetchone()
    return row is not None


def _is_active_admin(role: Role | str, active: bool | int) -> bool:
    return Role(role) is Role.ADMIN and bool(active)


def update_user(
    connection: sqlite3.Connection,
    user_id: str,
    display_name: str,
    role: Role,
    active: bool,
    password_hash: str,
) -> User:
    """Change the given fields (the others are UNSET); deactivating ends the user's sessions.
    Conflict, before anything is written, when no active admin would be left."""
    current = _user_row(connection, user_id)
    new_role = Role(current["role"] if role is UNSET else role)
    new_active = bool(current["active"]) if active is UNSET else bool(active)
    was_admin = _is_active_admin(current["role"], current["active"])
    if was_admin and not _is_active_admin(new_role, new_active):
        others = connection.execute(
            "SELECT 1 FROM users WHERE role = ? AND active = 1 AND id != ? LIMIT 1",
            (Role.ADMIN, user_id),
        ).fetchone()
        if others is None:
            raise Conflict("the last active admin cannot be demoted or deactivated", id=user_id)
    now = format_timestamp(utcnow())
    row = connection.execute(
        "UPDATE users SET display_name = ?, role = ?, active = ?, password_hash = ?,"
        " updated_at = ? WHERE id = ? RETURNING *",
        (
            current["display_name"] if display_name is UNSET else display_name,
            new_role,
            int(new_active),
            current["password_hash"] if password_hash is UNSET else password_hash,
            now,
            user_id,
        ),
    ).fetchone()
    if not new_active:
        end_user_sessions(connection, user_id, None, now)
    return user_from_row(row)


# Sessions and refresh tokens


def insert_session(
    connection: sqlite3.Connection, user_id: str, refresh_token_hash: str, expires_at: datetime
) -> str:
    """A new session of an active user, with its first refresh token; NotFound otherwise."""
    active = connection.execute(
        "SELECT 1 FROM users WHERE id = ? AND active = 1", (user_id,)
    ).fetchone()
    if active is None:
        raise NotFound(f"active user {user_id!r} not found", id=user_id)
    session_id = new_id("ses")
    connection.execute(
        "INSERT INTO sessions (id, user_id, created_at) VALUES (?, ?, ?)",
        (session_id, user_id, format_timestamp(utcnow())),
    )
    _insert_token(connection, refresh_token_hash, session_id, expires_at)
    return session_id


def _insert_token(
    connection: sqlite3.Connection, token_hash: str, session_id: str, expires_at: datetime
) -> None:
    inserted = connection.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (token_hash, session_id, format_timestamp(expires_at)),
    )
    if inserted.rowcount != 1:
        raise Conflict("this refresh token hash is already stored")


ROTATION_READ = """
SELECT refresh_tokens.session_id, refresh_tokens.expires_at, refresh_tokens.used_at,
    sessions.ended_at, users.*
FROM refresh_tokens
JOIN sessions ON sessions.id = refresh_tokens.session_id
JOIN users ON users.id = sessions.user_id
WHERE refresh_tokens.token_hash = ?
"""
"""A refresh token with its session and the session's user, by primary keys."""


def rotate(
    connection: sqlite3.Connection,
    token_hash: str,
    new_token_hash: str,
    expires_at: datetime,
    now: datetime,
) -> Refreshed:
    """Use a refresh token: UNKNOWN, REUSED (ending its session) or ROTATED (see
    :meth:`omnichannel_core.store.access.AccessStore.rotate_refresh_token`)."""
    row = connection.execute(ROTATION_READ, (token_hash,)).fetchone()
    at = format_timestamp(now)
    if row is None or row["expires_at"] <= at or row["ended_at"] is not None or not row["active"]:
        return Refreshed(RefreshOutcome.UNKNOWN)
    session_id = row["session_id"]
    if row["used_at"] is not None:
        end_session(connection, session_id, at)
        return Refreshed(RefreshOutcome.REUSED, session_id=session_id)
    connection.execute(
        "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?", (at, token_hash)
    )
    _insert_token(connection, new_token_hash, session_id, expires_at)
    return Refreshed(RefreshOutcome.ROTATED, user=user_from_row(row), session_id=session_id)


def end_session(connection: sqlite3.Connection, session_id: str, now: str) -> bool:
    """End the session if active, deleting its refresh tokens; True if it was active."""
    ended = connection.execute(
        "UPDATE sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL", (now, session_id)
    )
    if ended.rowcount != 1:
        return False
    connection.execute("DELETE FROM refresh_tokens WHERE session_id = ?", (session_id,))
    return True


def end_user_sessions(
    connection: sqlite3.Connection, user_id: str, except_session_id: str | None, now: str
) -> int:
    """End the user's active sessions but ``except_session_id``; returns how many."""
    ended = connection.execute(
        "UPDATE sessions SET ended_at = ? WHERE user_id = ? AND ended_at IS NULL"
        " AND id IS NOT ? RETURNING id",
        (now, user_id, except_session_id),
    ).fetchall()
    connection.executemany(
        "DELETE FROM refresh_tokens WHERE session_id = ?", [(row["id"],) for row in ended]
    )
    return len(ended)


def session_user(connection: sqlite3.Connection, user_id: str, session_id: str) -> User | None:
    """One read: the user, if active and the owner of the session, which has not ended."""
    row = connection.execute(
        "SELECT users.* FROM sessions JOIN users ON users.id = sessions.user_id"
        " WHERE sessions.id = ? AND sessions.user_id = ? AND sessions.ended_at IS NULL"
        " AND users.active = 1",
        (session_id, user_id),
    ).fetchone()
    return None if row is None else user_from_row(row)


# API keys


def insert_api_key(
    connection: sqlite3.Connection,
    name: str,
    scopes: tuple[str, ...],
    prefix: str,
    key_hash: str,
    created_by: str | None,
) -> ApiKey:
    """A new key, scopes sorted; Conflict when a key with this hash is stored."""
    row = connection.execute(
        "INSERT INTO api_keys (id, name, scopes, prefix, key_hash, created_by, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key_hash) DO NOTHING RETURNING *",
        (
            new_id("key"),
            name,
            json.dumps(sorted(scopes)),
            prefix,
            key_hash,
            created_by,
            format_timestamp(utcnow()),
        ),
    ).fetchone()
    if row is None:
        raise Conflict("an API key with this hash is already stored")
    return api_key_from_row(row)


def fetch_api_key(connection: sqlite3.Connection, key_id: str) -> ApiKey:
    row = fetch_one(connection, "SELECT * FROM api_keys WHERE id = ?", (key_id,), "API key")
    return api_key_from_row(row)


def find_api_key(connection: sqlite3.Connection, key_hash: str) -> ApiKey | None:
    row = connection.execute("SELECT * FROM api_keys WHERE key_hash = ?", (key_hash,)).fetchone()
    return None if row is None else api_key_from_row(row)


def list_api_keys(
    connection: sqlite3.Connection, after: tuple[str, str] | None, limit: int
) -> Page:
    return keyset_page(
        connection,
        "SELECT * FROM api_keys WHERE 1 = 1",
        [],
        after,
        ("created_at", "id"),
        descending=False,
        limit=limit,
        build=api_key_from_row,
    )


def revoke_api_key(connection: sqlite3.Connection, key_id: str, at: datetime) -> ApiKey:
    """Revoke the key; a key already revoked keeps its first time. NotFound if unknown."""
    row = connection.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? RETURNING *",
        (format_timestamp(at), key_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"API key {key_id!r} not found", id=key_id)
    return api_key_from_row(row)


def touch_api_key(connection: sqlite3.Connection, key_id: str, at: datetime) -> None:
    """Move ``last_used_at`` forward to ``at`` (never back); NotFound if unknown."""
    stamp = format_timestamp(at)
    moved = connection.execute(
        "UPDATE api_keys SET last_used_at = ? WHERE id = ?"
        " AND (last_used_at IS NULL OR last_used_at < ?)",
        (stamp, key_id, stamp),
    )
    if moved.rowcount == 0:
        fetch_one(connection, "SELECT 1 FROM api_keys WHERE id = ?", (key_id,), "API key")


# Failed logins


def reserve_login_attempt(
    connection: sqlite3.Connection, email: str, at: datetime, window: timedelta, limit: int
) -> datetime | None:
    """Count an attempt for ``email`` as failed before its password is checked, unless
    ``limit`` failures within ``window`` before ``at`` already lock it: then nothing is
    counted and the answer is when the oldest failure that locks it leaves the window.
    Failures (of any email) older than the window are forgotten."""
    address = email.lower()
    since = format_timestamp(at - window)
    connection.execute("DELETE FROM login_failures WHERE at < ?", (since,))
    stamps = [
        row[0]
        for row in connection.execute(
            "SELECT at FROM login_failures WHERE email = ? AND at >= ? ORDER BY at",
            (address, since),
        )
    ]
    if len(stamps) >= limit:
        return parse_timestamp(stamps[len(stamps) - limit]) + window
    connection.execute(
        "INSERT INTO login_failures (email, at) VALUES (?, ?)", (address, format_timestamp(at))
    )
    return None


def clear_login_failures(connection: sqlite3.Connection, email: str) -> None:
    connection.execute("DELETE FROM login_failures WHERE email = ?", (email.lower(),))


class SqliteAccessStore:
    """:class:`omnichannel_core.modules.access.store.AccessStore` on the SQLite database."""

    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    async def create_user(
        self, email: str, display_name: str, role: Role, password_hash: str
    ) -> User:
        return await self.database.write(
            lambda c: insert_user(c, email, display_name, role, password_hash)
        )

    async def get_user(self, user_id: str) -> User:
        return await self.database.read(lambda c: fetch_user(c, user_id))

    async def user_credentials(self, email: str) -> UserCredentials | None:
        return await self.database.read(lambda c: find_credentials(c, email))

    async def user_credentials_by_id(self, user_id: str) -> UserCredentials:
        return await self.database.read(lambda c: fetch_credentials_by_id(c, user_id))

    async def has_active_admin(self) -> bool:
        return await self.database.read(has_active_admin)

    async def list_users(self, cursor: str | None, limit: int) -> Page:
        after = decode_list_cursor(cursor, "usr") if cursor else None
        return await self.database.read(lambda c: list_users(c, after, limit))

    async def update_user(
        self,
        user_id: str,
        display_name: str = UNSET,
        role: Role = UNSET,
        active: bool = UNSET,
        password_hash: str = UNSET,
    ) -> User:
        return await self.database.write(
            lambda c: update_user(c, user_id, display_name, role, active, password_hash)
        )

    async def create_session(
        self, user_id: str, refresh_token_hash: str, expires_at: datetime
    ) -> str:
        return await self.database.write(
            lambda c: insert_session(c, user_id, refresh_token_hash, expires_at)
        )

    async def rotate_refresh_token(
        self, token_hash: str, new_token_hash: str, expires_at: datetime, now: datetime
    ) -> Refreshed:
        return await self.database.write(
            lambda c: rotate(c, token_hash, new_token_hash, expires_at, now)
        )

    async def end_session(self, session_id: str) -> bool:
        now = format_timestamp(utcnow())
        return await self.database.write(lambda c: end_session(c, session_id, now))

    async def end_user_sessions(self, user_id: str, except_session_id: str | None = None) -> int:
        now = format_timestamp(utcnow())
        return await self.database.write(
            lambda c: end_user_sessions(c, user_id, except_session_id, now)
        )

    async def session_user(self, user_id: str, session_id: str) -> User | None:
        return await self.database.read(lambda c: session_user(c, user_id, session_id))

    async def create_api_key(
        self,
        name: str,
        scopes: tuple[str, ...],
        prefix: str,
        key_hash: str,
        created_by: str | None,
    ) -> ApiKey:
        return await self.database.write(
            lambda c: insert_api_key(c, name, scopes, prefix, key_hash, created_by)
        )

    async def get_api_key(self, key_id: str) -> ApiKey:
        return await self.database.read(lambda c: fetch_api_key(c, key_id))

    async def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        return await self.database.read(lambda c: find_api_key(c, key_hash))

    async def list_api_keys(self, cursor: str | None, limit: int) -> Page:
        after = decode_list_cursor(cursor, "key") if cursor else None
        return await self.database.read(lambda c: list_api_keys(c, after, limit))

    async def revoke_api_key(self, key_id: str, at: datetime) -> ApiKey:
        return await self.database.write(lambda c: revoke_api_key(c, key_id, at))

    async def touch_api_key(self, key_id: str, at: datetime) -> None:
        await self.database.write(lambda c: touch_api_key(c, key_id, at))

    async def reserve_login_attempt(
        self, email: str, at: datetime, window: timedelta, limit: int
    ) -> datetime | None:
        return await self.database.write(
            lambda c: reserve_login_attempt(c, email, at, window, limit)
        )

    async def clear_login_failures(self, email: str) -> None:
        await self.database.write(lambda c: clear_login_failures(c, email))

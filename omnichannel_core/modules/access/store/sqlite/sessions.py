"""Sessions and their refresh tokens in SQLite: a login starts a session, each refresh
token is used once and replaced, a reused one ends its session. When a session ends, its
refresh tokens are deleted: a token of an ended session answers UNKNOWN whether it is kept
or not."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from omnichannel_core.module import Conflict, NotFound, format_timestamp, new_id, utcnow
from omnichannel_core.modules.access.records import Refreshed, RefreshOutcome, User
from omnichannel_core.modules.access.store.sqlite.rows import user_from_row


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
    :meth:`omnichannel_core.modules.access.store.AccessStore.rotate_refresh_token`)."""
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

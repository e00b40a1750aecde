"""Users in SQLite: created with a lower-cased email, read by id or email, listed, and
changed without ever leaving no active admin."""

from __future__ import annotations

import sqlite3

from omnichannel_core.module import (
    UNSET,
    Conflict,
    Page,
    Role,
    format_timestamp,
    new_id,
    utcnow,
)
from omnichannel_core.module.sqlite import fetch_one, keyset_page
from omnichannel_core.modules.access.records import User, UserCredentials
from omnichannel_core.modules.access.store.sqlite.rows import credentials_from_row, user_from_row
from omnichannel_core.modules.access.store.sqlite.sessions import end_user_sessions


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

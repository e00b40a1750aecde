"""API keys in SQLite: stored by hash, found by id or hash, listed, revoked, and the time
of their last use moved forward."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from omnichannel_core.module import Conflict, NotFound, Page, format_timestamp, new_id, utcnow
from omnichannel_core.module.sqlite import fetch_one, keyset_page
from omnichannel_core.modules.access.records import ApiKey
from omnichannel_core.modules.access.store.sqlite.rows import api_key_from_row


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

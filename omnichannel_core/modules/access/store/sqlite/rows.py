"""Access records made of SQLite rows: users, their credentials, API keys."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from omnichannel_core.module import Role, parse_timestamp
from omnichannel_core.modules.access.records import ApiKey, User, UserCredentials


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

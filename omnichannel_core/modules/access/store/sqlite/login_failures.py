"""Failed logins in SQLite, counted per (lower-cased) email whether or not such a user
exists, and forgotten once older than the window."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from omnichannel_core.module import format_timestamp, parse_timestamp


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

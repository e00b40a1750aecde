"""Reads every SQLite store shares: one row or NotFound, and a keyset-paged list."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from omnichannel_core.errors import NotFound
from omnichannel_core.paging import Page, encode_cursor
from omnichannel_core.serialization import compact_json, converter


def json_text(value: Any) -> str:
    """A value (attrs models included) as compact JSON text, for a TEXT column."""
    return compact_json(converter.unstructure(value))


def fetch_one(
    connection: sqlite3.Connection, sql: str, params: tuple[Any, ...], what: str
) -> sqlite3.Row:
    """The one row ``sql`` selects, or NotFound naming ``what`` and the first parameter."""
    row: sqlite3.Row | None = connection.execute(sql, params).fetchone()
    if row is None:
        raise NotFound(f"{what} {params[0]!r} not found", id=params[0])
    return row


def keyset_page(
    connection: sqlite3.Connection,
    select: str,
    params: list[Any],
    after: Sequence[Any] | None,
    key: tuple[str, str],
    descending: bool,
    limit: int,
    build: Callable[[sqlite3.Row], Any],
) -> Page:
    """One page of ``select`` (which ends in a WHERE clause) ordered by the two ``key``
    columns, continuing after ``after``, the key a decoded cursor holds."""
    first, second = key
    if after:
        select += f" AND ({first}, {second}) {'<' if descending else '>'} (?, ?)"
        params = [*params, *after]
    direction = "DESC" if descending else "ASC"
    select += f" ORDER BY {first} {direction}, {second} {direction} LIMIT ?"
    rows = connection.execute(select, [*params, limit + 1]).fetchall()
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last[first], last[second])
    return Page([build(row) for row in rows[:limit]], next_cursor)

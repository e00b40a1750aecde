"""Time as the project writes it: aware UTC datetimes, and one fixed-width text form.

Text timestamps are UTC with microseconds and a ``Z`` (``2026-01-31T09:30:00.000000Z``):
fixed width, so text order is time order, which the stores' indexes rely on.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""UTC, microseconds, ``Z``: fixed width, so text order is time order."""


def format_timestamp(value: datetime) -> str:
    """``value`` as :data:`TIMESTAMP_FORMAT` has it."""
    return value.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(value: str | datetime) -> datetime:
    """An aware UTC datetime from ISO 8601 text (a naive one is taken as UTC); ValueError
    for text that is not one."""
    if isinstance(value, datetime):
        parsed = value
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    return _parse_timestamp_text(value)


@functools.lru_cache(maxsize=4096)
def _parse_timestamp_text(value: str) -> datetime:
    # Cached: a stored row repeats the same few timestamps (created, updated, activity).
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00: before the first UTC instant Python has
        raise ValueError(f"{value!r} is out of the range of times") from None

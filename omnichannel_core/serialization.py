"""The one cattrs converter: models to JSON-ready data and back, used only at the edges."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

import cattrs

from omnichannel_core.errors import InvalidInput

T = TypeVar("T")

converter = cattrs.Converter(omit_if_default=False)


def format_timestamp(value: datetime) -> str:
    """UTC, microseconds, ``Z``: fixed width, so text order is time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


converter.register_unstructure_hook(datetime, format_timestamp)
converter.register_structure_hook(datetime, lambda value, _: parse_timestamp(value))


def to_json(value: Any) -> Any:
    """A model (or list of models) as JSON-ready data."""
    return converter.unstructure(value)


def from_json(data: Any, cls: type[T]) -> T:
    """Build ``cls`` from JSON data, or raise :class:`InvalidInput` saying what is wrong."""
    try:
        return converter.structure(data, cls)
    except Exception as error:  # cattrs raises a tree of errors; flatten it for the client
        messages = (
            cattrs.transform_error(error)
            if isinstance(error, cattrs.BaseValidationError)
            else [str(error)]
        )
        raise InvalidInput(
            "invalid request body: " + "; ".join(messages), errors=messages
        ) from None

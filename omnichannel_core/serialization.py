"""The one cattrs converter: models to JSON-ready data and back, used only at the edges."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, TypeVar

import cattrs

from omnichannel_core.errors import InvalidInput
from omnichannel_core.timestamps import format_timestamp, parse_timestamp

T = TypeVar("T")

converter = cattrs.Converter(omit_if_default=False)


converter.register_unstructure_hook(datetime, format_timestamp)
converter.register_structure_hook(datetime, lambda value, _: parse_timestamp(value))


_COMPACT = json.JSONEncoder(separators=(",", ":"))


def compact_json(value: Any) -> str:
    """JSON-ready ``value`` as compact text, for a stored column or a cursor. One encoder for
    every call: ``json.dumps`` with ``separators`` builds a new one each time, a cost the
    webhook path paid three times per message."""
    return _COMPACT.encode(value)


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


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:32]} is out of range")
    return value


def parse_json(raw: bytes | str) -> Any:
    """Parse a request body strictly, or raise :class:`InvalidInput` saying what is wrong.

    Stricter than ``json.loads`` where its leniency would let bad data into the store or
    crash later: no ``NaN``/``Infinity``, no out-of-range numbers, no lone surrogate escapes
    such as ``"\\ud800"`` (they cannot be stored or encoded as UTF-8), nesting at most
    ``MAX_JSON_DEPTH`` deep (deeper values parse, but overflow the stack later, when stored
    data is turned back into models).
    """
    try:
        data = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
        if not isinstance(raw, bytes) or b"\\u" in raw:
            # a lone surrogate can only come from a \u escape in (valid UTF-8) bytes
            json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("request body is not UTF-8") from None
    except UnicodeEncodeError:
        raise InvalidInput("request body holds a string that is not valid Unicode") from None
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"request body is not valid JSON: {error.msg} at line {error.lineno}"
            f" column {error.colno}"
        ) from None
    except RecursionError:
        raise InvalidInput("request body is nested too deeply") from None
    except ValueError as error:  # NaN, 1e999, an integer of thousands of digits
        raise InvalidInput(f"request body is not valid JSON: {str(error)[:120]}") from None
    nesting = raw.count(b"[") + raw.count(b"{") if isinstance(raw, bytes) else MAX_JSON_DEPTH + 1
    if nesting > MAX_JSON_DEPTH and _depth(data) > MAX_JSON_DEPTH:
        raise InvalidInput(f"request body is nested more than {MAX_JSON_DEPTH} levels deep")
    return data


MAX_JSON_DEPTH = 32


def _depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (a scalar is 0), without recursion."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, level = pending.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        )
        if children is None:
            continue
        deepest = max(deepest, level)
        if level > MAX_JSON_DEPTH:
            return level
        pending.extend((child, level + 1) for child in children)
    return deepest

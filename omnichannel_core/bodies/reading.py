"""Reading a request into its body class: the JSON is checked against the class's own schema
(`omnichannel_core.bodies.schema`), then the object is built.

So a request the OpenAPI document describes as valid is accepted, and any other is refused
with one clear :class:`~omnichannel_core.errors.InvalidInput` naming the field at fault
(``media[0].url: must be an http(s) URL``, with ``field="media[0].url"``). Checks the schema
cannot express (at least one of two fields) live in the class itself, in
``__attrs_post_init__``, raising ``InvalidInput`` too.

Query strings and headers are read the same way, from text: a field typed ``int`` takes
digits, ``bool`` takes ``true`` or ``false``; an empty value counts as left out.

A ``pattern`` means what JSON Schema (ECMA-262 regular expressions) says, as every client
validating against the OpenAPI document reads it, not what Python's ``re`` would: it is
searched for in the value, ``$`` matches at the very end only (Python's also before a final
line break, which would let ``18:00`` and a line break through an anchored time pattern), and
the digit and word classes are ASCII (:func:`schema_pattern`).
"""

from __future__ import annotations

import datetime
import enum
import functools
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

from omnichannel_core.bodies.fields import wire_name
from omnichannel_core.bodies.schema import (
    INVALID,
    Mode,
    Schema,
    SchemaBook,
    field_types,
    is_body_class,
    nullable_parts,
)
from omnichannel_core.errors import InvalidInput
from omnichannel_core.timestamps import parse_timestamp

T = TypeVar("T")

_BOOK = SchemaBook()
"""The schemas requests are checked against, built once per class."""

_TYPE_WORDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


_OUTSIDE_CLASS = {"d": "[0-9]", "D": "[^0-9]", "w": "[A-Za-z0-9_]", "W": "[^A-Za-z0-9_]"}
_INSIDE_CLASS = {"d": "0-9", "w": "A-Za-z0-9_"}
"""ECMA-262's ASCII escapes, as Python writes them (its own take every script's)."""


@functools.lru_cache(maxsize=1024)
def schema_pattern(pattern: str) -> re.Pattern[str]:
    """A JSON Schema ``pattern`` compiled for Python with its ECMA-262 meaning: ``$``
    outside a character class becomes ``\\Z`` (the end of the text, never before a final
    line break), and ``\\d``, ``\\D``, ``\\w``, ``\\W`` their ASCII classes. Search it
    (``pattern.search``): a JSON Schema pattern is not anchored unless it says so."""
    translated: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            table = _INSIDE_CLASS if in_class else _OUTSIDE_CLASS
            translated.append(table.get(escaped, char + escaped))
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            char = r"\Z"
        translated.append(char)
        index += 1
    return re.compile("".join(translated))


@attrs.frozen
class Problem:
    path: str
    message: str


def read_body(data: Any, cls: type[T]) -> T:
    """``data`` (parsed JSON) as a ``cls``, or InvalidInput naming the field at fault."""
    schema = _BOOK.reference(cls, Mode.REQUEST)
    problem = _Checker(_BOOK).check(data, schema, "")
    if problem is not None:
        raise _invalid(problem)
    return typing.cast(T, _build(data, cls))


def read_text_fields(values: Mapping[str, str], cls: type[T]) -> T:
    """A ``cls`` from text values by wire name (a query string, headers): each is typed
    after its field, checked against the field's schema, then the object is built.
    Values no field names are ignored; empty values count as left out."""
    body_class: type[Any] = cls
    schema = _BOOK.resolve(_BOOK.reference(body_class, Mode.REQUEST))
    hints = field_types(body_class)
    data: dict[str, Any] = {}
    for attribute in attrs.fields(body_class):
        name = wire_name(attribute)
        raw = values.get(name)
        if raw is None or raw == "":
            continue
        value = _from_text(raw, hints[attribute.name])
        problem = _Checker(_BOOK).check(value, schema["properties"][name], name)
        if problem is not None:
            raise _invalid(problem)
        data[name] = value
    missing = [name for name in schema.get("required", ()) if name not in data]
    if missing:
        raise _invalid(Problem(missing[0], "required"))
    return typing.cast(T, _build(data, cls))


def _invalid(problem: Problem) -> InvalidInput:
    if not problem.path:
        return InvalidInput(problem.message)
    return InvalidInput(f"{problem.path}: {problem.message}", field=problem.path)


def _from_text(raw: str, annotation: Any) -> Any:
    """A text value as the JSON value of its field's type, when it reads as one; else the
    text itself, which the schema then refuses with the field's message."""
    members, _ = nullable_parts(annotation)
    if int in members and raw.isascii() and raw.isdigit() and len(raw) <= 18:
        return int(raw)
    if bool in members and raw in ("true", "false"):
        return raw == "true"
    return raw


class _Checker:
    """One check of a value against a schema: the first problem, or None."""

    def __init__(self, book: SchemaBook) -> None:
        self.book = book

    def check(self, value: Any, schema: Schema, path: str) -> Problem | None:
        problem = self._check(value, schema, path)
        override = schema.get(INVALID)
        if problem is not None and override and problem.path == path:
            return Problem(path, override)
        return problem

    def _check(self, value: Any, schema: Schema, path: str) -> Problem | None:
        schema = self.book.resolve(schema)
        for part in schema.get("allOf", ()):
            problem = self.check(value, part, path)
            if problem is not None:
                return problem
        if "anyOf" in schema or "oneOf" in schema:
            problem = self._alternatives(value, schema.get("anyOf") or schema["oneOf"], path)
            if problem is not None:
                return problem
        expected = schema.get("type")
        if expected is not None and not _is_type(value, expected):
            return Problem(path, "must be " + _type_words(expected))
        if "const" in schema and value != schema["const"]:
            return Problem(path, f"may only be {schema['const']!r}")
        if "enum" in schema and (value not in schema["enum"] or isinstance(value, bool)):
            choices = ", ".join(str(item) for item in schema["enum"] if item is not None)
            return Problem(path, f"must be one of {choices}")
        if isinstance(value, str):
            return self._string(value, schema, path)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return self._number(value, schema, path)
        if isinstance(value, list):
            return self._array(value, schema, path)
        if isinstance(value, dict):
            return self._object(value, schema, path)
        return None

    def _alternatives(self, value: Any, options: list[Schema], path: str) -> Problem | None:
        problems = []
        for option in options:
            problem = self.check(value, option, path)
            if problem is None:
                return None
            problems.append((option, problem))
        for option, problem in problems:  # the alternative of the value's own JSON type
            expected = self.book.resolve(option).get("type")
            if expected is not None and _is_type(value, expected):
                return problem
        kinds = [self.book.resolve(option).get("type") for option in options]
        words = [_type_words(kind) for kind in kinds if kind is not None]
        return Problem(path, "must be " + " or ".join(words) if words else "is not allowed here")

    def _string(self, value: str, schema: Schema, path: str) -> Problem | None:
        if "minLength" in schema and len(value) < schema["minLength"]:
            if schema["minLength"] == 1:
                return Problem(path, "must not be empty")
            return Problem(path, f"must be at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return Problem(path, f"must be at most {schema['maxLength']} characters")
        if "pattern" in schema and not schema_pattern(schema["pattern"]).search(value):
            return Problem(path, f"must match {schema['pattern']}")
        if schema.get("format") == "date-time":
            try:
                parse_timestamp(value)
            except ValueError:
                return Problem(path, "must be a date and time like 2026-01-31T09:30:00Z")
        return None

    def _number(self, value: float, schema: Schema, path: str) -> Problem | None:
        if "minimum" in schema and value < schema["minimum"]:
            return Problem(path, f"must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            return Problem(path, f"must be at most {schema['maximum']}")
        return None

    def _array(self, value: list[Any], schema: Schema, path: str) -> Problem | None:
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return Problem(path, f"at most {schema['maxItems']} items")
        if "minItems" in schema and len(value) < schema["minItems"]:
            return Problem(path, f"at least {schema['minItems']} items")
        items = schema.get("items")
        if items is not None:
            for index, item in enumerate(value):
                problem = self.check(item, items, f"{path}[{index}]")
                if problem is not None:
                    return problem
        return None

    def _object(self, value: dict[str, Any], schema: Schema, path: str) -> Problem | None:
        properties: dict[str, Schema] = schema.get("properties", {})
        prefix = f"{path}." if path else ""
        if schema.get("additionalProperties") is False:
            unknown = sorted(set(value) - set(properties))
            if unknown:
                allowed = ", ".join(sorted(properties))
                return Problem(prefix + unknown[0], f"unknown field; allowed: {allowed}")
        for name in schema.get("required", ()):
            if name not in value:
                return Problem(prefix + name, "required")
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            return Problem(path, "give at least one of " + ", ".join(properties))
        for name, item in value.items():
            if name in properties:
                problem = self.check(item, properties[name], prefix + name)
                if problem is not None:
                    return problem
        return None


def _is_type(value: Any, expected: str | list[str]) -> bool:
    kinds = [expected] if isinstance(expected, str) else expected
    return any(_is_one_type(value, kind) for kind in kinds)


def _is_one_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return type(value) is int
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    checks: dict[str, Callable[[Any], bool]] = {
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "null": lambda v: v is None,
    }
    return checks[kind](value)


def _type_words(expected: str | list[str]) -> str:
    kinds = [expected] if isinstance(expected, str) else expected
    return " or ".join(_TYPE_WORDS[kind] for kind in kinds)


# building, once checked ----------------------------------------------------------------


def _build(data: dict[str, Any], cls: type) -> Any:
    hints = field_types(cls)
    values: dict[str, Any] = {}
    for attribute in attrs.fields(cls):
        name = wire_name(attribute)
        if name in data and attribute.init:
            values[attribute.alias or attribute.name] = _convert(data[name], hints[attribute.name])
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:  # a validator of the class itself
        raise InvalidInput(f"invalid request body: {error}") from None


def _convert(value: Any, annotation: Any) -> Any:
    if value is None:
        return None
    members, _ = nullable_parts(annotation)
    if len(members) > 1:
        return _convert(value, _member_for(value, members))
    target = members[0]
    if target is Any or target in (str, bool, int):
        return value
    if target is float:
        return float(value)
    if target is datetime.datetime:
        return parse_timestamp(value)
    if isinstance(target, type) and issubclass(target, enum.Enum):
        return target(value)
    if is_body_class(target):
        return _build(value, target)
    origin = typing.get_origin(target)
    arguments = typing.get_args(target)
    if origin in (tuple, list, frozenset, set):
        return origin(_convert(item, arguments[0]) for item in value)
    if origin is not None and isinstance(value, dict) and arguments and arguments[1] is not Any:
        return {key: _convert(item, arguments[1]) for key, item in value.items()}
    return value


def _member_for(value: Any, members: list[Any]) -> Any:
    """The member of a union that a checked value is an instance of."""
    for member in members:
        if is_body_class(member) and isinstance(value, dict):
            return member
        if member is str and isinstance(value, str):
            return member
        if typing.get_origin(member) in (tuple, list) and isinstance(value, list):
            return member
    return members[0]

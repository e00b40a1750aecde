"""JSON Schema of body classes (2020-12, the dialect of OpenAPI 3.1), derived from their types.

A body class is an attrs class; each field's type gives its schema (``str`` a string,
``int | None`` an integer or null, ``tuple[Media, ...]`` an array of ``Media``, a ``StrEnum``
its values, another body class a ``$ref``), and the keywords of `bodies.fields.field`
narrow it. Nested classes become named components, kept by the :class:`SchemaBook` that
built them, so the OpenAPI document lists each once.

Two readings of one class:

- as a **request** (what a caller sends): fields without a default are required, and no
  other field is allowed;
- as a **response** (what the server writes, through `serialization.to_json`, which writes
  every field): every field is present, and no other.

A class whose two readings differ (a field with a default) can be only one of the two in a
document; declare a second class for the other (``Media`` and ``MediaInput``).
"""

from __future__ import annotations

import datetime
import enum
import inspect
import threading
import types
import typing
from collections.abc import Mapping
from typing import Any

import attrs

from omnichannel_core.bodies.fields import DESCRIPTION, MESSAGE, keywords_of, wire_name

Schema = dict[str, Any]
REF_PREFIX = "#/components/schemas/"
EXTRA = "__schema_extra__"
"""A body class's own keywords for its schema (``minProperties``, ``if``/``then``): what
its fields' types cannot say."""
INVALID = "x-invalid"
"""Schema keyword (an OpenAPI extension, ignored by validators): what the server answers a
value that breaks the field's schema, in place of the broken keyword's own message."""
NAME = "__schema_name__"
"""A body class's component name, when not its class name (two modules' ``Item``)."""


class Mode(enum.Enum):
    REQUEST = "request"
    RESPONSE = "response"


@attrs.frozen
class PageOf:
    """The one list envelope, ``{"items": [...], "next_cursor": ...}``, of ``item``."""

    item: type

    @property
    def name(self) -> str:
        return component_name(self.item) + "Page"


def component_name(cls: type) -> str:
    name: str = getattr(cls, NAME, cls.__name__)
    return name


def description_of(cls: type) -> str | None:
    """The first paragraph of the class's docstring, on one line."""
    doc = inspect.getdoc(cls)
    if not doc:
        return None
    return " ".join(doc.split("\n\n", 1)[0].split())


_FIELD_TYPES: dict[type, Mapping[str, Any]] = {}


def field_types(cls: type) -> Mapping[str, Any]:
    """The resolved type of each field of an attrs class (annotations may be strings)."""
    hints = _FIELD_TYPES.get(cls)
    if hints is None:
        hints = _FIELD_TYPES[cls] = typing.get_type_hints(cls)
    return hints


def is_body_class(value: Any) -> bool:
    return isinstance(value, type) and attrs.has(value)


def nullable_parts(annotation: Any) -> tuple[list[Any], bool]:
    """The members of a union other than None, and whether None is one of them."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = list(typing.get_args(annotation))
        others = [member for member in members if member is not type(None)]
        return others, len(others) != len(members)
    return [annotation], False


_PRIMITIVES: dict[Any, str] = {str: "string", bool: "boolean", int: "integer", float: "number"}


PAGE_ENVELOPE: Schema = {
    "type": "object",
    "description": "The one list envelope: every list answers a page of this shape.",
    "properties": {
        "items": {"type": "array"},
        "next_cursor": {
            "type": ["string", "null"],
            "description": "pass as `cursor` for the next page; null on the last",
        },
    },
    "required": ["items", "next_cursor"],
    "additionalProperties": False,
}
"""The ``Page`` component each ``XPage`` extends with the type of its items."""


class SchemaBook:
    """Builds schemas and keeps the named components they refer to."""

    def __init__(self) -> None:
        self.components: dict[str, Schema] = {}
        self._owners: dict[str, tuple[Any, Mode]] = {}
        self._lock = threading.RLock()

    def reference(self, target: type | PageOf, mode: Mode) -> Schema:
        """A ``$ref`` to the component of ``target`` (built now if new)."""
        if isinstance(target, PageOf):
            return self._component(target.name, target, mode, lambda: self._page(target, mode))
        return self._component(
            component_name(target), target, mode, lambda: self._class(target, mode)
        )

    def _component(self, name: str, owner: Any, mode: Mode, build: Any) -> Schema:
        with self._lock:
            known = self._owners.get(name)
            if known is None:
                self._owners[name] = (owner, mode)
                self.components[name] = {}  # taken first: a class may refer to itself
                self.components[name] = build()
            elif known[0] is not owner:
                raise TypeError(f"two body classes are named {name!r}: {known[0]!r}, {owner!r}")
            elif known[1] is not mode and self._differs(owner):
                raise TypeError(
                    f"{name} is used as a request and as a response body, whose schemas differ"
                    " (a field has a default): declare a class for each"
                )
        return {"$ref": REF_PREFIX + name}

    def _differs(self, owner: Any) -> bool:
        if isinstance(owner, PageOf):
            return True
        return any(
            attribute.default is not attrs.NOTHING for attribute in attrs.fields(owner)
        ) or any(self._differs(member) for member in _nested_classes(owner))

    def resolve(self, schema: Schema) -> Schema:
        """The component a ``$ref`` names (the schema itself when it is none)."""
        ref = schema.get("$ref")
        if ref is None:
            return schema
        return self.components[ref.removeprefix(REF_PREFIX)]

    # building ------------------------------------------------------------------------

    def _class(self, cls: type, mode: Mode) -> Schema:
        properties: dict[str, Schema] = {}
        required: list[str] = []
        hints = field_types(cls)
        for attribute in attrs.fields(cls):
            name = wire_name(attribute)
            properties[name] = self.field_schema(attribute, hints[attribute.name], mode)
            if mode is Mode.RESPONSE or (
                attribute.default is attrs.NOTHING and attribute.init is not False
            ):
                required.append(name)
        schema: Schema = {"type": "object"}
        description = description_of(cls)
        if description:
            schema["description"] = description
        schema["properties"] = properties
        if required:
            schema["required"] = required
        schema["additionalProperties"] = False
        schema.update(getattr(cls, EXTRA, {}))
        return schema

    def _page(self, page: PageOf, mode: Mode) -> Schema:
        with self._lock:
            self.components.setdefault("Page", PAGE_ENVELOPE)
        return {
            "allOf": [{"$ref": REF_PREFIX + "Page"}],
            "description": f"One page of {component_name(page.item)} records.",
            "properties": {"items": {"type": "array", "items": self.reference(page.item, mode)}},
        }

    def field_schema(self, attribute: attrs.Attribute[Any], annotation: Any, mode: Mode) -> Schema:
        """The schema of one field: its type's, narrowed by its keywords."""
        schema = self.type_schema(annotation, mode)
        keywords = dict(keywords_of(attribute))
        item_keywords = keywords.pop("items", None)
        if item_keywords:
            target = schema.get("items")
            if target is None and "anyOf" in schema:  # a nullable list
                target = schema["anyOf"][0].get("items")
            if target is None:
                raise TypeError(f"field {attribute.name!r}: items= needs a list type")
            target.update(item_keywords)
        if "$ref" in schema and keywords:
            schema = {"allOf": [schema], **keywords}
        else:
            schema.update(keywords)
        if DESCRIPTION in attribute.metadata:
            schema["description"] = attribute.metadata[DESCRIPTION]
        if MESSAGE in attribute.metadata:
            schema[INVALID] = attribute.metadata[MESSAGE]
        return schema

    def type_schema(self, annotation: Any, mode: Mode) -> Schema:
        """The schema of a type."""
        members, nullable = nullable_parts(annotation)
        if len(members) > 1:
            schema: Schema = {"oneOf": [self.type_schema(member, mode) for member in members]}
            if nullable:
                schema["oneOf"].append({"type": "null"})
            return schema
        schema = self._single(members[0], mode)
        if not nullable:
            return schema
        if isinstance(schema.get("type"), str):
            return {**schema, "type": [schema["type"], "null"]}
        if "enum" in schema:
            return {**schema, "enum": [*schema["enum"], None]}
        return {"anyOf": [schema, {"type": "null"}]}

    def _single(self, annotation: Any, mode: Mode) -> Schema:
        if annotation is Any:
            return {}
        if annotation in _PRIMITIVES:
            return {"type": _PRIMITIVES[annotation]}
        if annotation is datetime.datetime:
            return {"type": "string", "format": "date-time"}
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            return {"enum": [member.value for member in annotation]}
        if is_body_class(annotation):
            return self.reference(annotation, mode)
        origin = typing.get_origin(annotation)
        arguments = typing.get_args(annotation)
        if origin is typing.Literal:
            values = list(arguments)
            return {"const": values[0]} if len(values) == 1 else {"enum": values}
        if origin in (tuple, list, frozenset, set):
            if origin is tuple and not (len(arguments) == 2 and arguments[1] is Ellipsis):
                raise TypeError(f"only tuple[X, ...] is a body type, not {annotation!r}")
            return {"type": "array", "items": self.type_schema(arguments[0], mode)}
        if origin in (dict, Mapping, typing.Mapping):
            value_type = arguments[1] if arguments else Any
            if value_type is Any:
                return {"type": "object"}
            return {"type": "object", "additionalProperties": self.type_schema(value_type, mode)}
        if annotation in (dict, list):
            return {"type": "object" if annotation is dict else "array"}
        raise TypeError(f"{annotation!r} has no JSON Schema; use a body class or a plain type")


def _nested_classes(cls: type) -> list[type]:
    hints = field_types(cls)
    found: list[type] = []
    for attribute in attrs.fields(cls):
        pending = [hints[attribute.name]]
        while pending:
            annotation = pending.pop()
            if is_body_class(annotation):
                found.append(annotation)
            pending.extend(typing.get_args(annotation))
    return found

"""Fields of bodies: an attrs field that also says which JSON it takes.

:func:`field` makes an ``attrs.field`` whose metadata carries JSON Schema keywords
(``maxLength``, ``pattern``, ``minimum``...). `omnichannel_core.bodies.schema` merges them
into the schema of the field's type, and `omnichannel_core.bodies.reading` checks a request
against that very schema before it builds the object: what the OpenAPI document promises is
what the server takes, because both come from this one declaration::

    @attrs.frozen
    class ContactUpdate:
        display_name: str | None = field(default=UNSET, max_length=200)
        tags: tuple[str, ...] = field(default=UNSET, max_items=100, items={"minLength": 1})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

SCHEMA = "omnichannel.schema"
"""Metadata key: the JSON Schema keywords of the field, merged into its type's schema."""
MESSAGE = "omnichannel.message"
"""Metadata key: what to tell a caller whose value this field refuses, instead of the
message of the keyword it broke (``"must be an http(s) URL"`` rather than a pattern)."""
NAME = "omnichannel.name"
"""Metadata key: the field's name in JSON, the query string or the headers, when it is not
the attribute's (``Idempotency-Key``, ``q``)."""
DESCRIPTION = "description"

_KEYWORDS = {
    "max_length": "maxLength",
    "min_length": "minLength",
    "pattern": "pattern",
    "minimum": "minimum",
    "maximum": "maximum",
    "max_items": "maxItems",
    "min_items": "minItems",
    "unique_items": "uniqueItems",
    "items": "items",
    "const": "const",
    "enum": "enum",
    "format": "format",
    "write_only": "writeOnly",
}


def field(
    *,
    default: Any = attrs.NOTHING,
    factory: Callable[[], Any] | None = None,
    description: str | None = None,
    name: str | None = None,
    message: str | None = None,
    converter: Callable[[Any], Any] | None = None,
    **keywords: Any,
) -> Any:
    """An ``attrs.field`` of a body class.

    :param default: the value when the field is left out; without one (and no ``factory``)
        the field is required. ``UNSET`` tells "left out" from ``null``.
    :param description: for the OpenAPI document.
    :param name: the field's name on the wire, when not the attribute's.
    :param message: the whole problem a refused value is told (after the field's name).
    :param keywords: JSON Schema keywords in Python spelling: ``max_length``,
        ``min_length``, ``pattern`` (searched, as JSON Schema does: anchor it),
        ``minimum``, ``maximum``, ``max_items``, ``min_items``, ``unique_items``, ``items``
        (keywords for each item, in JSON Schema spelling), ``const``, ``enum``, ``format``,
        ``write_only``.
    """
    unknown = sorted(set(keywords) - set(_KEYWORDS))
    if unknown:
        raise TypeError(f"unknown schema keywords: {', '.join(unknown)}")
    metadata: dict[str, Any] = {SCHEMA: {_KEYWORDS[key]: value for key, value in keywords.items()}}
    if description is not None:
        metadata[DESCRIPTION] = description
    if name is not None:
        metadata[NAME] = name
    if message is not None:
        metadata[MESSAGE] = message
    if factory is not None:
        return attrs.field(factory=factory, metadata=metadata, converter=converter)
    return attrs.field(default=default, metadata=metadata, converter=converter)


def wire_name(attribute: attrs.Attribute[Any]) -> str:
    """The name of ``attribute`` in JSON, a query string or a header."""
    name: str = attribute.metadata.get(NAME, attribute.name)
    return name


def keywords_of(attribute: attrs.Attribute[Any]) -> Mapping[str, Any]:
    """The JSON Schema keywords the field declares (none for a plain attrs field)."""
    declared: Mapping[str, Any] = attribute.metadata.get(SCHEMA, {})
    return declared

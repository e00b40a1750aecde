"""Custom attributes: the definitions an admin declares, and the check of the values a
contact's ``attributes`` take against them.

The rule for a contact's attributes (docs/crm.md, "Custom attributes"):

- a declared key's value must fit its definition (:func:`check_value`) whenever it is set
  or changed;
- a key that is not declared (a value stored before any definition, a channel's, one whose
  definition was dropped) stays readable, and is kept as it is: a change may leave it out
  (removing it) or send it back unchanged, but not give it another value, and a new
  undeclared key is refused ("attributes.x is not declared; an admin declares it at
  /api/crm/attributes");
- a stored value sent back unchanged is always kept, even when it no longer fits its
  definition, so stale values never block changing anything else.

**Changing a definition.** Its ``type`` never changes: to make a key another type, drop its
definition and declare it again. Neither rewrites or hides a stored value: every stored
value stays readable as it is, and must fit the new definition only when it is next
changed. The same holds when a ``choice`` attribute loses a choice. So whatever reads
values by their declared type (segments, exports) must take a stored value that does not
fit its definition as not matching, never as an error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from datetime import date
from typing import Any

from omnichannel_core.module import UNSET, InvalidInput, utcnow
from omnichannel_core.modules.crm.records import AttributeDefinition, AttributeType
from omnichannel_core.modules.crm.store import CrmStore

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
"""A declared attribute's key: lower case letters, digits and ``_``, a letter first, at
most 64 characters."""
MAX_TEXT = 1000
"""Characters of a ``text`` value."""
MAX_LABEL = 200
MAX_CHOICES = 100
MAX_CHOICE_LENGTH = 200
MAX_DEFINITIONS = 200
"""Definitions a server keeps: a few dozen is usual."""
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TRUE_TEXTS = frozenset({"true", "yes", "1"})
FALSE_TEXTS = frozenset({"false", "no", "0"})


def field_of(key: str) -> str:
    """How errors name a contact's attribute: ``attributes.<key>``."""
    return f"attributes.{key}"


def undeclared(key: str) -> InvalidInput:
    name = field_of(key)
    return InvalidInput(
        f"{name} is not declared; an admin declares it at /api/crm/attributes", field=name
    )


def _refused(key: str, problem: str) -> InvalidInput:
    name = field_of(key)
    return InvalidInput(f"{name} {problem}", field=name)


def check_value(definition: AttributeDefinition, value: Any) -> None:
    """Raise InvalidInput (``field``: ``attributes.<key>``) unless ``value`` fits the
    definition."""
    key = definition.key
    match definition.type:
        case AttributeType.TEXT:
            if not isinstance(value, str):
                raise _refused(key, "must be a string")
            if len(value) > MAX_TEXT:
                raise _refused(key, f"must be at most {MAX_TEXT} characters long")
        case AttributeType.NUMBER:
            if not is_number(value):
                raise _refused(key, "must be a finite number")
        case AttributeType.DATE:
            if not is_date(value):
                raise _refused(key, "must be a date, YYYY-MM-DD")
        case AttributeType.BOOLEAN:
            if not isinstance(value, bool):
                raise _refused(key, "must be true or false")
        case AttributeType.CHOICE:
            if not isinstance(value, str) or value not in definition.choices:
                choices = ", ".join(repr(choice) for choice in definition.choices)
                raise _refused(key, f"must be one of {choices}")


def is_number(value: Any) -> bool:
    """Whether ``value`` is a ``number`` attribute's: an int or float, finite (an int too
    big for a float is not: JSON readers elsewhere could not hold it), not a bool."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int of hundreds of digits
        return False


def is_date(value: Any) -> bool:
    """Whether ``value`` is a ``date`` attribute's: a real calendar date as ``YYYY-MM-DD``."""
    if not isinstance(value, str) or not DATE_PATTERN.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:  # 2025-02-30
        return False
    return True


def fits(definition: AttributeDefinition, value: Any) -> bool:
    """Whether a stored value fits its definition (a reader by type skips one that does
    not)."""
    try:
        check_value(definition, value)
    except InvalidInput:
        return False
    return True


def same_value(first: Any, second: Any) -> bool:
    """Whether two JSON values are the same: ``true`` is not ``1``, ``1`` is ``1.0`` (JSON
    does not tell them apart), objects compare whatever their keys' order."""
    if isinstance(first, bool) or isinstance(second, bool):
        return isinstance(first, bool) and isinstance(second, bool) and first == second
    if is_number(first) or is_number(second):
        return is_number(first) and is_number(second) and first == second
    if isinstance(first, list | tuple) and isinstance(second, list | tuple):
        return len(first) == len(second) and all(map(same_value, first, second))
    if isinstance(first, Mapping) and isinstance(second, Mapping):
        return first.keys() == second.keys() and all(
            same_value(first[key], second[key]) for key in first
        )
    return type(first) is type(second) and bool(first == second)


def check_attributes(
    new: Mapping[str, Any],
    stored: Mapping[str, Any],
    definitions: Mapping[str, AttributeDefinition],
) -> dict[str, Any]:
    """The attributes to store when a contact whose attributes are ``stored`` is given
    ``new`` (whole: a key left out is removed). A ``null`` value removes its key too. Each
    key of ``new`` is kept when its value is the stored one; else a declared key's value
    must fit its definition and an undeclared key is refused (InvalidInput naming
    ``attributes.<key>``, the first in key order)."""
    checked: dict[str, Any] = {}
    for key in sorted(new):
        value = new[key]
        if value is None:
            continue
        if key in stored and same_value(stored[key], value):
            checked[key] = stored[key]
            continue
        definition = definitions.get(key)
        if definition is None:
            raise undeclared(key)
        check_value(definition, value)
        checked[key] = value
    return checked


def patch_attributes(
    patch: Mapping[str, Any],
    stored: Mapping[str, Any],
    definitions: Mapping[str, AttributeDefinition],
) -> dict[str, Any]:
    """The attributes to store when ``patch`` is applied to ``stored`` (a JSON merge patch:
    the keys it names change, ``null`` removes one, the others stay as they are), checked
    as :func:`check_attributes` checks them."""
    return check_attributes({**stored, **patch}, stored, definitions)


def value_from_text(definition: AttributeDefinition, text: str) -> Any:
    """The value a text (a CSV cell) gives a declared attribute, trimmed; None for a blank
    one.
    InvalidInput (``attributes.<key>``) when it is not one: numbers as ``42`` or ``4.5``,
    booleans as true/false, yes/no, 1/0 (any case), a choice as written or in another
    case."""
    stripped = text.strip()
    if not stripped:
        return None
    value: Any = stripped
    match definition.type:
        case AttributeType.NUMBER:
            value = _number(stripped)
        case AttributeType.BOOLEAN:
            lowered = stripped.lower()
            value = True if lowered in TRUE_TEXTS else False if lowered in FALSE_TEXTS else text
        case AttributeType.CHOICE:
            by_case = {choice.casefold(): choice for choice in definition.choices}
            value = by_case.get(stripped.casefold(), stripped)
    check_value(definition, value)
    return value


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text  # refused by check_value


def checked_definition(
    key: str, type: AttributeType | str, label: str, choices: Collection[str] = ()
) -> AttributeDefinition:
    """A new definition, its fields checked (InvalidInput naming ``key``, ``type``,
    ``label`` or ``choices``)."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise InvalidInput(
            "key must be lower case letters, digits and _, a letter first, at most 64 characters",
            field="key",
        )
    try:
        kind = AttributeType(type)
    except ValueError:
        known = ", ".join(str(kind) for kind in AttributeType)
        raise InvalidInput(f"type must be one of {known}", field="type") from None
    now = utcnow()
    return AttributeDefinition(
        key, kind, _checked_label(label), _checked_choices(kind, choices), now, now
    )


def _checked_label(label: str) -> str:
    if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL:
        raise InvalidInput(
            f"label must be a non-blank string of at most {MAX_LABEL} characters", field="label"
        )
    return label


def _checked_choices(kind: AttributeType, choices: Collection[str]) -> tuple[str, ...]:
    listed = tuple(choices)
    if kind is not AttributeType.CHOICE:
        if listed:
            raise InvalidInput("choices are only for a choice attribute", field="choices")
        return ()
    fine = all(
        isinstance(choice, str) and choice.strip() and len(choice) <= MAX_CHOICE_LENGTH
        for choice in listed
    )
    if not (1 <= len(listed) <= MAX_CHOICES) or not fine or len(set(listed)) != len(listed):
        raise InvalidInput(
            f"choices must be 1 to {MAX_CHOICES} different non-blank strings of at most"
            f" {MAX_CHOICE_LENGTH} characters",
            field="choices",
        )
    return listed


class Attributes:
    """The definitions, as the CRM's routes (and imports) work them."""

    def __init__(self, store: CrmStore) -> None:
        self.store = store

    async def definitions(self) -> dict[str, AttributeDefinition]:
        """Every definition, by key."""
        return {definition.key: definition for definition in await self.store.list_attributes()}

    async def declare(
        self, key: str, type: AttributeType | str, label: str, choices: Collection[str] = ()
    ) -> AttributeDefinition:
        """Declare a new attribute; Conflict when ``key`` is declared, InvalidInput when a
        field is not valid or :data:`MAX_DEFINITIONS` are declared already."""
        definition = checked_definition(key, type, label, choices)
        if len(await self.store.list_attributes()) >= MAX_DEFINITIONS:
            raise InvalidInput(
                f"at most {MAX_DEFINITIONS} attributes can be declared; drop one first"
            )
        await self.store.add_attribute(definition)
        return definition

    async def change(
        self,
        key: str,
        label: str = UNSET,
        choices: Collection[str] = UNSET,
        type: AttributeType | str = UNSET,
    ) -> AttributeDefinition:
        """Change a definition's label or choices. ``type`` may be given only as it is
        (a client sending the definition back whole): another is InvalidInput, since a
        key's type never changes (drop it and declare it again). NotFound for an
        undeclared key."""
        current = await self.store.get_attribute(key)
        if type is not UNSET and str(type) != str(current.type):
            raise InvalidInput(
                f"the type of attribute {key!r} cannot change; drop it and declare it again"
                " (values stored meanwhile stay as they are)",
                field="type",
            )
        new_label = current.label if label is UNSET else _checked_label(label)
        new_choices = (
            current.choices if choices is UNSET else _checked_choices(current.type, choices)
        )
        return await self.store.update_attribute(key, new_label, new_choices, utcnow())

    async def drop(self, key: str) -> None:
        """Remove the definition (contacts' values stay, undeclared); NotFound when
        ``key`` is not declared."""
        await self.store.drop_attribute(key)

    async def check(self, new: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
        """:func:`check_attributes` against the current definitions."""
        return check_attributes(new, stored, await self.definitions())

    async def patch(self, patch: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
        """:func:`patch_attributes` against the current definitions."""
        return patch_attributes(patch, stored, await self.definitions())

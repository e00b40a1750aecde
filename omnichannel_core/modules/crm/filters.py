"""The segments' filter language: JSON checked by :func:`parse_filter` into a
:class:`Filter`, which compiles to a predicate over a contact and its activity.

A filter is one node:

- ``{"and": [node, ...]}``, ``{"or": [node, ...]}`` (1 to 50 nodes), ``{"not": node}``;
- ``{"field": F, "op": OP, "value": V}``, a condition (``exists`` takes no ``value``).

What each field takes (docs/crm.md, "Segments", has the table):

- text (``display_name``, ``company``, ``locale``, ``timezone``): ``eq``, ``ne``, ``in``,
  ``exists``; V a text (``in``: a list of 1 to 100 texts). Exact comparison.
- lists (``emails``, ``phones``, ``tags``, ``opted_out``, ``identities.channel``,
  ``identities.address``, and from the conversations ``channels``,
  ``conversation_status``): ``contains`` (the list holds V), ``in`` (it holds one of V),
  ``exists`` (it is not empty). Emails are compared lowercased; a status is one of
  ``open``, ``pending``, ``resolved``.
- times (``created_at``, ``updated_at``, and ``last_activity_at`` from the conversations):
  ``lt``, ``lte``, ``gt``, ``gte``, ``exists``; V an RFC 3339 timestamp or a time before
  now, ``-30d``, ``-12h``, ``-15m``, resolved when the filter is compiled.
- ``attributes.<key>``: every op. The stored value's JSON type decides: a number compares
  with a number, a text with a text (``lt``... with a date, ``YYYY-MM-DD``, or a relative
  time, which names its date), ``true``/``false`` with themselves; another type does not
  match. ``contains`` matches a list holding V.

``exists``: the value is set, not null, not empty. ``ne`` is ``not eq``: it matches a
contact without the value (null, or an attribute of another type).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final, TypeAlias

import attrs

from omnichannel_core.module import (
    Contact,
    ContactActivity,
    ConversationStatus,
    InvalidInput,
    format_timestamp,
    parse_timestamp,
    utcnow,
)
from omnichannel_core.modules.crm.attributes import is_number

Predicate: TypeAlias = Callable[[Contact, ContactActivity | None], bool]
"""A compiled filter: whether a contact (with its activity, None: none read) matches."""

MAX_DEPTH: Final = 8
MAX_NODES: Final = 200
MAX_BRANCHES: Final = 50
MAX_VALUES: Final = 100
MAX_KEY_LENGTH: Final = 100

OPS: Final = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "exists")
TEXT_OPS: Final = ("eq", "ne", "in", "exists")
LIST_OPS: Final = ("contains", "in", "exists")
TIME_OPS: Final = ("lt", "lte", "gt", "gte", "exists")

TEXT_FIELDS: Final = ("display_name", "company", "locale", "timezone")
LIST_FIELDS: Final = (
    "emails",
    "phones",
    "tags",
    "opted_out",
    "identities.channel",
    "identities.address",
    "channels",
    "conversation_status",
)
TIME_FIELDS: Final = ("created_at", "updated_at", "last_activity_at")
ACTIVITY_FIELDS: Final = frozenset({"channels", "conversation_status", "last_activity_at"})
ATTRIBUTE_PREFIX: Final = "attributes."
FIELDS: Final = (*TEXT_FIELDS, *LIST_FIELDS, *TIME_FIELDS, ATTRIBUTE_PREFIX + "<key>")

RELATIVE = re.compile(r"-([0-9]{1,5})([dhm])")
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
UNITS: Final = {"d": "days", "h": "hours", "m": "minutes"}
STATUSES: Final = tuple(status.value for status in ConversationStatus)
COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}
NUMBER_TYPES: Final = frozenset({int, float})
JSON_TAGS: Final = {bool: 0, int: 1, float: 1, str: 2}
"""Equal JSON values have equal tags: ``1 == True`` in Python, not in a filter."""


@attrs.frozen
class Condition:
    """``{"field", "op", "value"}``, the value normalised (``in``: a tuple; ``exists``:
    None)."""

    field: str
    op: str
    value: Any = None


@attrs.frozen
class Branches:
    """``{"and": [...]}`` or ``{"or": [...]}``."""

    op: str
    nodes: tuple[Node, ...]


@attrs.frozen
class Negation:
    """``{"not": node}``."""

    node: Node


Node: TypeAlias = Condition | Branches | Negation


@attrs.frozen
class Filter:
    """A checked filter: :meth:`to_json` is its normal form (what a segment stores),
    :meth:`compile` the predicate that evaluates it."""

    root: Node
    needs_activity: bool
    """Whether a condition names ``channels``, ``conversation_status`` or
    ``last_activity_at``: evaluating it needs each contact's ContactActivity."""

    def to_json(self) -> dict[str, Any]:
        return _node_json(self.root)

    def compile(self, now: datetime | None = None) -> Predicate:
        """The predicate, relative times taken back from ``now`` (default: the current
        time). Compile once per pass; the predicate never raises."""
        return _compile(self.root, utcnow() if now is None else now)


def parse_filter(value: Any, path: str = "filter") -> Filter:
    """The filter that JSON ``value`` spells, or InvalidInput whose message starts with the
    JSON path of the fault (its ``field`` too): ``filter.and[2].op: must be one of...``.
    ``path`` names the value in the request's body."""
    parser = _Parser()
    root = parser.node(value, path, 1)
    return Filter(root, parser.needs_activity)


def _invalid(path: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{path}: {problem}", field=path)


def _one_of(names: tuple[str, ...]) -> str:
    return "must be one of " + ", ".join(names)


class _Parser:
    def __init__(self) -> None:
        self.nodes = 0
        self.needs_activity = False

    def node(self, value: Any, path: str, depth: int) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _invalid(path, f"a filter has at most {MAX_NODES} nodes")
        if depth > MAX_DEPTH:
            raise _invalid(path, f"a filter nests at most {MAX_DEPTH} levels")
        if not isinstance(value, dict):
            raise _invalid(path, "must be an object")
        logical = [key for key in ("and", "or", "not") if key in value]
        if not logical:
            return self.condition(value, path)
        key = logical[0]
        for other in value:
            if other != key:
                raise _invalid(f"{path}.{other}", f'not allowed beside "{key}"')
        if key == "not":
            return Negation(self.node(value["not"], f"{path}.not", depth + 1))
        nodes = value[key]
        if not isinstance(nodes, list) or not 1 <= len(nodes) <= MAX_BRANCHES:
            raise _invalid(f"{path}.{key}", f"must be a list of 1 to {MAX_BRANCHES} filters")
        return Branches(
            key,
            tuple(self.node(n, f"{path}.{key}[{i}]", depth + 1) for i, n in enumerate(nodes)),
        )

    def condition(self, node: dict[str, Any], path: str) -> Condition:
        for key in node:
            if key not in ("field", "op", "value"):
                raise _invalid(f"{path}.{key}", "unknown field; allowed: field, op, value")
        name = self.field(node.get("field"), f"{path}.field")
        op = node.get("op")
        if op is None:
            raise _invalid(f"{path}.op", "required")
        if op not in OPS:
            raise _invalid(f"{path}.op", _one_of(OPS))
        allowed = _ops_of(name)
        if op not in allowed:
            raise _invalid(f"{path}.op", f"{_one_of(allowed)} for {name}")
        if name in ACTIVITY_FIELDS:
            self.needs_activity = True
        if op == "exists":
            if "value" in node:
                raise _invalid(f"{path}.value", "must be left out for exists")
            return Condition(name, op)
        if "value" not in node:
            raise _invalid(f"{path}.value", "required")
        value_path = f"{path}.value"
        value = node["value"]
        if op == "in":
            if not isinstance(value, list) or not 1 <= len(value) <= MAX_VALUES:
                raise _invalid(value_path, f"must be a list of 1 to {MAX_VALUES} values")
            items = [_scalar(name, v, f"{value_path}[{i}]") for i, v in enumerate(value)]
            return Condition(name, op, _distinct(items))
        if op in COMPARE:
            return Condition(name, op, _bound(name, value, value_path))
        return Condition(name, op, _scalar(name, value, value_path))

    @staticmethod
    def field(name: Any, path: str) -> str:
        if name is None:
            raise _invalid(path, "required")
        if not isinstance(name, str):
            raise _invalid(path, "must be a string")
        if name.startswith(ATTRIBUTE_PREFIX):
            if not 1 <= len(name) - len(ATTRIBUTE_PREFIX) <= MAX_KEY_LENGTH:
                raise _invalid(path, f"an attribute's key has 1 to {MAX_KEY_LENGTH} characters")
            return name
        if name not in FIELDS:
            raise _invalid(path, _one_of(FIELDS))
        return name


def _ops_of(name: str) -> tuple[str, ...]:
    if name in TEXT_FIELDS:
        return TEXT_OPS
    if name in LIST_FIELDS:
        return LIST_OPS
    if name in TIME_FIELDS:
        return TIME_OPS
    return OPS


def _is_number(value: Any) -> bool:
    return type(value) in NUMBER_TYPES and is_number(value)


def _scalar(name: str, value: Any, path: str) -> Any:
    """The value an ``eq``/``ne``/``in``/``contains`` condition compares with, normalised."""
    if name.startswith(ATTRIBUTE_PREFIX):
        if isinstance(value, str | bool) or _is_number(value):
            return value
        raise _invalid(path, "must be a string, a number, true or false")
    if not isinstance(value, str):
        raise _invalid(path, "must be a string")
    if name == "emails":
        return value.lower()
    if name == "conversation_status" and value not in STATUSES:
        raise _invalid(path, _one_of(STATUSES))
    return value


def _bound(name: str, value: Any, path: str) -> Any:
    """The value an ``lt``/``lte``/``gt``/``gte`` condition compares with, normalised."""
    if isinstance(value, str) and RELATIVE.fullmatch(value):
        return value
    if name.startswith(ATTRIBUTE_PREFIX):
        if _is_number(value) or (isinstance(value, str) and DATE.fullmatch(value)):
            return value
        raise _invalid(
            path, "must be a number, a date (YYYY-MM-DD) or a relative time (-30d, -12h, -15m)"
        )
    if isinstance(value, str):
        try:
            return format_timestamp(parse_timestamp(value))
        except ValueError:
            pass
    raise _invalid(path, "must be an RFC 3339 timestamp or a relative time (-30d, -12h, -15m)")


def _distinct(values: list[Any]) -> tuple[Any, ...]:
    seen: set[tuple[int, Any]] = set()
    kept = []
    for value in values:
        key = (JSON_TAGS[type(value)], value)
        if key not in seen:
            seen.add(key)
            kept.append(value)
    return tuple(kept)


def _node_json(node: Node) -> dict[str, Any]:
    if isinstance(node, Condition):
        spelled = {"field": node.field, "op": node.op}
        if node.op == "exists":
            return spelled
        return {**spelled, "value": list(node.value) if node.op == "in" else node.value}
    if isinstance(node, Negation):
        return {"not": _node_json(node.node)}
    return {node.op: [_node_json(n) for n in node.nodes]}


def _compile(node: Node, now: datetime) -> Predicate:
    if isinstance(node, Negation):
        inner = _compile(node.node, now)
        return lambda contact, activity: not inner(contact, activity)
    if isinstance(node, Branches):
        parts = [_compile(n, now) for n in node.nodes]
        return _every(parts) if node.op == "and" else _some(parts)
    if node.field.startswith(ATTRIBUTE_PREFIX):
        return _attribute(node.field[len(ATTRIBUTE_PREFIX) :], node.op, node.value, now)
    return _field(node, now)


def _every(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts
        return lambda contact, activity: first(contact, activity) and second(contact, activity)

    def every(contact: Contact, activity: ContactActivity | None) -> bool:
        for part in parts:  # noqa: SIM110 - a loop runs faster than all() of a generator
            if not part(contact, activity):
                return False
        return True

    return every


def _some(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts
        return lambda contact, activity: first(contact, activity) or second(contact, activity)

    def some(contact: Contact, activity: ContactActivity | None) -> bool:
        for part in parts:  # noqa: SIM110 - a loop runs faster than any() of a generator
            if part(contact, activity):
                return True
        return False

    return some


Getter: TypeAlias = Callable[[Contact, ContactActivity | None], Any]


def _plain(name: str) -> Getter:
    read = operator.attrgetter(name)
    return lambda contact, activity: read(contact)


GETTERS: Final[dict[str, Getter]] = {
    **{name: _plain(name) for name in (*TEXT_FIELDS, "emails", "phones", "tags", "opted_out")},
    "created_at": _plain("created_at"),
    "updated_at": _plain("updated_at"),
    "identities.channel": lambda contact, _: [i.channel for i in contact.identities],
    "identities.address": lambda contact, _: [i.address for i in contact.identities],
    "channels": lambda _, activity: () if activity is None else activity.channels,
    "conversation_status": lambda _, activity: () if activity is None else activity.statuses,
    "last_activity_at": lambda _, activity: None if activity is None else activity.last_activity_at,
}


def _field(condition: Condition, now: datetime) -> Predicate:
    get = GETTERS[condition.field]
    op, value = condition.op, condition.value
    if op == "exists":
        if condition.field in TIME_FIELDS:
            return lambda contact, activity: get(contact, activity) is not None
        return lambda contact, activity: bool(get(contact, activity))
    if op == "eq":
        return lambda contact, activity: bool(get(contact, activity) == value)
    if op == "ne":
        return lambda contact, activity: bool(get(contact, activity) != value)
    if op == "contains":
        return lambda contact, activity: value in get(contact, activity)
    if op == "in":
        options = frozenset(value)
        if condition.field in LIST_FIELDS:
            return lambda contact, activity: not options.isdisjoint(get(contact, activity))
        return lambda contact, activity: get(contact, activity) in options
    compare, bound = COMPARE[op], _time(value, now)

    def compares(contact: Contact, activity: ContactActivity | None) -> bool:
        moment = get(contact, activity)
        return moment is not None and bool(compare(moment, bound))

    return compares


def _time(value: str, now: datetime) -> datetime:
    relative = RELATIVE.fullmatch(value)
    if relative is None:
        return parse_timestamp(value)
    return now - timedelta(**{UNITS[relative[2]]: int(relative[1])})


SIZED: Final = frozenset({str, list, dict})


def _attribute(key: str, op: str, value: Any, now: datetime) -> Predicate:
    if op == "exists":

        def exists(contact: Contact, activity: ContactActivity | None) -> bool:
            held = contact.attributes.get(key)
            return held is not None and (type(held) not in SIZED or len(held) > 0)

        return exists
    if op in ("eq", "ne"):
        equal = _attribute_equal(key, value)
        return equal if op == "eq" else lambda contact, activity: not equal(contact, activity)
    if op == "in":
        return _attribute_in(key, value)
    if op == "contains":
        tag = JSON_TAGS[type(value)]

        def holds(contact: Contact, activity: ContactActivity | None) -> bool:
            held = contact.attributes.get(key)
            return type(held) is list and any(
                JSON_TAGS.get(type(item)) == tag and item == value for item in held
            )

        return holds
    compare = COMPARE[op]
    if not isinstance(value, str):
        return lambda contact, activity: (
            type(held := contact.attributes.get(key)) in NUMBER_TYPES and compare(held, value)
        )
    day = value if DATE.fullmatch(value) else _time(value, now).date().isoformat()

    def compares(contact: Contact, activity: ContactActivity | None) -> bool:
        held = contact.attributes.get(key)
        return type(held) is str and DATE.fullmatch(held) is not None and compare(held, day)

    return compares


def _attribute_equal(key: str, value: Any) -> Predicate:
    if isinstance(value, str):
        return lambda contact, activity: contact.attributes.get(key) == value
    if isinstance(value, bool):
        return lambda contact, activity: contact.attributes.get(key) is value
    return lambda contact, activity: (
        type(held := contact.attributes.get(key)) in NUMBER_TYPES and held == value
    )


def _attribute_in(key: str, values: tuple[Any, ...]) -> Predicate:
    if all(isinstance(value, str) for value in values):
        texts = frozenset(values)
        return lambda contact, activity: (
            type(held := contact.attributes.get(key)) is str and held in texts
        )
    options = frozenset((JSON_TAGS[type(value)], value) for value in values)

    def within(contact: Contact, activity: ContactActivity | None) -> bool:
        held = contact.attributes.get(key)
        tag = JSON_TAGS.get(type(held))
        return tag is not None and (tag, held) in options

    return within

"""The segments' filter language (omnichannel_core/modules/crm/filters.py): what each
operator matches on each kind of field, how relative times resolve, how attributes compare
by their JSON type, the normal form a segment stores, and the message (naming the JSON
path) of every filter refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from omnichannel_core.module import (
    Contact,
    ContactActivity,
    ConversationStatus,
    Identity,
    InvalidInput,
)
from omnichannel_core.modules.crm.filters import Filter, parse_filter

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def contact(**fields: Any) -> Contact:
    """A contact created 10 days before NOW, updated 1 day before, with ``fields``."""
    defaults: dict[str, Any] = {
        "id": "ct_1",
        "display_name": "Ann",
        "identities": (Identity("whatsapp", "+34600000001"), Identity("email", "ann@x.com")),
        "created_at": NOW - 10 * DAY,
        "updated_at": NOW - DAY,
    }
    return Contact(**{**defaults, **fields})


def cond(field: Any, op: Any, value: Any = ...) -> dict[str, Any]:
    spelled = {"field": field, "op": op}
    return spelled if value is ... else {**spelled, "value": value}


def matches(filter_json: Any, who: Contact, activity: ContactActivity | None = None) -> bool:
    return parse_filter(filter_json).compile(NOW)(who, activity)


ACTIVE = ContactActivity(
    last_activity_at=NOW - timedelta(minutes=10),
    statuses=(ConversationStatus.OPEN, ConversationStatus.PENDING),
    channels=("whatsapp", "email"),
)
IDLE = ContactActivity()  # no conversation

# (filter, contact's fields, activity, matches?)
FIELD_CASES = {
    # text fields: exact, None is no value
    "text eq": (cond("company", "eq", "Acme"), {"company": "Acme"}, None, True),
    "text eq is case-sensitive": (cond("company", "eq", "acme"), {"company": "Acme"}, None, False),
    "text eq on none": (cond("company", "eq", "Acme"), {}, None, False),
    "text ne": (cond("company", "ne", "Acme"), {"company": "Other"}, None, True),
    "text ne same": (cond("company", "ne", "Acme"), {"company": "Acme"}, None, False),
    "text ne on none matches": (
        cond("display_name", "ne", "Ann"),
        {"display_name": None},
        None,
        True,
    ),
    "text in": (cond("locale", "in", ["es", "pt-BR"]), {"locale": "pt-BR"}, None, True),
    "text in misses": (cond("locale", "in", ["es", "pt-BR"]), {"locale": "pt"}, None, False),
    "text in on none": (cond("locale", "in", ["es"]), {}, None, False),
    "text exists": (cond("timezone", "exists"), {"timezone": "Europe/Madrid"}, None, True),
    "text exists none": (cond("timezone", "exists"), {}, None, False),
    "text exists empty": (cond("timezone", "exists"), {"timezone": ""}, None, False),
    # lists
    "tags contains": (cond("tags", "contains", "vip"), {"tags": ("a", "vip")}, None, True),
    "tags contains misses": (cond("tags", "contains", "VIP"), {"tags": ("vip",)}, None, False),
    "tags in": (cond("tags", "in", ["x", "vip"]), {"tags": ("a", "vip")}, None, True),
    "tags in misses": (cond("tags", "in", ["x", "y"]), {"tags": ("a", "vip")}, None, False),
    "tags exists": (cond("tags", "exists"), {"tags": ("a",)}, None, True),
    "tags exists empty": (cond("tags", "exists"), {"tags": ()}, None, False),
    "emails contains lowercases": (
        cond("emails", "contains", "Ann@X.COM"),
        {"emails": ("ann@x.com",)},
        None,
        True,
    ),
    "emails in lowercases": (
        cond("emails", "in", ["B@Y.com", "ANN@x.com"]),
        {"emails": ("ann@x.com",)},
        None,
        True,
    ),
    "emails exists empty": (cond("emails", "exists"), {"emails": ()}, None, False),
    "phones contains": (cond("phones", "contains", "+3460"), {"phones": ("+3460",)}, None, True),
    "phones in misses": (cond("phones", "in", ["+1"]), {"phones": ("+3460",)}, None, False),
    "opted_out contains": (
        cond("opted_out", "contains", "sms"),
        {"opted_out": ("sms",)},
        None,
        True,
    ),
    "opted_out exists none": (cond("opted_out", "exists"), {}, None, False),
    "identities.channel contains": (
        cond("identities.channel", "contains", "whatsapp"),
        {},
        None,
        True,
    ),
    "identities.channel in misses": (
        cond("identities.channel", "in", ["sms", "messenger"]),
        {},
        None,
        False,
    ),
    "identities.address in": (
        cond("identities.address", "in", ["+1", "ann@x.com"]),
        {},
        None,
        True,
    ),
    "identities.address is exact": (
        cond("identities.address", "contains", "ANN@x.com"),
        {},
        None,
        False,
    ),
    "identities exists none": (
        cond("identities.channel", "exists"),
        {"identities": ()},
        None,
        False,
    ),
    "channels contains": (cond("channels", "contains", "email"), {}, ACTIVE, True),
    "channels contains misses": (cond("channels", "contains", "sms"), {}, ACTIVE, False),
    "channels without activity": (cond("channels", "contains", "email"), {}, None, False),
    "channels exists idle": (cond("channels", "exists"), {}, IDLE, False),
    "status in": (cond("conversation_status", "in", ["resolved", "pending"]), {}, ACTIVE, True),
    "status contains misses": (
        cond("conversation_status", "contains", "resolved"),
        {},
        ACTIVE,
        False,
    ),
    "status exists": (cond("conversation_status", "exists"), {}, ACTIVE, True),
    # times
    "created_at lt absolute": (cond("created_at", "lt", "2026-01-22T00:00:00Z"), {}, None, True),
    "created_at gt absolute": (cond("created_at", "gt", "2026-01-22T00:00:00Z"), {}, None, False),
    "created_at gte offset": (
        cond("created_at", "gte", "2026-01-21T13:00:00+01:00"),
        {},
        None,
        True,
    ),
    "created_at lte date only": (cond("created_at", "lte", "2026-01-21"), {}, None, False),
    "created_at gt -30d": (cond("created_at", "gt", "-30d"), {}, None, True),
    "created_at lt -30d": (cond("created_at", "lt", "-30d"), {}, None, False),
    "created_at lt -30d boundary": (
        cond("created_at", "lt", "-30d"),
        {"created_at": NOW - 30 * DAY},
        None,
        False,
    ),
    "created_at lte -30d boundary": (
        cond("created_at", "lte", "-30d"),
        {"created_at": NOW - 30 * DAY},
        None,
        True,
    ),
    "created_at exists": (cond("created_at", "exists"), {}, None, True),
    "updated_at gt -12h": (cond("updated_at", "gt", "-12h"), {}, None, False),
    "updated_at gt -25h": (cond("updated_at", "gt", "-25h"), {}, None, True),
    "last_activity_at gt -15m": (cond("last_activity_at", "gt", "-15m"), {}, ACTIVE, True),
    "last_activity_at lt -15m": (cond("last_activity_at", "lt", "-15m"), {}, ACTIVE, False),
    "last_activity_at gte -10m boundary": (
        cond("last_activity_at", "gte", "-10m"),
        {},
        ACTIVE,
        True,
    ),
    "last_activity_at lt when idle": (cond("last_activity_at", "lt", "-15m"), {}, IDLE, False),
    "last_activity_at lt without activity": (
        cond("last_activity_at", "lt", "-1m"),
        {},
        None,
        False,
    ),
    "last_activity_at exists": (cond("last_activity_at", "exists"), {}, ACTIVE, True),
    "last_activity_at exists idle": (cond("last_activity_at", "exists"), {}, IDLE, False),
}


@pytest.mark.parametrize(
    ("filter_json", "fields", "activity", "expected"), FIELD_CASES.values(), ids=list(FIELD_CASES)
)
def test_each_operator_on_each_kind_of_field(filter_json, fields, activity, expected):
    """Text fields compare exactly (None: no value, so ``ne`` matches); list fields hold a
    value, one of some, or any; emails are compared lowercased; times compare with a
    timestamp or a time before now; activity fields read the ContactActivity (none given:
    an empty one)."""
    assert matches(filter_json, contact(**fields), activity) is expected


def attribute(op: str, value: Any = ...) -> dict[str, Any]:
    return cond("attributes.plan", op, value)


# (condition on attributes.plan, the attribute's value (... : absent), matches?)
ATTRIBUTE_CASES = {
    "eq text": (attribute("eq", "gold"), "gold", True),
    "eq text misses": (attribute("eq", "gold"), "Gold", False),
    "eq text vs number": (attribute("eq", "3"), 3, False),
    "eq number": (attribute("eq", 3), 3, True),
    "eq number int vs float": (attribute("eq", 3.0), 3, True),
    "eq number vs text": (attribute("eq", 3), "3", False),
    "eq number vs true": (attribute("eq", 1), True, False),
    "eq true vs number": (attribute("eq", True), 1, False),
    "eq true": (attribute("eq", True), True, True),
    "eq false vs absent": (attribute("eq", False), ..., False),
    "eq vs list": (attribute("eq", "gold"), ["gold"], False),
    "eq vs object": (attribute("eq", 3), {"a": 3}, False),
    "ne absent matches": (attribute("ne", "gold"), ..., True),
    "ne null matches": (attribute("ne", "gold"), None, True),
    "ne other type matches": (attribute("ne", 3), "3", True),
    "ne same": (attribute("ne", 3), 3.0, False),
    "lt number": (attribute("lt", 10), 9.5, True),
    "lte number": (attribute("lte", 10), 10, True),
    "gt number misses": (attribute("gt", 10), 10, False),
    "gte number": (attribute("gte", 10), 11, True),
    "gt number vs text": (attribute("gt", 1), "5", False),
    "gt number vs true": (attribute("gt", 0), True, False),
    "gt number vs absent": (attribute("gt", 0), ..., False),
    "gt number vs list": (attribute("gt", 0), [5], False),
    "gte date": (attribute("gte", "2026-01-01"), "2026-02-01", True),
    "lt date": (attribute("lt", "2026-01-01"), "2026-02-01", False),
    "lte date same": (attribute("lte", "2026-01-01"), "2026-01-01", True),
    "lt date vs non-date text": (attribute("lt", "2026-01-01"), "1999", False),
    "gt date vs number": (attribute("gt", "2026-01-01"), 20260102, False),
    "lt relative date": (attribute("lt", "-30d"), "2025-12-31", True),
    "lt relative date boundary": (attribute("lt", "-30d"), "2026-01-01", False),
    "gte relative date boundary": (attribute("gte", "-30d"), "2026-01-01", True),
    "gt relative hours": (attribute("gt", "-13h"), "2026-01-31", True),
    "gt relative hours same day": (attribute("gt", "-13h"), "2026-01-30", False),
    "in texts": (attribute("in", ["gold", "silver"]), "silver", True),
    "in texts vs list": (attribute("in", ["gold"]), ["gold"], False),
    "in texts vs number": (attribute("in", ["1"]), 1, False),
    "in mixed number": (attribute("in", [1, "a", True]), 1.0, True),
    "in mixed text": (attribute("in", [1, "a", True]), "a", True),
    "in mixed true": (attribute("in", [1, "a", True]), True, True),
    "in mixed false": (attribute("in", [1, "a", True]), False, False),
    "in number vs true": (attribute("in", [1, 2]), True, False),
    "in mixed vs object": (attribute("in", [1, "a"]), {"a": 1}, False),
    "contains": (attribute("contains", "vip"), ["b", "vip"], True),
    "contains vs text": (attribute("contains", "vip"), "vip", False),
    "contains number vs true": (attribute("contains", 1), [True], False),
    "contains number": (attribute("contains", 1), [2, 1.0], True),
    "exists text": (attribute("exists"), "x", True),
    "exists zero": (attribute("exists"), 0, True),
    "exists false": (attribute("exists"), False, True),
    "exists list": (attribute("exists"), [1], True),
    "exists absent": (attribute("exists"), ..., False),
    "exists null": (attribute("exists"), None, False),
    "exists empty text": (attribute("exists"), "", False),
    "exists empty list": (attribute("exists"), [], False),
    "exists empty object": (attribute("exists"), {}, False),
}


@pytest.mark.parametrize(
    ("filter_json", "held", "expected"), ATTRIBUTE_CASES.values(), ids=list(ATTRIBUTE_CASES)
)
def test_attributes_compare_by_json_type(filter_json, held, expected):
    """An attribute compares with a value of its own JSON type (a number with a number,
    ``true`` with ``true``, a date text with a date); another type, or no attribute, does
    not match (``ne`` does) and never raises. Relative times name their UTC date."""
    attributes = {} if held is ... else {"plan": held}
    assert matches(filter_json, contact(attributes=attributes)) is expected


def test_attribute_keys_are_exact():
    """``attributes.<key>`` reads that key only; a key may hold dots."""
    who = contact(attributes={"a.b": 1, "A": 2})
    assert matches(cond("attributes.a.b", "eq", 1), who)
    assert not matches(cond("attributes.a", "exists"), who)
    assert matches(cond("attributes.A", "eq", 2), who)


GOLD = cond("attributes.plan", "eq", "gold")
ACME = cond("company", "eq", "Acme")
VIP = cond("tags", "contains", "vip")
LOGIC_CASES = {
    "and both": ({"and": [GOLD, ACME]}, {"plan": "gold"}, "Acme", (), True),
    "and one": ({"and": [GOLD, ACME]}, {"plan": "gold"}, "Other", (), False),
    "and single": ({"and": [GOLD]}, {"plan": "gold"}, None, (), True),
    "and three": ({"and": [GOLD, ACME, VIP]}, {"plan": "gold"}, "Acme", ("vip",), True),
    "and three misses last": ({"and": [GOLD, ACME, VIP]}, {"plan": "gold"}, "Acme", (), False),
    "or one": ({"or": [GOLD, ACME]}, {}, "Acme", (), True),
    "or none": ({"or": [GOLD, ACME]}, {}, None, (), False),
    "or single": ({"or": [ACME]}, {}, "Acme", (), True),
    "or three last": ({"or": [GOLD, ACME, VIP]}, {}, None, ("vip",), True),
    "or three none": ({"or": [GOLD, ACME, VIP]}, {}, None, (), False),
    "not": ({"not": ACME}, {}, "Other", (), True),
    "not not": ({"not": {"not": ACME}}, {}, "Acme", (), True),
    "nested": (
        {"and": [{"or": [GOLD, VIP]}, {"not": ACME}]},
        {},
        "Other",
        ("vip",),
        True,
    ),
    "nested misses": (
        {"and": [{"or": [GOLD, VIP]}, {"not": ACME}]},
        {"plan": "gold"},
        "Acme",
        (),
        False,
    ),
}


@pytest.mark.parametrize(
    ("filter_json", "attributes", "company", "tags", "expected"),
    LOGIC_CASES.values(),
    ids=list(LOGIC_CASES),
)
def test_and_or_not_combine_conditions(filter_json, attributes, company, tags, expected):
    """``and`` needs every node, ``or`` one, ``not`` inverts, at any nesting."""
    who = contact(attributes=attributes, company=company, tags=tags)
    assert matches(filter_json, who) is expected


def test_relative_times_resolve_when_compiled():
    """``-30d`` is taken back from the ``now`` given to compile, once: the same filter
    compiled later moves its bound; the predicate itself reads no clock."""
    recent = parse_filter(cond("created_at", "gt", "-30d"))
    who = contact(created_at=NOW - 20 * DAY)
    assert recent.compile(NOW)(who, None)
    assert not recent.compile(NOW + 11 * DAY)(who, None)


def test_compile_defaults_to_the_current_time():
    """Without ``now`` the current time is used."""
    who = contact(created_at=datetime.now(UTC) - timedelta(minutes=5))
    assert parse_filter(cond("created_at", "gt", "-10m")).compile()(who, None)
    assert not parse_filter(cond("created_at", "gt", "-1m")).compile()(who, None)


@pytest.mark.parametrize("field", ["channels", "conversation_status", "last_activity_at"])
def test_needs_activity_when_a_node_names_an_activity_field(field):
    """needs_activity is true when any node, however deep, names an activity field."""
    deep = {"and": [ACME, {"or": [VIP, {"not": cond(field, "exists")}]}]}
    assert parse_filter(deep).needs_activity
    assert parse_filter(cond(field, "exists")).needs_activity


def test_needs_no_activity_for_contact_fields():
    """A filter on the contact alone needs no activity."""
    every_contact_field = {
        "and": [
            ACME,
            VIP,
            GOLD,
            cond("created_at", "gt", "-1d"),
            cond("identities.channel", "exists"),
        ]
    }
    assert not parse_filter(every_contact_field).needs_activity


NORMAL_CASES = {
    "emails lowercased": (
        cond("emails", "in", ["A@X.com", "b@y.com"]),
        cond("emails", "in", ["a@x.com", "b@y.com"]),
    ),
    "email contains lowercased": (
        cond("emails", "contains", "A@X.com"),
        cond("emails", "contains", "a@x.com"),
    ),
    "in values once": (cond("tags", "in", ["a", "b", "a"]), cond("tags", "in", ["a", "b"])),
    "attribute values once by type": (
        cond("attributes.n", "in", [1, True, 1.0, "1", True]),
        cond("attributes.n", "in", [1, True, "1"]),
    ),
    "timestamp in UTC": (
        cond("created_at", "lt", "2026-01-01T10:00:00+02:00"),
        cond("created_at", "lt", "2026-01-01T08:00:00.000000Z"),
    ),
    "date as midnight": (
        cond("updated_at", "gte", "2026-01-01"),
        cond("updated_at", "gte", "2026-01-01T00:00:00.000000Z"),
    ),
    "relative kept": (cond("created_at", "lt", "-30d"), cond("created_at", "lt", "-30d")),
    "attribute date kept": (
        cond("attributes.due", "lt", "2026-01-01"),
        cond("attributes.due", "lt", "2026-01-01"),
    ),
    "exists": (cond("tags", "exists"), {"field": "tags", "op": "exists"}),
    "nested": (
        {"or": [{"not": cond("emails", "contains", "X@Y.z")}, {"and": [ACME]}]},
        {"or": [{"not": cond("emails", "contains", "x@y.z")}, {"and": [ACME]}]},
    ),
}


@pytest.mark.parametrize(("given", "normal"), NORMAL_CASES.values(), ids=list(NORMAL_CASES))
def test_to_json_is_the_normal_form(given, normal):
    """to_json spells the filter normalised (emails lowercased, ``in`` values once,
    timestamps in UTC as the project writes them, relative times kept as given: a segment
    stays relative), and parsing it again gives the same filter."""
    parsed = parse_filter(given)
    assert parsed.to_json() == normal
    assert parse_filter(parsed.to_json()) == parsed
    assert isinstance(parsed, Filter)


def nested_nots(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = ACME
    for _ in range(levels):
        node = {"not": node}
    return node


def many_nodes(last_and: int) -> dict[str, Any]:
    """An ``or`` of four ``and``: 3 of 49 conditions, the last of ``last_and``."""
    sizes = [49, 49, 49, last_and]
    return {"or": [{"and": [ACME] * size} for size in sizes]}


def test_the_limits_are_accepted():
    """Eight levels, 200 nodes, 50 branches and 100 ``in`` values are allowed."""
    assert parse_filter(nested_nots(7)).compile(NOW)(contact(company="Other"), None)
    assert parse_filter(many_nodes(48)).compile(NOW)(contact(company="Acme"), None)
    parse_filter({"and": [ACME] * 50})
    parse_filter(cond("tags", "in", [str(i) for i in range(100)]))
    parse_filter(cond("attributes." + "k" * 100, "exists"))


OPS = "eq, ne, lt, lte, gt, gte, in, contains, exists"
FIELDS = (
    "display_name, company, locale, timezone, emails, phones, tags, opted_out,"
    " identities.channel, identities.address, channels, conversation_status, created_at,"
    " updated_at, last_activity_at, attributes.<key>"
)
TIME = "must be an RFC 3339 timestamp or a relative time (-30d, -12h, -15m)"
ATTRIBUTE_VALUE = "must be a string, a number, true or false"
ATTRIBUTE_BOUND = "must be a number, a date (YYYY-MM-DD) or a relative time (-30d, -12h, -15m)"
ERROR_CASES: dict[str, tuple[Any, str]] = {
    "not an object": ([ACME], "filter: must be an object"),
    "null": (None, "filter: must be an object"),
    "empty object": ({}, "filter.field: required"),
    "and empty": ({"and": []}, "filter.and: must be a list of 1 to 50 filters"),
    "and not a list": ({"and": ACME}, "filter.and: must be a list of 1 to 50 filters"),
    "or of 51": ({"or": [ACME] * 51}, "filter.or: must be a list of 1 to 50 filters"),
    "and beside or": ({"and": [ACME], "or": [ACME]}, 'filter.or: not allowed beside "and"'),
    "field beside not": ({"not": ACME, **ACME}, 'filter.field: not allowed beside "not"'),
    "not of a list": ({"not": [ACME]}, "filter.not: must be an object"),
    "unknown key": (
        {**ACME, "values": ["x"]},
        "filter.values: unknown field; allowed: field, op, value",
    ),
    "field missing": ({"op": "eq", "value": "x"}, "filter.field: required"),
    "field not text": (cond(3, "eq", "x"), "filter.field: must be a string"),
    "field unknown": (cond("name", "eq", "x"), f"filter.field: must be one of {FIELDS}"),
    "attribute without key": (
        cond("attributes.", "exists"),
        "filter.field: an attribute's key has 1 to 100 characters",
    ),
    "attribute key too long": (
        cond("attributes." + "k" * 101, "exists"),
        "filter.field: an attribute's key has 1 to 100 characters",
    ),
    "op missing": ({"field": "company", "value": "x"}, "filter.op: required"),
    "op unknown": (cond("company", "like", "x"), f"filter.op: must be one of {OPS}"),
    "op not text": (cond("company", ["eq"], "x"), f"filter.op: must be one of {OPS}"),
    "op on text": (
        cond("company", "lt", "x"),
        "filter.op: must be one of eq, ne, in, exists for company",
    ),
    "contains on text": (
        cond("display_name", "contains", "x"),
        "filter.op: must be one of eq, ne, in, exists for display_name",
    ),
    "op on list": (
        cond("tags", "eq", "x"),
        "filter.op: must be one of contains, in, exists for tags",
    ),
    "op on activity list": (
        cond("channels", "ne", "sms"),
        "filter.op: must be one of contains, in, exists for channels",
    ),
    "op on time": (
        cond("created_at", "eq", "-1d"),
        "filter.op: must be one of lt, lte, gt, gte, exists for created_at",
    ),
    "exists with value": (
        cond("tags", "exists", True),
        "filter.value: must be left out for exists",
    ),
    "value missing": (cond("company", "eq"), "filter.value: required"),
    "text value a number": (cond("company", "eq", 5), "filter.value: must be a string"),
    "text value null": (cond("company", "eq", None), "filter.value: must be a string"),
    "list value a list": (cond("tags", "contains", ["a"]), "filter.value: must be a string"),
    "in not a list": (cond("tags", "in", "a"), "filter.value: must be a list of 1 to 100 values"),
    "in empty": (cond("tags", "in", []), "filter.value: must be a list of 1 to 100 values"),
    "in of 101": (
        cond("locale", "in", ["es"] * 101),
        "filter.value: must be a list of 1 to 100 values",
    ),
    "in item": (cond("tags", "in", ["a", 3]), "filter.value[1]: must be a string"),
    "status unknown": (
        cond("conversation_status", "contains", "closed"),
        "filter.value: must be one of open, pending, resolved",
    ),
    "status in unknown": (
        cond("conversation_status", "in", ["open", "Open"]),
        "filter.value[1]: must be one of open, pending, resolved",
    ),
    "time words": (cond("created_at", "lt", "yesterday"), f"filter.value: {TIME}"),
    "time unit": (cond("created_at", "lt", "-30w"), f"filter.value: {TIME}"),
    "time ahead": (cond("created_at", "lt", "30d"), f"filter.value: {TIME}"),
    "time too far": (cond("created_at", "lt", "-100000d"), f"filter.value: {TIME}"),
    "time number": (cond("last_activity_at", "gt", 1700000000), f"filter.value: {TIME}"),
    "time bad date": (cond("updated_at", "gt", "2026-02-30T00:00:00Z"), f"filter.value: {TIME}"),
    "attribute null": (cond("attributes.a", "eq", None), f"filter.value: {ATTRIBUTE_VALUE}"),
    "attribute list": (cond("attributes.a", "ne", [1]), f"filter.value: {ATTRIBUTE_VALUE}"),
    "attribute object": (
        cond("attributes.a", "contains", {}),
        f"filter.value: {ATTRIBUTE_VALUE}",
    ),
    "attribute infinite": (
        cond("attributes.a", "eq", float("inf")),
        f"filter.value: {ATTRIBUTE_VALUE}",
    ),
    "attribute nan": (cond("attributes.a", "eq", float("nan")), f"filter.value: {ATTRIBUTE_VALUE}"),
    "attribute in item": (
        cond("attributes.a", "in", [1, None]),
        f"filter.value[1]: {ATTRIBUTE_VALUE}",
    ),
    "attribute bound text": (cond("attributes.a", "lt", "abc"), f"filter.value: {ATTRIBUTE_BOUND}"),
    "attribute bound timestamp": (
        cond("attributes.a", "lt", "2026-01-01T00:00:00Z"),
        f"filter.value: {ATTRIBUTE_BOUND}",
    ),
    "attribute bound true": (cond("attributes.a", "gte", True), f"filter.value: {ATTRIBUTE_BOUND}"),
    "path of a nested fault": (
        {"and": [ACME, {"or": [VIP, {"not": {"field": "company", "op": "bad"}}]}]},
        f"filter.and[1].or[1].not.op: must be one of {OPS}",
    ),
    "path in a list": (
        {"or": [ACME, ACME, cond("tags", "in", ["a", "b", None])]},
        "filter.or[2].value[2]: must be a string",
    ),
    "too deep": (nested_nots(8), "filter" + ".not" * 8 + ": a filter nests at most 8 levels"),
    "too many nodes": (many_nodes(49), "filter.or[3].and[48]: a filter has at most 200 nodes"),
}


@pytest.mark.parametrize(("filter_json", "message"), ERROR_CASES.values(), ids=list(ERROR_CASES))
def test_an_invalid_filter_names_the_path_of_its_fault(filter_json, message):
    """Each invalid filter is InvalidInput whose message starts with the JSON path of the
    first fault (also the error's ``field``) and says what is expected there."""
    with pytest.raises(InvalidInput) as refused:
        parse_filter(filter_json)
    assert refused.value.message == message
    assert refused.value.details == {"field": message.split(":")[0]}


def test_the_path_starts_where_the_caller_says():
    """``path`` names the filter within a request's body."""
    with pytest.raises(InvalidInput) as refused:
        parse_filter({"and": [{"field": "nope"}]}, path="segment.filter")
    assert refused.value.message.startswith("segment.filter.and[0].field: must be one of")


def test_a_huge_filter_is_refused_without_reading_all_of_it():
    """A filter of 50 branches 8 levels deep (50**7 conditions, the same lists repeated)
    is refused at its 201st node, without walking the rest."""
    node: dict[str, Any] = ACME
    for _ in range(7):
        node = {"or": [node] * 50}
    with pytest.raises(InvalidInput, match="at most 200 nodes"):
        parse_filter(node)

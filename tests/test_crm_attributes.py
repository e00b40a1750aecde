"""Custom attributes: values checked against their definitions, the rule for undeclared
keys and stale values, values read from text (imports), and the definitions as an admin
declares, changes and drops them (on SQLite: the store's own contract is
tests/test_crm_store.py's)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from omnichannel_core.errors import Conflict, InvalidInput, NotFound
from omnichannel_core.modules.crm import attributes
from omnichannel_core.modules.crm.attributes import (
    Attributes,
    check_attributes,
    check_value,
    checked_definition,
    fits,
    patch_attributes,
    same_value,
    value_from_text,
)
from omnichannel_core.modules.crm.records import AttributeDefinition, AttributeType
from omnichannel_core.modules.crm.store import CrmStore, crm_store_spec
from omnichannel_core.testing.stores import run_store

TEXT = checked_definition("nickname", "text", "Nickname")
NUMBER = checked_definition("score", "number", "Score")
DATE = checked_definition("renewal", "date", "Renewal")
BOOLEAN = checked_definition("vip", "boolean", "VIP")
CHOICE = checked_definition("plan", "choice", "Plan", ["free", "pro"])
DEFINITIONS = {d.key: d for d in (TEXT, NUMBER, DATE, BOOLEAN, CHOICE)}


def refusal(definition: AttributeDefinition, value: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as raised:
        check_value(definition, value)
    return raised.value


@pytest.mark.parametrize(
    ("definition", "good", "bad"),
    [
        (TEXT, ["", "Ana", "x" * 1000], [None, 3, ["a"], "x" * 1001]),
        (NUMBER, [0, -3, 2.5, 10**20], [True, False, "3", math.nan, math.inf, -math.inf, None]),
        (DATE, ["2025-05-01", "2024-02-29"], ["2025-5-1", "2025-02-30", "20250501", 20250501]),
        (BOOLEAN, [True, False], [0, 1, "true", None]),
        (CHOICE, ["free", "pro"], ["Pro", "team", 1, None]),
    ],
)
def test_each_type_takes_its_values_and_refuses_others(
    definition: AttributeDefinition, good: list[Any], bad: list[Any]
) -> None:
    """text: a string up to 1,000 characters; number: finite int or float, never a bool;
    date: a real YYYY-MM-DD; boolean: true or false; choice: one of its choices, exactly.
    A refusal is InvalidInput naming ``attributes.<key>``."""
    for value in good:
        check_value(definition, value)
        assert fits(definition, value)
    for value in bad:
        error = refusal(definition, value)
        assert error.details["field"] == f"attributes.{definition.key}"
        assert error.message.startswith(f"attributes.{definition.key} must ")
        assert not fits(definition, value)


def test_a_choice_refusal_lists_the_choices() -> None:
    assert refusal(CHOICE, "team").message == "attributes.plan must be one of 'free', 'pro'"


def test_declared_keys_must_fit_and_undeclared_ones_stay_as_they_are() -> None:
    """Declared keys take fitting values; an undeclared key already stored is kept when sent
    back unchanged, removed when left out or null, and refused when changed; a new
    undeclared key is refused, naming where an admin declares it."""
    stored = {"legacy": {"a": [1, 2]}, "source": "webchat", "score": 3}
    new = {"legacy": {"a": [1, 2]}, "score": 4.5, "plan": "pro", "vip": None}
    assert check_attributes(new, stored, DEFINITIONS) == {
        "legacy": {"a": [1, 2]},
        "score": 4.5,
        "plan": "pro",
    }
    assert check_attributes({}, stored, DEFINITIONS) == {}
    assert check_attributes({"source": None}, stored, DEFINITIONS) == {}

    for changed in ({"source": "email"}, {"legacy": {"a": [1]}}, {"color": "red"}):
        (key,) = changed
        with pytest.raises(InvalidInput) as raised:
            check_attributes(changed, stored, DEFINITIONS)
        assert raised.value.message == (
            f"attributes.{key} is not declared; an admin declares it at /api/crm/attributes"
        )
        assert raised.value.details == {"field": f"attributes.{key}"}

    with pytest.raises(InvalidInput) as raised:
        check_attributes({"score": "high"}, stored, DEFINITIONS)
    assert raised.value.details == {"field": "attributes.score"}


def test_a_stored_value_that_no_longer_fits_is_kept_while_unchanged() -> None:
    """A value stored before its definition (or before a choice was dropped) is kept when
    sent back unchanged, so it blocks no other change; changed, it must fit."""
    stored = {"plan": "legacy-gold", "score": "n/a"}
    assert check_attributes({**stored, "vip": True}, stored, DEFINITIONS) == {
        **stored,
        "vip": True,
    }
    with pytest.raises(InvalidInput) as raised:
        check_attributes({**stored, "plan": "legacy-silver"}, stored, DEFINITIONS)
    assert raised.value.details == {"field": "attributes.plan"}


def test_unchanged_means_the_same_json_value() -> None:
    """``true`` is not ``1``; ``1`` is ``1.0``; objects compare whatever the order of
    their keys; lists in order."""
    assert same_value({"a": 1, "b": [1, "x"]}, {"b": [1.0, "x"], "a": 1})
    assert not same_value(True, 1)
    assert not same_value(1, True)
    assert not same_value([1, 2], [2, 1])
    assert not same_value("1", 1)
    assert not same_value(None, "")
    assert same_value(None, None)
    stored = {"flag": 1}
    with pytest.raises(InvalidInput):
        check_attributes({"flag": True}, stored, DEFINITIONS)


def test_a_patch_changes_only_the_keys_it_names() -> None:
    """A merge patch: named keys change (checked), null removes one, the rest stay as
    stored, undeclared ones included."""
    stored = {"source": "webchat", "score": 3, "plan": "free"}
    assert patch_attributes({"score": 4, "plan": None}, stored, DEFINITIONS) == {
        "source": "webchat",
        "score": 4,
    }
    with pytest.raises(InvalidInput):
        patch_attributes({"source": "sms"}, stored, DEFINITIONS)
    with pytest.raises(InvalidInput):
        patch_attributes({"score": True}, stored, DEFINITIONS)


@pytest.mark.parametrize(
    ("definition", "text", "value"),
    [
        (TEXT, "  Ana  ", "Ana"),
        (NUMBER, "42", 42),
        (NUMBER, " 4.5 ", 4.5),
        (DATE, "2025-05-01", "2025-05-01"),
        (BOOLEAN, "Yes", True),
        (BOOLEAN, "0", False),
        (BOOLEAN, "FALSE", False),
        (CHOICE, "PRO", "pro"),
        (CHOICE, "   ", None),
        (NUMBER, "", None),
    ],
)
def test_values_are_read_from_text(definition: AttributeDefinition, text: str, value: Any) -> None:
    """A CSV cell gives a declared attribute its value: trimmed, numbers parsed, booleans
    from true/false, yes/no, 1/0, a choice in any case; blank is no value."""
    read = value_from_text(definition, text)
    assert read == value
    assert type(read) is type(value)


@pytest.mark.parametrize(
    ("definition", "text"),
    [
        (NUMBER, "nan"),
        (NUMBER, "1e999"),
        (NUMBER, "12 apples"),
        (BOOLEAN, "maybe"),
        (DATE, "01/05/2025"),
        (CHOICE, "team"),
    ],
)
def test_text_that_is_no_value_is_refused(definition: AttributeDefinition, text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        value_from_text(definition, text)
    assert raised.value.details == {"field": f"attributes.{definition.key}"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"key": "Plan"}, "key"),
        ({"key": "1plan"}, "key"),
        ({"key": "a" * 65}, "key"),
        ({"key": "a.b"}, "key"),
        ({"type": "money"}, "type"),
        ({"label": " "}, "label"),
        ({"label": "x" * 201}, "label"),
        ({"type": "text", "choices": ["a"]}, "choices"),
        ({"choices": []}, "choices"),
        ({"choices": ["a", "a"]}, "choices"),
        ({"choices": ["a", ""]}, "choices"),
        ({"choices": [str(n) for n in range(101)]}, "choices"),
        ({"choices": ["x" * 201]}, "choices"),
    ],
)
def test_a_definition_with_a_bad_field_is_refused(fields: dict[str, Any], field: str) -> None:
    """Keys are lower case snake, up to 64 characters; the type one of the five; a label
    non-blank up to 200; choices only for a choice attribute, 1 to 100 different non-blank
    strings up to 200 characters. The refusal names the field."""
    given = {"key": "plan", "type": "choice", "label": "Plan", "choices": ["free"], **fields}
    with pytest.raises(InvalidInput) as raised:
        checked_definition(**given)
    assert raised.value.details == {"field": field}


def test_an_admin_declares_changes_and_drops_definitions(sqlite_database, monkeypatch):
    """Declared definitions are read back by key; a key declared twice is Conflict; a
    change takes label and choices, and the type only as it is (another is refused: drop
    and declare again); a dropped key may be declared again with another type; past the
    most definitions a server keeps, a new one is refused."""
    monkeypatch.setattr(attributes, "MAX_DEFINITIONS", 3)

    async def scenario(store: CrmStore) -> None:
        book = Attributes(store)
        plan = await book.declare("plan", AttributeType.CHOICE, "Plan", ["free", "pro"])
        await book.declare("score", "number", "Score")
        assert set(await book.definitions()) == {"plan", "score"}
        with pytest.raises(Conflict):
            await book.declare("plan", "text", "Plan")

        changed = await book.change("plan", label="Tier", choices=["pro", "team"], type="choice")
        assert (changed.label, changed.choices, changed.type) == (
            "Tier",
            ("pro", "team"),
            plan.type,
        )
        assert changed.updated_at > plan.updated_at
        with pytest.raises(InvalidInput) as raised:
            await book.change("plan", type="text")
        assert raised.value.details == {"field": "type"}
        with pytest.raises(InvalidInput):
            await book.change("score", choices=["a"])
        with pytest.raises(NotFound):
            await book.change("nothing", label="X")

        assert await book.check({"plan": "team"}, {}) == {"plan": "team"}
        assert await book.patch({"score": 2}, {"plan": "free"}) == {"plan": "free", "score": 2}

        await book.drop("plan")
        with pytest.raises(NotFound):
            await book.drop("plan")
        with pytest.raises(InvalidInput):
            await book.check({"plan": "team"}, {})  # undeclared now
        assert await book.check({"plan": "team"}, {"plan": "team"}) == {"plan": "team"}
        redeclared = await book.declare("plan", "text", "Plan")
        assert redeclared.type is AttributeType.TEXT

        await book.declare("third", "boolean", "Third")
        with pytest.raises(InvalidInput):
            await book.declare("fourth", "boolean", "Fourth")

    run_store(crm_store_spec(), sqlite_database, scenario)

"""A campaign's message made for one contact: ``{{variables}}`` filled from their profile
and custom attributes (docs/campaigns.md, "Variables").

``{{first_name}}`` is required: a contact without one is skipped (``missing_variable``)
unless the campaign's ``defaults`` give one; ``{{first_name|there}}`` gives its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from omnichannel_core.module import Contact, InvalidInput

VARIABLE = re.compile(r"\{\{([^{}]*)\}\}")
"""A ``{{...}}``: linear to match (its name and default are split apart in Python)."""
ATTRIBUTE_PREFIX = "attributes."
PROFILE = ("name", "first_name", "company", "email", "phone", "locale", "timezone")
"""The variables of a contact's profile; ``attributes.<key>`` names a custom attribute."""
MAX_VALUE = 1000


@attrs.frozen
class MissingVariable(Exception):
    """A required variable the contact has no value for."""

    name: str


def parts(inside: str) -> tuple[str, str | None]:
    """A ``{{...}}``'s name and inline default (None: required), each stripped."""
    name, bar, default = inside.partition("|")
    return name.strip(), default.strip() if bar else None


def variables_in(text: str) -> Iterator[tuple[str, str | None]]:
    """Each ``{{variable}}`` of ``text``: its name and inline default (None: required)."""
    for match in VARIABLE.finditer(text):
        yield parts(match.group(1))


def check_template(text: str, field: str) -> None:
    """InvalidInput (naming ``field``) for an unknown variable, or braces that are not one."""
    for name, _ in variables_in(text):
        if name not in PROFILE and not (
            name.startswith(ATTRIBUTE_PREFIX) and len(name) > len(ATTRIBUTE_PREFIX)
        ):
            raise InvalidInput(
                f"{field}: unknown variable {{{{{name}}}}}: use one of "
                + ", ".join(PROFILE)
                + ", or attributes.<key>",
                field=field,
            )
    if "{{" in VARIABLE.sub("", text) or "}}" in VARIABLE.sub("", text):
        raise InvalidInput(f"{field}: a '{{{{' without its variable and '}}}}'", field=field)


def value_of(contact: Contact, name: str) -> str | None:
    """The contact's value of a variable, as text; None when they have none."""
    value: Any
    if name.startswith(ATTRIBUTE_PREFIX):
        value = contact.attributes.get(name.removeprefix(ATTRIBUTE_PREFIX))
    elif name == "name":
        value = contact.display_name
    elif name == "first_name":
        words = (contact.display_name or "").split()
        value = words[0] if words else None
    elif name == "email":
        value = contact.emails[0] if contact.emails else None
    elif name == "phone":
        value = contact.phones[0] if contact.phones else None
    else:
        value = getattr(contact, name, None)
    if value is None or isinstance(value, dict | list) or not str(value).strip():
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)[:MAX_VALUE]


def render(text: str, contact: Contact, defaults: Mapping[str, str]) -> str:
    """``text`` with each variable replaced by the contact's value, else its inline default,
    else the campaign's default; MissingVariable when none is."""

    def fill(match: re.Match[str]) -> str:
        name, inline = parts(match.group(1))
        value = value_of(contact, name)
        if value is not None:
            return value
        if inline is not None:
            return inline
        if name in defaults:
            return defaults[name]
        raise MissingVariable(name)

    return VARIABLE.sub(fill, text)

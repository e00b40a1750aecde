"""What an import's mapping says, and a CSV row read by it: checked, normalised cells
(`omnichannel_core.modules.crm.profile`: the rules of the API's bodies) for the contact
the row makes or fills.

A mapping names, for each CSV column it takes, one field:

- ``display_name``, ``company``, ``locale`` (a BCP 47 tag), ``timezone`` (IANA): one
  column each;
- ``email``, ``phone``, ``tags``: any number of columns, each cell holding one value or
  several separated by ``;``. ``email`` is a profile email (``Contact.emails``), not an
  identity: the email channel reaches a contact only at an ``identity.email`` address; map
  the column there instead, or besides through a copy of the column. Emails are lowercased
  and checked, phones made E.164 (``+`` and the country code: a number without it is
  refused);
- ``attributes.<key>``: a custom attribute, one column each (the CRM's attribute
  definitions check the value when it has them);
- ``identity.<channel>``: an address the contact is reached at on that channel (any number
  of columns).

Columns not named are ignored; an empty cell leaves its field as it is. A cell that starts
with ``'`` followed by ``=``, ``+``, ``-``, ``@``, a tab or a carriage return loses the
``'``: how an export protects cells from spreadsheet formulas, undone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs

from omnichannel_core.module import Identity, InvalidInput
from omnichannel_core.modules.crm.profile import (
    normal_email,
    normal_locale,
    normal_phone,
    normal_timezone,
    unique,
)
from omnichannel_core.modules.crm.transfer.records import Dedupe, RowError

SCALARS = ("display_name", "company", "locale", "timezone")
LISTS = ("email", "phone", "tags")
FIELDS = (*SCALARS, *LISTS, "attributes.<key>", "identity.<channel>")
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
CHANNEL = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
MAX_COLUMNS = 200
MAX_NAME = 200
MAX_TAG = 100
MAX_TAGS = 100
MAX_VALUES = 20
"""Emails or phones a row may give."""
MAX_ADDRESS = 320
MAX_TEXT = 1_000
"""An attribute's text, when no definition says otherwise."""
SEPARATOR = ";"
ESCAPED = re.compile(r"^'(?=[=+\-@\t\r])")


class AttributeReader(Protocol):
    """How an import reads custom attributes from text (the CRM's attribute definitions).

    :meth:`knows` is asked when an import is started, for each ``attributes.<key>`` its
    mapping names (an unknown key is refused then); :meth:`read` for each cell: the value
    to store, or InvalidInput whose message is the row's error.
    """

    def knows(self, key: str) -> bool: ...

    def read(self, key: str, text: str) -> Any: ...


class TextAttributes:
    """Every key, each value the text as it is (at most :data:`MAX_TEXT` characters): what
    an import does without the CRM's definitions."""

    def knows(self, key: str) -> bool:
        return True

    def read(self, key: str, text: str) -> Any:
        if len(text) > MAX_TEXT:
            raise InvalidInput(f"longer than {MAX_TEXT} characters")
        return text


@attrs.frozen
class Column:
    """A CSV column an import takes: where it is in a row, and the field it fills."""

    index: int
    name: str
    field: str

    @property
    def kind(self) -> str:
        """The field without its key (``attributes``, ``identity``) or the field."""
        return self.field.split(".", 1)[0]

    @property
    def key(self) -> str:
        return self.field.split(".", 1)[1]


def plan_columns(
    mapping: Mapping[str, str],
    header: tuple[str, ...],
    attributes: AttributeReader,
    channel_known: Callable[[str], bool] | None = None,
) -> tuple[Column, ...]:
    """The columns ``mapping`` takes from a file with ``header``: InvalidInput (naming
    ``mapping.<column>``) for a column the header does not have (or has twice), a field that
    does not exist, a one-column field named twice, an attribute ``attributes`` does not
    know or a channel ``channel_known`` does not."""
    if not mapping:
        raise InvalidInput("mapping: name at least one column", field="mapping")
    if len(mapping) > MAX_COLUMNS:
        raise InvalidInput(f"mapping: at most {MAX_COLUMNS} columns", field="mapping")
    columns: list[Column] = []
    taken: dict[str, str] = {}
    for name, target in mapping.items():
        where = f"mapping.{name}"
        found = [index for index, column in enumerate(header) if column == name.strip()]
        if not found:
            shown = ", ".join(repr(column) for column in header[:30])
            raise InvalidInput(
                f"{where}: the file has no column {name!r} (its columns: {shown})", field=where
            )
        if len(found) > 1:
            raise InvalidInput(f"{where}: the file has two columns named {name!r}", field=where)
        field = _checked_field(where, target, attributes, channel_known)
        if field in SCALARS or field.startswith("attributes."):
            if field in taken:
                raise InvalidInput(
                    f"{where}: {field} is mapped from {taken[field]!r} already: one column each",
                    field=where,
                )
            taken[field] = name
        columns.append(Column(found[0], name, field))
    return tuple(columns)


def _checked_field(
    where: str,
    target: str,
    attributes: AttributeReader,
    channel_known: Callable[[str], bool] | None,
) -> str:
    if not isinstance(target, str):
        raise InvalidInput(f"{where}: must name a field, as a string", field=where)
    if target in SCALARS or target in LISTS:
        return target
    kind, dot, key = target.partition(".")
    if dot and kind == "attributes":
        if not ATTRIBUTE_KEY.match(key) or not attributes.knows(key):
            raise InvalidInput(
                f"{where}: no custom attribute {key!r} is declared (GET /api/crm/attributes)",
                field=where,
            )
        return target
    if dot and kind == "identity":
        if not CHANNEL.match(key) or (channel_known is not None and not channel_known(key)):
            raise InvalidInput(f"{where}: no channel {key!r} is loaded", field=where)
        return target
    raise InvalidInput(
        f"{where}: {target!r} is not a field; the fields: {', '.join(FIELDS)}", field=where
    )


def check_dedupe(dedupe: Dedupe, columns: tuple[Column, ...]) -> None:
    """InvalidInput when rows could never match by ``dedupe``: no column gives what it
    matches by."""
    fields = {column.field for column in columns}
    needs = {
        Dedupe.EMAIL: {"email"},
        Dedupe.PHONE: {"phone"},
        Dedupe.EMAIL_OR_PHONE: {"email", "phone"},
    }.get(dedupe)
    if needs and not needs & fields:
        wanted = " or ".join(sorted(needs))
        raise InvalidInput(
            f"dedupe: {dedupe} needs a column mapped to {wanted}; or dedupe none",
            field="dedupe",
        )


@attrs.frozen
class RowContact:
    """What a row says of its contact: ``profile`` holds only the fields it gives
    (``ContactBook.create_contact``'s keyword arguments)."""

    profile: dict[str, Any]
    identities: tuple[Identity, ...]

    @property
    def emails(self) -> tuple[str, ...]:
        return tuple(self.profile.get("emails", ()))

    @property
    def phones(self) -> tuple[str, ...]:
        return tuple(self.profile.get("phones", ()))

    @property
    def empty(self) -> bool:
        return not self.profile and not self.identities


def cell_text(raw: str) -> str:
    """A cell's text, trimmed, without the quote an export puts before a formula-like cell."""
    return ESCAPED.sub("", raw.strip(), count=1)


def _parts(text: str) -> list[str]:
    return [part.strip() for part in text.split(SEPARATOR) if part.strip()]


def read_row(
    cells: list[str], columns: tuple[Column, ...], number: int, attributes: AttributeReader
) -> tuple[RowContact | None, list[RowError]]:
    """The row's contact, or None and why not (each cell at fault). Cells of columns the
    mapping does not name are ignored, as are cells past the header's end; a missing cell is
    an empty one."""
    errors: list[RowError] = []
    scalars: dict[str, str] = {}
    lists: dict[str, list[str]] = {"email": [], "phone": [], "tags": []}
    values: dict[str, Any] = {}
    identities: list[Identity] = []
    for column in columns:
        text = cell_text(cells[column.index]) if column.index < len(cells) else ""
        if not text:
            continue
        try:
            if column.field in SCALARS:
                scalars[column.field] = _scalar(column.field, text)
            elif column.field in LISTS:
                lists[column.field].extend(_list(column.field, text))
            elif column.kind == "attributes":
                values[column.key] = attributes.read(column.key, text)
            else:
                identities.extend(_identity(column.key, part) for part in _parts(text))
        except InvalidInput as error:
            errors.append(RowError(number, column.name, _message(error, column.field)))
    profile: dict[str, Any] = dict(scalars)
    for field, name, most in (("email", "emails", MAX_VALUES), ("phone", "phones", MAX_VALUES)):
        if lists[field]:
            profile[name] = unique(lists[field])
            if len(profile[name]) > most:
                errors.append(RowError(number, None, f"more than {most} {name}"))
    if lists["tags"]:
        profile["tags"] = unique(lists["tags"])
        if len(profile["tags"]) > MAX_TAGS:
            errors.append(RowError(number, None, f"more than {MAX_TAGS} tags"))
    if values:
        profile["attributes"] = values
    if errors:
        return None, errors
    return RowContact(profile, tuple(dict.fromkeys(identities))), []


def _message(error: InvalidInput, field: str) -> str:
    """The error's message, without the field name the profile checks start with."""
    message = error.message
    for prefix in (f"{field}: ", "emails: ", "phones: ", "locale: ", "timezone: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _scalar(field: str, text: str) -> str:
    if field == "locale":
        return normal_locale(text.replace("_", "-"))
    if field == "timezone":
        return normal_timezone(text)
    if len(text) > MAX_NAME:
        raise InvalidInput(f"longer than {MAX_NAME} characters")
    return text


def _list(field: str, text: str) -> list[str]:
    parts = _parts(text)
    if field == "email":
        return [normal_email(part) for part in parts]
    if field == "phone":
        return [normal_phone(part) for part in parts]
    for tag in parts:
        if len(tag) > MAX_TAG:
            raise InvalidInput(f"the tag {tag[:40]!r}... is longer than {MAX_TAG} characters")
    return parts


def _identity(channel: str, address: str) -> Identity:
    if channel == "email":
        return Identity(channel, normal_email(address))
    if len(address) > MAX_ADDRESS:
        raise InvalidInput(f"an address longer than {MAX_ADDRESS} characters")
    return Identity(channel, address)

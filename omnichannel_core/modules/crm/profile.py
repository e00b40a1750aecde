"""A contact's profile values, checked and written one way wherever they come from (the
API's bodies, a CSV import): an email lowercased, a phone as E.164, a language tag, an IANA
time zone. Each raises InvalidInput naming ``field`` when the value cannot be one."""

from __future__ import annotations

import functools
import re
import zoneinfo

from omnichannel_core.module import Contact, InvalidInput

MAX_EMAIL = 254
EMAIL = re.compile(
    r"^[^@\s\"<>(),;:\\\[\]]{1,64}@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$"
)
"""A mailbox as people write it: a local part without spaces or the characters RFC 5322
quotes, ``@``, and a domain of at least two labels (after lowercasing)."""

PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
"""E.164: ``+``, a country code and at most 15 digits in all."""
PHONE_PUNCTUATION = re.compile(r"[\s().\-/]")

LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-(?:[A-Za-z]{2}|[0-9]{3}))?$")
"""BCP 47 language, optional script and region: ``es``, ``pt-BR``, ``zh-Hant-TW``,
``es-419``."""


def normal_email(value: str, field: str = "emails") -> str:
    """The email address, trimmed and lowercased."""
    email = value.strip().lower()
    if len(email) > MAX_EMAIL or not EMAIL.match(email):
        raise InvalidInput(f"{field}: {value[:80]!r} is not an email address", field=field)
    return email


def normal_phone(value: str, field: str = "phones") -> str:
    """The phone number as E.164; spaces, dots, dashes, slashes and parentheses dropped, a
    leading ``00`` read as ``+``. A number without its country code is refused: the server
    cannot know which country it is in."""
    phone = PHONE_PUNCTUATION.sub("", value.strip())
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    if not PHONE.match(phone):
        raise InvalidInput(
            f"{field}: {value[:40]!r} is not a phone number in international form"
            " (+ and the country code, e.g. +34600111222)",
            field=field,
        )
    return phone


def normal_locale(value: str, field: str = "locale") -> str:
    """The language tag with its usual case: ``pt-BR``, ``zh-Hant-TW``."""
    if not LANGUAGE_TAG.match(value):
        raise InvalidInput(
            f"{field}: {value[:40]!r} is not a language tag (e.g. es, pt-BR)", field=field
        )
    parts = value.split("-")
    tidy = [parts[0].lower()]
    for part in parts[1:]:
        tidy.append(part.title() if len(part) == 4 else part.upper())
    return "-".join(tidy)


def normal_timezone(value: str, field: str = "timezone") -> str:
    """An IANA time zone this server knows (``Europe/Madrid``), as spelled there."""
    if value not in _timezones():
        raise InvalidInput(
            f"{field}: {value[:60]!r} is not an IANA time zone (e.g. Europe/Madrid)", field=field
        )
    return value


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def unique(values: list[str]) -> tuple[str, ...]:
    """``values`` without repeats, in their first order."""
    return tuple(dict.fromkeys(values))


PHONE_ADDRESS = re.compile(r"^(?:[a-z]+:)?(\+[1-9][0-9]{6,14})$")
"""A channel address that is a phone number, perhaps after a prefix (``whatsapp:+34...``)."""


def emails_of(contact: Contact) -> list[str]:
    """Every email address the contact is known by: the profile's and the ``email``
    channel's identities'."""
    found = [*contact.emails]
    found += [i.address.lower() for i in contact.identities if i.channel == "email"]
    return list(unique(found))


def phones_of(contact: Contact) -> list[str]:
    """Every phone number the contact is known by: the profile's and any identity whose
    address is one."""
    found = [*contact.phones]
    for identity in contact.identities:
        match = PHONE_ADDRESS.match(identity.address)
        if match:
            found.append(match.group(1))
    return list(unique(found))

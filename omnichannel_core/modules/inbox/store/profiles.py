"""A contact's profile as the CRM works it, defined once for every backend: the fields
``update_contact`` changes, the values a contact is found by (``find_contacts``), and the
rule a merge follows.

A contact's *reach* is what :meth:`InboxStore.find_contacts` matches: its profile's
``emails`` (lowercase) and ``phones`` (E.164), and the address of each identity that is one
of those: an ``email`` channel's address (lowercased), or a phone-like address on any
channel (``+`` and up to 15 digits, perhaps after a ``scheme:`` such as ``whatsapp:``, taken
without it). Each backend stores :func:`reach` with the contact and looks up
:func:`wanted_reach`; no backend computes them any other way.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs

from omnichannel_core.module import (
    Contact,
    Identity,
    InvalidInput,
    decode_cursor,
    encode_cursor,
    new_id,
)

PROFILE_FIELDS = (
    "display_name",
    "tags",
    "attributes",
    "emails",
    "phones",
    "company",
    "locale",
    "timezone",
    "avatar",
)
"""What ``update_contact`` (and ``create_contact``'s profile) may set, in this order."""

SCALAR_FIELDS = ("display_name", "company", "locale", "timezone", "avatar")
"""The fields a merge keeps the survivor's value of when it has one."""

_CONTACT_ID = re.compile(r"ct_[A-Za-z0-9_-]{1,64}")
_PHONE_ADDRESS = re.compile(r"(?:[a-z][a-z0-9+.\-]*:)?(\+[0-9]{1,15})")
EMAIL_CHANNEL = "email"


def profile_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """``changes`` as a contact's fields hold them (tuples for lists, a dict for
    attributes); InvalidInput naming a field that is not a profile field."""
    unknown = sorted(set(changes) - set(PROFILE_FIELDS))
    if unknown:
        raise InvalidInput(f"not a contact field: {', '.join(unknown)}", fields=unknown)
    normal: dict[str, Any] = {}
    for name, value in changes.items():
        if name in ("tags", "emails", "phones"):
            value = tuple(value)
        elif name == "attributes":
            value = dict(value)
        normal[name] = value
    return normal


def new_contact(
    identities: Iterable[Identity], profile: Mapping[str, Any], now: datetime
) -> Contact:
    """A contact not stored yet, with a new id, ``identities`` and ``profile`` (checked by
    :func:`profile_changes`)."""
    contact = Contact(
        id=new_id("ct"),
        display_name=None,
        identities=sorted_identities(identities),
        created_at=now,
        updated_at=now,
    )
    return attrs.evolve(contact, **profile)


def changed_fields(before: Contact, after: Contact) -> list[str]:
    """The profile fields that differ between ``before`` and ``after``."""
    return [name for name in PROFILE_FIELDS if getattr(before, name) != getattr(after, name)]


def sorted_identities(identities: Iterable[Identity]) -> tuple[Identity, ...]:
    """Identities each once, by (channel, address): how every backend lists them."""
    unique = {(identity.channel, identity.address): identity for identity in identities}
    return tuple(unique[key] for key in sorted(unique))


def identity_reach(identity: Identity) -> str | None:
    """The email or phone an identity's address is, if it is one (see the module)."""
    if identity.channel == EMAIL_CHANNEL:
        return identity.address.strip().lower() or None
    phone = _PHONE_ADDRESS.fullmatch(identity.address.strip())
    return phone.group(1) if phone else None


def reach(contact: Contact) -> list[str]:
    """The values ``find_contacts`` finds ``contact`` by, each once."""
    values = [email.lower() for email in contact.emails]
    values += contact.phones
    values += [value for value in map(identity_reach, contact.identities) if value]
    return list(dict.fromkeys(value for value in values if value))


def wanted_reach(emails: Collection[str], phones: Collection[str]) -> list[str]:
    """The values a ``find_contacts(emails, phones)`` looks up, each once."""
    values = [email.strip().lower() for email in emails] + [phone.strip() for phone in phones]
    return list(dict.fromkeys(value for value in values if value))


def search_addresses(contact: Contact) -> list[str]:
    """What a contact's search words are made of besides its name: its identities'
    addresses, then its profile's emails and phones (`store.search`)."""
    return [
        *(identity.address for identity in contact.identities),
        *contact.emails,
        *contact.phones,
    ]


def _union(first: Iterable[str], second: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *second]))


def merged_profile(survivor: Contact, merged: Contact, now: datetime) -> Contact:
    """The survivor once ``merged`` is merged into it (docs/crm.md, "Merging"): its scalar
    fields win when set, else the merged one's; emails, phones, tags, opted-out channels and
    identities are the union (the survivor's first); attributes, per key the survivor's
    value, the merged one's other keys added; the earlier ``created_at``."""
    scalars = {
        name: getattr(survivor, name)
        if getattr(survivor, name) not in (None, "")
        else getattr(merged, name)
        for name in SCALAR_FIELDS
    }
    attributes = dict(survivor.attributes)
    for key, value in merged.attributes.items():
        attributes.setdefault(key, value)
    return attrs.evolve(
        survivor,
        **scalars,
        emails=_union(survivor.emails, merged.emails),
        phones=_union(survivor.phones, merged.phones),
        tags=_union(survivor.tags, merged.tags),
        opted_out=_union(survivor.opted_out, merged.opted_out),
        identities=sorted_identities([*survivor.identities, *merged.identities]),
        attributes=attributes,
        created_at=min(survivor.created_at, merged.created_at),
        updated_at=now,
    )


def scan_cursor(contact_id: str) -> str:
    """The cursor of a scan's page that ends at ``contact_id`` (scans go by id)."""
    return encode_cursor(contact_id)


def scan_position(cursor: str | None) -> str | None:
    """The contact id a scan's cursor holds (None: from the start); InvalidInput for one no
    scan made."""
    if cursor is None:
        return None
    [contact_id] = decode_cursor(cursor, 1)
    if not _CONTACT_ID.fullmatch(contact_id):
        raise InvalidInput("cursor is not valid", parameter="cursor")
    return contact_id

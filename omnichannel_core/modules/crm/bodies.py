"""The bodies of the contacts API and the CRM's: what their routes take. Profile values are
checked and normalised here (`omnichannel_core.modules.crm.profile`), so a contact's
emails are lowercase and its phones E.164 whichever way they came in."""

from __future__ import annotations

from typing import Any

import attrs

from omnichannel_core.module import UNSET, Identity, PageQuery, field
from omnichannel_core.modules.crm.profile import (
    normal_email,
    normal_locale,
    normal_phone,
    normal_timezone,
    unique,
)

MAX_NAME = 200
MAX_TAGS = 100
MAX_TAG = 100
MAX_EMAILS = 20
MAX_PHONES = 20
MAX_ADDRESS = 320
MAX_CHANNEL = 64
MAX_ATTRIBUTES = 200
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
"""A one-line text: no control characters."""
NOT_BLANK = r"\S"

TAGS = {"minLength": 1, "maxLength": MAX_TAG}


@attrs.frozen
class ContactsQuery(PageQuery):
    q: str | None = field(
        default=None, max_length=MAX_NAME, description="search display names and addresses"
    )


@attrs.frozen
class IdentityBody:
    """An address the contact is reached at on a channel."""

    channel: str = field(
        min_length=1,
        max_length=MAX_CHANNEL,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="the channel's name (sms, whatsapp, messenger, email, webchat...)",
    )
    address: str = field(
        min_length=1,
        max_length=MAX_ADDRESS,
        pattern=r"^\S(.*\S)?$",
        description="the address on that channel, as the channel writes it",
    )

    def identity(self) -> Identity:
        """The identity, an email channel's address checked and lowercased."""
        if self.channel == "email":
            return Identity(self.channel, normal_email(self.address, "address"))
        return Identity(self.channel, self.address)


@attrs.frozen
class ProfileFields:
    """The fields a contact's profile has; each left out is left as it is."""

    display_name: str | None = field(default=UNSET, max_length=MAX_NAME, pattern=PRINTABLE)
    emails: tuple[str, ...] = field(
        default=UNSET, max_items=MAX_EMAILS, items={"maxLength": MAX_ADDRESS}
    )
    phones: tuple[str, ...] = field(default=UNSET, max_items=MAX_PHONES, items={"maxLength": 40})
    company: str | None = field(default=UNSET, max_length=MAX_NAME, pattern=PRINTABLE)
    locale: str | None = field(default=UNSET, max_length=35, description="e.g. es, pt-BR")
    timezone: str | None = field(
        default=UNSET, max_length=64, description="an IANA time zone, e.g. Europe/Madrid"
    )
    avatar: str | None = field(
        default=UNSET,
        max_length=MAX_NAME,
        description="the id of an image uploaded through POST /api/media",
    )
    tags: tuple[str, ...] = field(
        default=UNSET,
        max_items=MAX_TAGS,
        items=TAGS,
        message=f"must be a list of at most {MAX_TAGS} non-empty strings of at most {MAX_TAG}",
    )
    attributes: dict[str, Any] = field(
        default=UNSET,
        description="replaces the custom attributes: each declared one (GET"
        " /api/crm/attributes) of its type; undeclared ones only as they are stored",
    )

    def changes(self) -> dict[str, Any]:
        """The fields given, normalised: keyword arguments for ``ContactBook``."""
        given = {
            name: value
            for name, value in attrs.asdict(self, recurse=False).items()
            if value is not UNSET
        }
        if "emails" in given:
            given["emails"] = unique([normal_email(email) for email in given["emails"]])
        if "phones" in given:
            given["phones"] = unique([normal_phone(phone) for phone in given["phones"]])
        if "tags" in given:
            given["tags"] = unique(list(given["tags"]))
        if given.get("locale") is not None:
            given["locale"] = normal_locale(given["locale"])
        if given.get("timezone") is not None:
            given["timezone"] = normal_timezone(given["timezone"])
        for name in ("display_name", "company"):
            if given.get(name) is not None:
                given[name] = given[name].strip() or None
        return given


@attrs.frozen
class ContactUpdate(ProfileFields):
    """Give at least one field; ``null`` clears a text field."""

    __schema_extra__ = {"minProperties": 1}


@attrs.frozen
class NewContact(ProfileFields):
    """A contact made by hand (or a program): any profile fields, and the addresses it is
    reached at (none: reached nowhere yet)."""

    identities: tuple[IdentityBody, ...] = field(default=(), max_items=20)

    def changes(self) -> dict[str, Any]:
        """The profile fields given, normalised (the identities apart)."""
        given = super().changes()
        given.pop("identities", None)
        return given


@attrs.frozen
class Merge:
    """Merge ``merged_id`` into ``survivor_id``: docs/crm.md, "Merging"."""

    survivor_id: str = field(min_length=1, max_length=MAX_NAME, description="the contact kept")
    merged_id: str = field(
        min_length=1, max_length=MAX_NAME, description="the contact merged into it, then gone"
    )


@attrs.frozen
class IdentityQuery:
    channel: str = field(max_length=MAX_CHANNEL, description="the identity's channel")
    address: str = field(max_length=MAX_ADDRESS, description="the identity's address")


@attrs.frozen
class NoteBody:
    text: str = field(min_length=1, max_length=10_000, description="the note, plain text")


@attrs.frozen
class NewAttribute:
    """A custom attribute's definition."""

    key: str = field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="how values are named in `attributes` (lowercase, digits, _)",
    )
    type: str = field(
        enum=["text", "number", "date", "boolean", "choice"], description="the values' type"
    )
    label: str = field(min_length=1, max_length=MAX_NAME, description="how people are shown it")
    choices: tuple[str, ...] = field(
        default=(),
        max_items=200,
        items={"minLength": 1, "maxLength": MAX_NAME},
        description="the values a `choice` may take",
    )


@attrs.frozen
class AttributeChange:
    """Give at least one field; a key's type never changes (drop it and declare it again)."""

    __schema_extra__ = {"minProperties": 1}

    label: str = field(default=UNSET, min_length=1, max_length=MAX_NAME)
    choices: tuple[str, ...] = field(
        default=UNSET, max_items=100, items={"minLength": 1, "maxLength": MAX_NAME}
    )
    type: str = field(
        default=UNSET,
        enum=["text", "number", "date", "boolean", "choice"],
        description="accepted only as it is",
    )

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in attrs.asdict(self, recurse=False).items() if v is not UNSET}


@attrs.frozen
class NewSegment:
    """A saved filter (docs/crm.md, "Segments")."""

    name: str = field(min_length=1, max_length=MAX_NAME, pattern=NOT_BLANK)
    filter: dict[str, Any] = field(description="the filter, in the language of docs/crm.md")
    description: str | None = field(default=None, max_length=2_000)


@attrs.frozen
class SegmentChange:
    """Give at least one field."""

    __schema_extra__ = {"minProperties": 1}

    name: str = field(default=UNSET, min_length=1, max_length=MAX_NAME, pattern=NOT_BLANK)
    filter: dict[str, Any] = field(default=UNSET, description="the filter, replaced whole")
    description: str | None = field(default=UNSET, max_length=2_000)

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in attrs.asdict(self, recurse=False).items() if v is not UNSET}


@attrs.frozen
class SegmentPreview:
    """A filter to try before saving it as a segment."""

    filter: dict[str, Any] = field(description="the filter, in the language of docs/crm.md")
    limit: int = field(default=20, minimum=1, maximum=200, description="members to show")

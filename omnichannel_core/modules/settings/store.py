"""What the settings module needs from storage (store ``settings``): one :class:`Settings`
record with its version, and the canned responses. Every change is one transaction that
bumps the version, logs ``settings.updated`` and appends its audit entry, so no change is
kept without its trail, and every process sees the version move.

Beside them, the away messages' ledger (:meth:`SettingsStore.claim_away`): per channel and
contact when one was last sent, and per channel how many this hour, each claim one
transaction, so every runner of every server keeps to the same limits."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import attrs

from omnichannel_core.module import (
    AuditEntry,
    InvalidInput,
    Page,
    StoreSpec,
    decode_cursor,
    encode_cursor,
    lazy,
)
from omnichannel_core.modules.settings.records import CannedResponse, Settings

SETTINGS_UPDATED = "settings.updated"
"""The event logged by every change (docs/settings.md, "Events")."""
SETTINGS_RECORD = "settings"
"""The one record ``settings.updated`` names."""

SettingsChange = Callable[[Settings], tuple[Settings, AuditEntry | None]]
"""``change(stored) -> (changed, audit entry)``: what a change makes of the stored settings
(``version``, ``updated_at`` and ``updated_by`` are the store's to set). It must depend on
nothing but ``stored``: on Firestore it may run more than once. Returning ``stored`` itself
changes nothing."""
CannedChange = Callable[[CannedResponse], tuple[CannedResponse, AuditEntry | None]]
"""The same for one canned response."""


@attrs.frozen
class AwayClaim:
    """An away message about to be sent, asking the ledger whether it may be.

    :param channel: the channel it goes out on.
    :param contact_id: the customer it goes to.
    :param message_id: the customer's message it answers (a redelivered event names it
        again).
    :param closed_since: when the business last closed before that message (None: never
        open in the days looked back over).
    :param at: now.
    :param hourly_limit: how many the channel may send per clock hour (UTC).
    """

    channel: str
    contact_id: str
    message_id: str
    closed_since: datetime | None
    at: datetime
    hourly_limit: int


@attrs.frozen
class AwaySent:
    """The ledger's line for one channel and contact: the last away message sent them."""

    message_id: str
    at: datetime


@attrs.frozen
class AwayHour:
    """The ledger's line for one channel: the away messages sent in one clock hour."""

    hour: str
    sent: int


class AwayVerdict(enum.StrEnum):
    """What the ledger says of an :class:`AwayClaim`."""

    SEND = "send"
    """Claimed now: send it."""
    AGAIN = "again"
    """Claimed before by this very message (a redelivered event): send it again, its key
    making it once."""
    ANSWERED = "answered"
    """The customer was sent one since the business last closed."""
    CAPPED = "capped"
    """The channel sent its hourly limit this hour."""


def hour_of(at: datetime) -> str:
    """The clock hour (UTC) ``at`` is in, as the ledger counts by: ``2025-05-09T20``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H")


def away_verdict(
    claim: AwayClaim, sent: AwaySent | None, hour: AwayHour | None
) -> tuple[AwayVerdict, AwayHour | None]:
    """The ledger's rule, the same on every backend: the verdict on ``claim`` given the
    contact's line (``sent``) and the channel's (``hour``), and on :attr:`AwayVerdict.SEND`
    the channel's line to store (the contact's is then ``AwaySent(claim.message_id,
    claim.at)``)."""
    if sent is not None and sent.message_id == claim.message_id:
        return AwayVerdict.AGAIN, None
    if sent is not None and (claim.closed_since is None or sent.at >= claim.closed_since):
        return AwayVerdict.ANSWERED, None
    current = hour_of(claim.at)
    count = hour.sent if hour is not None and hour.hour == current else 0
    if count >= claim.hourly_limit:
        return AwayVerdict.CAPPED, None
    return AwayVerdict.SEND, AwayHour(current, count + 1)


def shortcut_cursor(shortcut: str) -> str:
    """The cursor of a page of canned responses that ended at ``shortcut``."""
    return encode_cursor(shortcut)


def shortcut_of_cursor(cursor: str) -> str:
    """The shortcut a canned responses cursor holds; InvalidInput for one no page gave."""
    (shortcut,) = decode_cursor(cursor, 1)
    if not shortcut.startswith("/") or len(shortcut) > 64:
        raise InvalidInput("cursor is not valid", parameter="cursor")
    return shortcut


class SettingsStore(Protocol):
    async def get(self) -> Settings:
        """The settings as stored; ``Settings()`` (version 0, the defaults) before the first
        change."""

    async def version(self) -> int:
        """The settings' version alone (0 before the first change): cheap, as each process
        asks every couple of seconds."""

    async def change(self, change: SettingsChange, by: str | None) -> Settings:
        """Apply ``change`` to the stored settings in one transaction: unless it returns
        them unchanged, store what it returns with the next version, ``updated_at`` now and
        ``updated_by`` ``by``, log ``settings.updated`` and append its audit entry. The
        settings as stored after."""

    async def canned_responses(self, cursor: str | None, limit: int) -> Page:
        """Canned responses by shortcut, ``limit`` a page, after ``cursor``."""

    async def canned_response(self, response_id: str) -> CannedResponse:
        """One canned response; NotFound for an unknown id."""

    async def count_canned_responses(self) -> int:
        """How many canned responses there are."""

    async def create_canned_response(
        self, response: CannedResponse, audit: AuditEntry | None
    ) -> CannedResponse:
        """Store a new canned response, bump the settings' version, log
        ``settings.updated`` and append ``audit``; Conflict (``field="shortcut"``) when its
        shortcut is taken."""

    async def change_canned_response(
        self, response_id: str, change: CannedChange, by: str | None
    ) -> CannedResponse:
        """Apply ``change`` to the canned response in one transaction (as :meth:`change`
        does to the settings); Conflict when its new shortcut is another's, NotFound for an
        unknown id."""

    async def delete_canned_response(
        self, response_id: str, audit: Callable[[CannedResponse], AuditEntry | None]
    ) -> None:
        """Delete the canned response, bump the version, log ``settings.updated`` and append
        ``audit(deleted)``; NotFound for an unknown id."""

    async def claim_away(self, claim: AwayClaim) -> AwayVerdict:
        """In one transaction: read the contact's and the channel's lines of the away
        ledger, judge ``claim`` by :func:`away_verdict`, and on :attr:`AwayVerdict.SEND`
        store both lines (the contact's ``AwaySent(claim.message_id, claim.at)``). Nothing
        else is bumped: the settings' version stays."""


def settings_store_spec() -> StoreSpec:
    from omnichannel_core.modules.settings.sqlite import MIGRATIONS

    return StoreSpec(
        "settings",
        SettingsStore,
        sqlite=lazy("omnichannel_core.modules.settings.sqlite", "SqliteSettingsStore"),
        firestore=lazy("omnichannel_core.modules.settings.firestore", "FirestoreSettingsStore"),
        sqlite_migrations=MIGRATIONS,
    )

"""What the IMAP poller's store holds (:mod:`omnichannel_email.imap_store`)."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs


@attrs.frozen
class Position:
    """Every mail of the folder numbered ``uidvalidity``, up to UID ``last_uid``, was taken
    (stored, or skipped)."""

    uidvalidity: int
    last_uid: int


@attrs.frozen
class SkippedMail:
    """A mail the poller did not store, and will not fetch again: too large, or no mail."""

    uidvalidity: int
    uid: int
    reason: str
    size: int | None
    skipped_at: datetime


class PollerState(enum.StrEnum):
    FETCHING = "fetching"
    """Connected, taking the mail that came since the last position."""
    IDLE = "idle"
    """Connected, waiting for the server to say mail came (IMAP IDLE)."""
    POLLING = "polling"
    """Connected to a server without IDLE, asking it every ``EMAIL_IMAP_POLL_SECONDS``."""
    ERROR = "error"
    """The last attempt failed (``error`` says why); it is tried again after a pause."""


@attrs.frozen
class PollerStatus:
    """How the poller of a mailbox is doing: its state since ``since``, and its last error
    (a sentence, never a password), kept after it recovers."""

    state: PollerState = attrs.field(converter=PollerState)
    since: datetime
    error: str | None = None
    error_at: datetime | None = None

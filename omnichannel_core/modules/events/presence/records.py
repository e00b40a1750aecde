"""What presence keeps and answers: a user's open streams, their status, and their presence
as ``GET /api/presence`` shows it."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs


class Status(enum.StrEnum):
    """What a user says of themselves; kept across their reconnects."""

    AVAILABLE = "available"
    """The default, until the user says otherwise."""
    AWAY = "away"


class State(enum.StrEnum):
    """A user's presence: connected (an event stream of theirs is open) and their status."""

    ONLINE = "online"
    """Connected and available."""
    AWAY = "away"
    """Connected and away."""
    OFFLINE = "offline"
    """No stream of theirs is open (whatever their status)."""


@attrs.frozen
class OpenStream:
    """One open ``GET /api/events`` stream of a user, as the store keeps it."""

    stream_id: str
    user_id: str
    process: str
    """The server process holding it (``host:pid``): for whoever looks at the store."""
    opened_at: datetime
    seen_at: datetime
    """When its process last said it is open; one not seen for the timeout is gone."""


@attrs.frozen
class UserStatus:
    """The status a user set, and when."""

    user_id: str
    status: Status
    changed_at: datetime


@attrs.frozen
class OwnPresence:
    """The caller's presence (``GET``/``PUT /api/presence``)."""

    user_id: str
    status: Status
    """What the user set: ``available`` (the default) or ``away``."""
    presence: State
    """``online`` (connected and available), ``away`` (connected and away) or
    ``offline``."""
    streams: int
    """How many of their event streams are open."""
    connected_since: datetime | None
    """When the oldest of their open streams opened; null when offline."""

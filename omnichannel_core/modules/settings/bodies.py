"""What the settings API takes. The shapes are checked here; what needs more (a time zone
that exists, ranges that do not overlap, a channel that is loaded, a variable it declares)
is checked by `omnichannel_core.modules.settings.checks` before anything is stored."""

from __future__ import annotations

from typing import Any

import attrs

from omnichannel_core.module import UNSET, field

MAX_NAME = 200
MAX_RANGES = 8
"""Open ranges per day."""
MAX_HOLIDAYS = 400
MAX_AWAY_TEXT = 1600
"""An away message's length: what one SMS carries once split (Twilio's limit)."""
MAX_VALUE = 4096
"""A channel variable's stored value."""
MAX_SHORTCUT = 32
MAX_TITLE = 100
MAX_CANNED_TEXT = 4096
MAX_CHANNELS = 50

NAME = r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$"
"""A one-line text with something other than spaces in it."""
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
HOUR_MINUTE = r"^([01]\d|2[0-3]):[0-5]\d$"
END_MINUTE = r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$"
DATE = r"^\d{4}-\d{2}-\d{2}$"
TIMEZONE = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$"
CHANNEL = r"^[a-z][a-z0-9_-]{0,31}$"
SHORTCUT = r"^/[a-z0-9][a-z0-9_-]*$"
TEXT = r"^[^\x00]*\S[^\x00]*$"
"""Any text, several lines included, with something other than spaces in it."""


def given(body: Any) -> dict[str, Any]:
    """The fields of a PATCH body that were given (left out: ``UNSET``)."""
    return {
        name: value
        for name, value in attrs.asdict(body, recurse=False).items()
        if value is not UNSET
    }


@attrs.frozen
class BusinessChange:
    """The business's name and time zone; each left out stays."""

    name: str = field(
        default=UNSET, max_length=MAX_NAME, pattern=PRINTABLE, message="must be a one-line text"
    )
    timezone: str = field(
        default=UNSET,
        max_length=64,
        pattern=TIMEZONE,
        description="an IANA time zone, e.g. Europe/Paris",
        message="must be an IANA time zone, e.g. Europe/Paris",
    )


@attrs.frozen
class TimeRangeBody:
    start: str = field(pattern=HOUR_MINUTE, message="must be HH:MM, 00:00 to 23:59")
    end: str = field(
        pattern=END_MINUTE,
        description="after start; 24:00 is the end of the day",
        message="must be HH:MM, 00:01 to 24:00",
    )


def _day() -> Any:
    return field(factory=tuple, max_items=MAX_RANGES)


@attrs.frozen
class WeekHoursBody:
    """The whole week: a day left out, or given no range, is closed."""

    monday: tuple[TimeRangeBody, ...] = _day()
    tuesday: tuple[TimeRangeBody, ...] = _day()
    wednesday: tuple[TimeRangeBody, ...] = _day()
    thursday: tuple[TimeRangeBody, ...] = _day()
    friday: tuple[TimeRangeBody, ...] = _day()
    saturday: tuple[TimeRangeBody, ...] = _day()
    sunday: tuple[TimeRangeBody, ...] = _day()


@attrs.frozen
class HolidayBody:
    date: str = field(pattern=DATE, message="must be a date, YYYY-MM-DD")
    name: str | None = field(
        default=None, max_length=MAX_NAME, pattern=PRINTABLE, message="must be a one-line text"
    )


@attrs.frozen
class SlaBody:
    first_response_minutes: int = field(
        minimum=1,
        maximum=7 * 24 * 60,
        description="the first-response target, in minutes (a week at most)",
    )


@attrs.frozen
class AwayMessageBody:
    enabled: bool
    channel: str = field(pattern=CHANNEL, message="must be a channel's name")
    text: str = field(
        min_length=1, max_length=MAX_AWAY_TEXT, pattern=TEXT, message="must not be blank"
    )


@attrs.frozen
class SettingsChange:
    """What to change; each part left out stays as it is."""

    business: BusinessChange = field(default=UNSET)
    hours: WeekHoursBody = field(
        default=UNSET, description="replaces the whole week: a day left out is closed"
    )
    holidays: tuple[HolidayBody, ...] = field(
        default=UNSET, max_items=MAX_HOLIDAYS, description="replaces the whole list"
    )
    sla: SlaBody = field(default=UNSET)
    away_messages: tuple[AwayMessageBody, ...] = field(
        default=UNSET,
        max_items=MAX_CHANNELS,
        description="each replaces its channel's away message; other channels' stay",
    )
    channels: dict[str, str | None] = field(
        default=UNSET,
        description="channel variables by name (as a loaded channel declares them): a"
        " string stores a value, null removes the stored one; others stay",
    )


@attrs.frozen
class NewCannedResponse:
    shortcut: str = field(
        min_length=2,
        max_length=MAX_SHORTCUT,
        pattern=SHORTCUT,
        description="what an agent types to pick it, e.g. /hello; unique",
        message="must be / then lower-case letters, digits, - or _, e.g. /hello",
    )
    title: str = field(
        min_length=1, max_length=MAX_TITLE, pattern=NAME, message="must be a one-line text"
    )
    text: str = field(
        min_length=1, max_length=MAX_CANNED_TEXT, pattern=TEXT, message="must not be blank"
    )


@attrs.frozen
class CannedResponseChange:
    """The fields to change; each left out stays."""

    shortcut: str = field(
        default=UNSET,
        min_length=2,
        max_length=MAX_SHORTCUT,
        pattern=SHORTCUT,
        message="must be / then lower-case letters, digits, - or _, e.g. /hello",
    )
    title: str = field(
        default=UNSET,
        min_length=1,
        max_length=MAX_TITLE,
        pattern=NAME,
        message="must be a one-line text",
    )
    text: str = field(
        default=UNSET,
        min_length=1,
        max_length=MAX_CANNED_TEXT,
        pattern=TEXT,
        message="must not be blank",
    )

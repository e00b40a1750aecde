"""The settings as they are stored (:class:`Settings`, one record with a version, and the
:class:`CannedResponse` records beside it), and the :class:`Business` they describe."""

from __future__ import annotations

from datetime import date, datetime

import attrs

from omnichannel_core.module import DAY_END, DEFAULT_SLA_MINUTES, WEEKDAYS, Business, field

CANNED_PREFIX = "cr"


@attrs.frozen
class TimeRange:
    """Open from ``start`` (included) to ``end`` (excluded), ``HH:MM`` in the business's
    time zone; ``end`` may be ``24:00``. A range never crosses midnight: open through the
    night is a range to ``24:00`` and the next day's from ``00:00``."""

    __schema_name__ = "BusinessTimeRange"

    start: str
    end: str


ALL_DAY = (TimeRange("00:00", DAY_END),)


@attrs.frozen
class WeekHours:
    """When the business is open, per weekday, in its time zone; a day with no range is
    closed."""

    __schema_name__ = "BusinessHours"

    monday: tuple[TimeRange, ...] = ALL_DAY
    tuesday: tuple[TimeRange, ...] = ALL_DAY
    wednesday: tuple[TimeRange, ...] = ALL_DAY
    thursday: tuple[TimeRange, ...] = ALL_DAY
    friday: tuple[TimeRange, ...] = ALL_DAY
    saturday: tuple[TimeRange, ...] = ALL_DAY
    sunday: tuple[TimeRange, ...] = ALL_DAY

    def days(self) -> tuple[tuple[TimeRange, ...], ...]:
        """The ranges of each day, Monday first."""
        return tuple(getattr(self, day) for day in WEEKDAYS)


@attrs.frozen
class Holiday:
    """A day the business is closed, all day, whatever its hours."""

    date: str = field(description="YYYY-MM-DD, in the business's time zone.")
    name: str | None = None


@attrs.frozen
class AwayMessage:
    """What a customer who writes on ``channel`` while the business is closed is sent, once
    per closed period (docs/settings.md, "Away messages")."""

    channel: str
    enabled: bool
    text: str


@attrs.frozen
class StoredValue:
    """A channel variable's stored value: sealed (encrypted with the server's secret key,
    bound to the variable's name) when the channel declares it secret, else plain."""

    value: str
    sealed: bool = False


@attrs.frozen
class Settings:
    """Every setting but the canned responses, as one record.

    :param version: bumped by every change (the canned responses' too): what each process
        polls to learn that it must reload.
    :param channel_values: by variable name; each sealed when secret.
    :param updated_by: the id of whoever changed them last (a user or a key).
    """

    version: int = 0
    name: str = ""
    timezone: str = "UTC"
    hours: WeekHours = WeekHours()
    holidays: tuple[Holiday, ...] = ()
    first_response_minutes: int = DEFAULT_SLA_MINUTES
    away_messages: tuple[AwayMessage, ...] = ()
    channel_values: dict[str, StoredValue] = attrs.field(factory=dict)
    updated_at: datetime | None = None
    updated_by: str | None = None

    def business(self) -> Business:
        return Business(
            name=self.name,
            timezone=self.timezone,
            hours=tuple(tuple((each.start, each.end) for each in day) for day in self.hours.days()),
            holidays=frozenset(date.fromisoformat(holiday.date) for holiday in self.holidays),
            first_response_sla_minutes=self.first_response_minutes,
        )

    def away_message(self, channel: str) -> AwayMessage | None:
        for message in self.away_messages:
            if message.channel == channel:
                return message
        return None


@attrs.frozen
class CannedResponse:
    """A ready answer an agent picks by its shortcut (``/hello``) and edits before sending."""

    id: str
    shortcut: str
    title: str
    text: str
    created_at: datetime
    updated_at: datetime
    created_by: str | None = None
    updated_by: str | None = None

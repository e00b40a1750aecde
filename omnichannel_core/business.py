"""The business as its settings describe it: its name, its time zone, when it is open, and the
first-response target its figures are measured against.

:class:`Business` is what the settings module hands other modules through
:class:`~omnichannel_core.services.BusinessSettings` (the dashboard buckets by its time zone
and counts SLA breaches by its target; the away message asks whether it is open). Times are
read in the business's own zone, so "09:00" is nine o'clock there whatever the server's
zone, across daylight-saving changes too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import attrs

__all__ = ["DAY_END", "DEFAULT_SLA_MINUTES", "WEEKDAYS", "Business", "OpenRange", "minutes_of"]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
"""The days of the week, in ``datetime.weekday()`` order (Monday is 0)."""
DAY_END = "24:00"
"""The end of a day: a range may end there (``22:00``-``24:00``), never start there."""
DEFAULT_SLA_MINUTES = 15
"""The first-response target until an admin sets one."""
LOOK_BACK_DAYS = 400
"""How far back :meth:`Business.last_closing` looks for the last time the business closed:
past a whole year, so one closed for its yearly holidays still finds it."""

OpenRange = tuple[str, str]
"""``("09:00", "17:30")``: open from the first time (included) to the second (excluded), in
the business's zone, on one day. The end is after the start; a range never crosses midnight
(open through the night is two ranges: ``22:00``-``24:00`` and the next day's
``00:00``-``06:00``)."""


def minutes_of(text: str) -> int:
    """Minutes since midnight of ``"HH:MM"`` (``"24:00"`` is 1440). ValueError for
    anything else."""
    hours, colon, minutes = text.partition(":")
    if not (colon and len(hours) == 2 and len(minutes) == 2 and (hours + minutes).isdigit()):
        raise ValueError(f"not HH:MM: {text!r}")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > 24 * 60:
        raise ValueError(f"not a time of day: {text!r}")
    return value


def _open_ranges(value: Iterable[Iterable[Sequence[str]]]) -> tuple[tuple[OpenRange, ...], ...]:
    days = tuple(tuple((str(start), str(end)) for start, end in day) for day in value)
    if len(days) != len(WEEKDAYS):
        raise ValueError(f"business hours name {len(WEEKDAYS)} days, Monday first")
    return days


def _dates(value: Iterable[date]) -> frozenset[date]:
    return frozenset(value)


@attrs.frozen
class Business:
    """The business, as its settings say.

    :param name: its name ("" until an admin gives one).
    :param timezone: an IANA zone (``Europe/Paris``): where its hours, and the dashboard's
        days, are read.
    :param hours: per weekday, Monday first (:data:`WEEKDAYS`), the ranges it is open
        (:data:`OpenRange`); a day with none is closed. Every day ``00:00``-``24:00``:
        always open (the default).
    :param holidays: days it is closed all day, whatever its hours.
    :param first_response_sla_minutes: the target for a first response.
    """

    name: str = ""
    timezone: str = "UTC"
    hours: tuple[tuple[OpenRange, ...], ...] = attrs.field(
        default=((("00:00", DAY_END),),) * len(WEEKDAYS), converter=_open_ranges
    )
    holidays: frozenset[date] = attrs.field(default=frozenset(), converter=_dates)
    first_response_sla_minutes: int = DEFAULT_SLA_MINUTES

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_open(self, at: datetime) -> bool:
        """Whether the business is open at ``at`` (an aware datetime), in its own zone: a
        holiday is closed all day; otherwise open within one of that weekday's ranges."""
        local = at.astimezone(self.zone)
        if local.date() in self.holidays:
            return False
        minute = local.hour * 60 + local.minute
        return any(
            minutes_of(start) <= minute < minutes_of(end)
            for start, end in self.hours[local.weekday()]
        )

    def last_closing(self, at: datetime) -> datetime | None:
        """When the business last closed at or before ``at`` (UTC): the end of the last
        range it was open in. None when it was open in none of the :data:`LOOK_BACK_DAYS`
        before (never open, or closed for longer). Where ``at`` is closed, it names the
        closed period ``at`` is in: every moment of one closed period answers the same."""
        zone = self.zone
        today = at.astimezone(zone).date()
        for offset in range(LOOK_BACK_DAYS + 1):
            day = today - timedelta(days=offset)
            for end in sorted(self._ends(day, zone), reverse=True):
                if end <= at:
                    return end
        return None

    def _ends(self, day: date, zone: ZoneInfo) -> Iterator[datetime]:
        """When each of ``day``'s open ranges ends, as UTC times (none on a holiday). A range
        that runs to midnight closes at the start of the next day, unless the next day opens
        at midnight (its hours go on through the night)."""
        if day in self.holidays:
            return
        for _start, end in self.hours[day.weekday()]:
            minutes = minutes_of(end)
            if minutes == 24 * 60 and self._opens_at_midnight(day + timedelta(days=1)):
                continue
            # Aware arithmetic adds to the wall clock: the offset is the closing time's own,
            # on a day when daylight saving starts or ends too.
            local = datetime.combine(day, time(), tzinfo=zone) + timedelta(minutes=minutes)
            yield local.astimezone(UTC)

    def _opens_at_midnight(self, day: date) -> bool:
        if day in self.holidays:
            return False
        return any(minutes_of(start) == 0 for start, _end in self.hours[day.weekday()])

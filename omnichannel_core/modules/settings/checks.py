"""What a settings change must be beyond its shape, checked before anything is stored: a
time zone that exists, ranges in order that do not overlap, real dates given once, away
messages for loaded channels. Each refusal is an InvalidInput naming the field at fault."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from omnichannel_core.module import DAY_END, WEEKDAYS, InvalidInput, minutes_of
from omnichannel_core.modules.settings.bodies import (
    AwayMessageBody,
    HolidayBody,
    TimeRangeBody,
    WeekHoursBody,
)
from omnichannel_core.modules.settings.records import AwayMessage, Holiday, TimeRange, WeekHours


def _minutes(text: str, where: str, end: bool) -> int:
    """Minutes since midnight of ``text`` as the business's hours read it
    (:func:`minutes_of`), so what is stored is what they can read; ``24:00`` ends a range
    only."""
    try:
        minutes = minutes_of(text)
    except ValueError:
        minutes = -1
    if minutes < 0 or (not end and text == DAY_END):
        hint = "00:01 to 24:00" if end else "00:00 to 23:59"
        raise InvalidInput(f"{where}: must be HH:MM, {hint}", field=where)
    return minutes


def checked_timezone(name: str) -> str:
    """``name`` when it is an IANA time zone this server knows."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(
            f"business.timezone: {name!r} is not an IANA time zone (e.g. Europe/Paris)",
            field="business.timezone",
        ) from None
    return name


def checked_day(day: str, ranges: tuple[TimeRangeBody, ...]) -> tuple[TimeRange, ...]:
    """A day's ranges, in order; each ends after it starts, and none overlaps the next."""
    checked = []
    for index, each in enumerate(ranges):
        where = f"hours.{day}[{index}]"
        start = _minutes(each.start, f"{where}.start", end=False)
        if _minutes(each.end, f"{where}.end", end=True) <= start:
            raise InvalidInput(
                f"{where}: ends at {each.end}, not after it starts ({each.start}); open"
                " through midnight is a range to 24:00 and the next day's from 00:00",
                field=where,
            )
        checked.append((index, TimeRange(each.start, each.end)))
    checked.sort(key=lambda item: minutes_of(item[1].start))
    for (_, before), (index, after) in pairwise(checked):
        if minutes_of(after.start) < minutes_of(before.end):
            where = f"hours.{day}[{index}]"
            raise InvalidInput(
                f"{where}: {after.start}-{after.end} overlaps {before.start}-{before.end}",
                field=where,
            )
    return tuple(each for _, each in checked)


def checked_hours(body: WeekHoursBody) -> WeekHours:
    return WeekHours(**{day: checked_day(day, getattr(body, day)) for day in WEEKDAYS})


def checked_holidays(body: tuple[HolidayBody, ...]) -> tuple[Holiday, ...]:
    """The holidays by date, each a real date given once."""
    seen: set[str] = set()
    for index, holiday in enumerate(body):
        where = f"holidays[{index}].date"
        try:
            date.fromisoformat(holiday.date)
        except ValueError:
            raise InvalidInput(f"{where}: {holiday.date} is not a date", field=where) from None
        if holiday.date in seen:
            raise InvalidInput(f"{where}: {holiday.date} is given twice", field=where)
        seen.add(holiday.date)
    named = (Holiday(h.date, (h.name or "").strip() or None) for h in body)
    return tuple(sorted(named, key=lambda holiday: holiday.date))


def checked_away_messages(
    stored: tuple[AwayMessage, ...], body: tuple[AwayMessageBody, ...], channels: Collection[str]
) -> tuple[AwayMessage, ...]:
    """``stored`` with each channel of ``body`` replaced; every channel given is loaded and
    given once."""
    merged = {message.channel: message for message in stored}
    given: set[str] = set()
    for index, message in enumerate(body):
        where = f"away_messages[{index}].channel"
        if message.channel not in channels:
            loaded = ", ".join(sorted(channels)) or "none"
            raise InvalidInput(
                f"{where}: {message.channel!r} is not a loaded channel (loaded: {loaded})",
                field=where,
            )
        if message.channel in given:
            raise InvalidInput(f"{where}: {message.channel!r} is given twice", field=where)
        given.add(message.channel)
        merged[message.channel] = AwayMessage(message.channel, message.enabled, message.text)
    return tuple(merged[channel] for channel in sorted(merged))

"""The business as its settings describe it (`omnichannel_core.business`): open or closed at a
moment, in its own time zone, across midnight and daylight-saving changes, holidays closed
all day; and when the closed period a moment falls in began (what keys an away message)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from omnichannel_core.business import WEEKDAYS, Business, minutes_of

PARIS = ZoneInfo("Europe/Paris")
OFFICE = ((("09:00", "12:00"), ("13:00", "18:00")),) * 5 + ((), ())
"""Monday to Friday, 9 to 12 and 13 to 18; closed at the weekend."""


def paris(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=PARIS)


def office(**fields: object) -> Business:
    return Business(**{"timezone": "Europe/Paris", "hours": OFFICE, **fields})


def test_the_default_business_is_always_open():
    """Until an admin sets hours, the business is open every day all day (in UTC)."""
    business = Business()
    assert business.timezone == "UTC" and business.first_response_sla_minutes == 15
    start = datetime(2025, 1, 6, tzinfo=UTC)
    assert all(business.is_open(start + timedelta(minutes=37 * n)) for n in range(400))
    assert business.last_closing(start) is None


@pytest.mark.parametrize(
    ("at", "open_"),
    [
        (paris(2025, 5, 5, 8, 59), False),  # a Monday, before opening
        (paris(2025, 5, 5, 9, 0), True),  # the start is in
        (paris(2025, 5, 5, 11, 59), True),
        (paris(2025, 5, 5, 12, 0), False),  # the end is out: lunch
        (paris(2025, 5, 5, 17, 59), True),
        (paris(2025, 5, 5, 18, 0), False),
        (paris(2025, 5, 10, 10, 0), False),  # a Saturday
        (datetime(2025, 5, 5, 7, 30, tzinfo=UTC), True),  # 09:30 in Paris (UTC+2)
        (datetime(2025, 5, 5, 16, 30, tzinfo=UTC), False),  # 18:30 in Paris
    ],
)
def test_open_is_read_in_the_business_time_zone(at, open_):
    """A moment is open when it falls in one of that weekday's ranges, start included, end
    excluded, read in the business's own zone whatever the moment's."""
    assert office().is_open(at) is open_


def test_a_holiday_is_closed_all_day():
    """A holiday is closed whatever its weekday's hours, from its midnight to the next, in
    the business's zone."""
    business = office(holidays={date(2025, 5, 8)})  # a Thursday
    assert not business.is_open(paris(2025, 5, 8, 10, 0))
    assert business.is_open(paris(2025, 5, 9, 10, 0))
    assert business.is_open(paris(2025, 5, 7, 17, 0))


def test_open_through_midnight_is_two_ranges():
    """Open 22:00-24:00 on Friday and 00:00-02:00 on Saturday: open across midnight."""
    hours = [[] for _ in WEEKDAYS]
    hours[4] = [("22:00", "24:00")]
    hours[5] = [("00:00", "02:00")]
    business = Business(timezone="Europe/Paris", hours=hours)
    assert business.is_open(paris(2025, 5, 9, 23, 59))
    assert business.is_open(paris(2025, 5, 10, 0, 0))
    assert business.is_open(paris(2025, 5, 10, 1, 59))
    assert not business.is_open(paris(2025, 5, 10, 2, 0))
    # The night is one open period: it closed at 02:00 Saturday, not at midnight.
    closing = business.last_closing(paris(2025, 5, 10, 3, 0))
    assert closing == paris(2025, 5, 10, 2, 0).astimezone(UTC)


def test_every_moment_of_a_closed_period_names_the_same_closing():
    """From Friday 18:00 to Monday 09:00 is one closed period: each moment of it says the
    business closed on Friday at 18:00 (UTC); lunch is a period of its own."""
    business = office()
    friday_close = paris(2025, 5, 9, 18, 0).astimezone(UTC)
    for at in (
        paris(2025, 5, 9, 18, 0),
        paris(2025, 5, 9, 23, 0),
        paris(2025, 5, 10, 12, 0),
        paris(2025, 5, 12, 8, 59),
    ):
        assert business.last_closing(at) == friday_close
    assert business.last_closing(paris(2025, 5, 12, 12, 30)) == paris(2025, 5, 12, 12, 0)
    assert business.last_closing(paris(2025, 5, 12, 18, 1)) == paris(2025, 5, 12, 18, 0)


def test_a_holiday_joins_the_closed_periods_around_it():
    """With Monday a holiday, the weekend runs on to Tuesday 09:00: one period, closed
    since Friday 18:00."""
    business = office(holidays={date(2025, 5, 12)})
    friday_close = paris(2025, 5, 9, 18, 0).astimezone(UTC)
    assert business.last_closing(paris(2025, 5, 12, 10, 0)) == friday_close
    assert business.last_closing(paris(2025, 5, 13, 8, 0)) == friday_close


def test_hours_are_wall_clock_hours_across_daylight_saving_changes():
    """On the Sunday clocks go forward (30 March 2025 in Paris) and back (26 October), a
    range's end is the wall-clock time of that day: its UTC offset is the one it has then."""
    hours = [[("00:00", "24:00")] for _ in WEEKDAYS]
    hours[6] = [("01:00", "04:00")]
    business = Business(timezone="Europe/Paris", hours=hours)
    spring = business.last_closing(paris(2025, 3, 30, 5, 0))
    assert spring == datetime(2025, 3, 30, 2, 0, tzinfo=UTC)  # 04:00 CEST
    autumn = business.last_closing(paris(2025, 10, 26, 5, 0))
    assert autumn == datetime(2025, 10, 26, 3, 0, tzinfo=UTC)  # 04:00 CET
    assert business.is_open(datetime(2025, 10, 26, 2, 30, tzinfo=UTC))  # 03:30 CET
    assert not business.is_open(datetime(2025, 10, 26, 3, 30, tzinfo=UTC))


def test_a_business_never_open_has_no_last_closing():
    """Closed every day: no closing to name (the away message's period is "never open")."""
    business = Business(hours=[[] for _ in WEEKDAYS])
    assert not business.is_open(datetime(2025, 5, 5, 12, tzinfo=UTC))
    assert business.last_closing(datetime(2025, 5, 5, 12, tzinfo=UTC)) is None


@pytest.mark.parametrize("text", ["9:00", "09:60", "24:01", "ab:cd", "0900", "09:00:00"])
def test_a_time_of_day_is_hh_mm(text):
    with pytest.raises(ValueError, match=r"HH:MM|time of day"):
        minutes_of(text)


def test_hours_name_seven_days():
    with pytest.raises(ValueError, match="7 days"):
        Business(hours=[[]] * 6)

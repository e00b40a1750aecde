"""The hours of a business's zone (`modules.dashboard.hours`): where each local hour starts,
for the hours' tier of the rollups and the buckets of hourly reports alike."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from omnichannel_core.modules.dashboard.hours import hour_start, hour_starts
from omnichannel_core.modules.dashboard.records import BUCKET, Interval
from omnichannel_core.modules.dashboard.report import bucket_starts

ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "America/St_Johns",
    "America/Havana",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Adelaide",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
]
"""Zones whole hours, half hours and three quarters off UTC, with shifts of an hour, of half
an hour, and at midnight."""


def local(day: date, zone: ZoneInfo) -> list[str]:
    """The starts of a local day's hours, as the zone's clocks show them."""
    starts = bucket_starts(day, day, Interval.HOUR, zone)
    return [start.astimezone(zone).strftime("%H:%M%z") for start in starts[:-1]]


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("Europe/Paris", date(2025, 3, 30), 23),
        ("Europe/Paris", date(2025, 10, 26), 25),
        ("Australia/Lord_Howe", date(2025, 10, 5), 24),  # 23.5 h long
        ("Australia/Lord_Howe", date(2025, 4, 6), 25),  # 24.5 h long
        ("America/Havana", date(2025, 3, 9), 23),  # from 01:00: midnight is skipped
        ("Asia/Kolkata", date(2025, 5, 1), 24),
    ],
)
def test_a_day_has_as_many_hours_as_its_clocks_show(zone, day, hours):
    """A day of a shift of an hour has 23 or 25 hours; of half an hour (Lord Howe), 24
    forward and 25 back."""
    assert len(local(day, ZoneInfo(zone))) == hours


def test_a_shift_of_half_an_hour_starts_an_hour_of_its_own():
    """Lord Howe going forward (02:00 to 02:30): the hour from 01:00 is whole, the next one
    runs from 02:30 to 03:00. Going back (02:00 to 01:30): the half hour shown again is an
    hour of its own, between the hours from 01:00 and from 02:00."""
    zone = ZoneInfo("Australia/Lord_Howe")
    assert local(date(2025, 10, 5), zone)[:4] == [
        "00:00+1030",
        "01:00+1030",
        "02:30+1100",
        "03:00+1100",
    ]
    assert local(date(2025, 4, 6), zone)[:5] == [
        "00:00+1100",
        "01:00+1100",
        "01:30+1030",
        "02:00+1030",
        "03:00+1030",
    ]
    shown_again = datetime(2025, 4, 5, 15, 20, tzinfo=UTC)  # 01:50 +10:30
    assert hour_start(shown_again, zone) == datetime(2025, 4, 5, 15, 0, tzinfo=UTC)
    assert hour_start(shown_again - timedelta(minutes=30), zone) == datetime(
        2025, 4, 5, 14, 0, tzinfo=UTC
    )


@pytest.mark.parametrize("zone", ZONES)
def test_every_moment_falls_in_one_of_the_hours_of_its_day(zone):
    """For random moments of 2025, in each zone: the hour ``hour_start`` finds is one of
    the starts of the moment's local day (its hourly report's buckets), the last at or
    before it, a whole number of quarter hours from the next; every local hour lies within
    one offset and is at most an hour long."""
    zone_info = ZoneInfo(zone)
    draw = random.Random(zone)
    year = datetime(2025, 1, 1, tzinfo=UTC)
    for _ in range(300):
        moment = year + timedelta(seconds=draw.uniform(0, 365 * 86400))
        day = moment.astimezone(zone_info).date()
        starts = bucket_starts(day, day, Interval.HOUR, zone_info)
        start = hour_start(moment, zone_info)
        index = starts.index(start)
        assert start <= moment < starts[index + 1]
        length = starts[index + 1] - start
        assert length <= timedelta(hours=1)
        assert length % BUCKET == timedelta(0)
        assert start.astimezone(zone_info).utcoffset() == (
            (starts[index + 1] - BUCKET).astimezone(zone_info).utcoffset()
        )


@pytest.mark.parametrize("zone", ZONES)
def test_the_hours_of_a_year_are_the_quarter_hours_grouped(zone):
    """``hour_starts`` over a year are the distinct ``hour_start`` of its quarter hours, and
    consecutive days' hours meet at local midnight (the days' buckets)."""
    zone_info = ZoneInfo(zone)
    start = datetime.combine(date(2025, 1, 1), time(), zone_info).astimezone(UTC)
    end = datetime.combine(date(2026, 1, 1), time(), zone_info).astimezone(UTC)
    quarters = [start + BUCKET * n for n in range(int((end - start) / BUCKET))]
    starts = hour_starts(start, end, zone_info)
    assert starts == sorted({hour_start(quarter, zone_info) for quarter in quarters})
    days = bucket_starts(date(2025, 1, 1), date(2025, 12, 31), Interval.DAY, zone_info)
    assert set(days[:-1]) <= set(starts)

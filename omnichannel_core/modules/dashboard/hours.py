"""The hours of a business's zone, as instants: where each local hour starts, in UTC. Hourly
reports are bucketed by them, and the rollups' hour tier is kept by them, so both use this
one definition.

A local hour runs from a moment the zone's clocks show a whole hour (``HH:00``), or change
(a daylight-saving shift), to the next such moment. On most days that is the hour of the
clock face, 60 minutes. A shift starts an hour of its own: where clocks go forward an hour,
the hour they skip is none (a day of 23 hours); where they go back an hour, the hour shown
twice is two (25). Where a shift is half an hour (Australia/Lord_Howe), going forward from
02:00 to 02:30, the hour from 01:00 is whole and the next, from 02:30 to 03:00, lasts 30
minutes (the day has 24 hours, 23.5 h long); going back from 02:00 to 01:30, the hour from
01:00 is whole, the half hour shown again from 01:30 is an hour of its own, then the hour
from 02:00 (25 hours, 24.5 h long). So a local hour lies within one local day and one
offset, and is a whole number of quarter hours (the zones' offsets and shifts are): it
gathers whole quarter hours of the rollups.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from omnichannel_core.modules.dashboard.records import BUCKET


def hour_start(at: datetime, zone: ZoneInfo) -> datetime:
    """The start, in UTC, of the local hour of ``zone`` that ``at`` falls in."""
    at = at.astimezone(UTC)
    local = at.astimezone(zone)
    offset = local.utcoffset()
    start = at - timedelta(
        minutes=local.minute, seconds=local.second, microseconds=local.microsecond
    )
    # The clock showed that whole hour at another offset: the hour starts at the shift.
    while start < at and start.astimezone(zone).utcoffset() != offset:
        start += BUCKET
    return start


def hour_starts(start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    """The starts, in UTC, of the local hours of ``zone`` from ``start`` (a quarter hour)
    to before ``end``."""
    found = []
    quarter = start.astimezone(UTC)
    while quarter < end:
        if hour_start(quarter, zone) == quarter:
            found.append(quarter)
        quarter += BUCKET
    return found

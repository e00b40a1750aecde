"""The settings as ``GET /api/settings`` shows them (:class:`SettingsView`): for everyone the
business, its hours, holidays, SLA and away messages; for admins also the channels'
variables, secrets masked."""

from __future__ import annotations

from datetime import datetime

import attrs

from omnichannel_core.modules.settings.channel_values import ChannelVariables
from omnichannel_core.modules.settings.records import AwayMessage, Holiday, Settings, WeekHours


@attrs.frozen
class BusinessInfo:
    __schema_name__ = "BusinessInfo"

    name: str
    timezone: str = attrs.field(metadata={"description": "An IANA time zone."})


@attrs.frozen
class Sla:
    """The service-level targets the dashboard measures against."""

    first_response_minutes: int


@attrs.frozen
class SettingsView:
    """The business's settings."""

    __schema_name__ = "Settings"

    version: int = attrs.field(
        metadata={"description": "Bumped by every change (canned responses' too)."}
    )
    business: BusinessInfo
    hours: WeekHours
    holidays: tuple[Holiday, ...]
    sla: Sla
    away_messages: tuple[AwayMessage, ...]
    channels: tuple[ChannelVariables, ...] | None = attrs.field(
        metadata={
            "description": "Each loaded channel's variables; null for a caller without"
            " settings:manage."
        }
    )
    updated_at: datetime | None
    updated_by: str | None = attrs.field(
        metadata={"description": "The id of the user or key that changed them last."}
    )


def settings_view(
    settings: Settings, channels: tuple[ChannelVariables, ...] | None
) -> SettingsView:
    return SettingsView(
        version=settings.version,
        business=BusinessInfo(settings.name, settings.timezone),
        hours=settings.hours,
        holidays=settings.holidays,
        sla=Sla(settings.first_response_minutes),
        away_messages=settings.away_messages,
        channels=channels,
        updated_at=settings.updated_at,
        updated_by=settings.updated_by,
    )

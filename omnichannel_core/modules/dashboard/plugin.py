"""The dashboard module's plugin: its hook implementations (entry point ``dashboard``).
docs/dashboard.md says what it shows and how each figure is defined."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from omnichannel_core.module import (
    BusinessSettings,
    Command,
    InboxHistory,
    InboxReader,
    Job,
    ModuleContext,
    PermissionSpec,
    Route,
    StoreSpec,
    Subscriber,
    hookimpl,
)
from omnichannel_core.modules.dashboard.commands import rebuild_command
from omnichannel_core.modules.dashboard.permissions import PERMISSIONS
from omnichannel_core.modules.dashboard.rollups import DEFAULT_SLA, Rollups
from omnichannel_core.modules.dashboard.routes import dashboard_routes
from omnichannel_core.modules.dashboard.store import DashboardStore, dashboard_store_spec

KEY_DAYS_MARGIN = 1.0
"""Counted keys are kept a day longer than the event log may keep an event."""


class DashboardModule:
    """The plugin (entry point ``omnichannel.modules: dashboard``)."""

    def __init__(self) -> None:
        self._rollups: dict[ModuleContext, Rollups] = {}

    def rollups(self, context: ModuleContext) -> Rollups:
        if context not in self._rollups:
            config = context.config
            self._rollups[context] = Rollups(
                context.store(DashboardStore),
                context.events,
                lambda: context.service(InboxReader),
                lambda: context.service(InboxHistory),
                lambda: context.optional_service(BusinessSettings),
                lambda: config.event_retention_max_hours / 24 + KEY_DAYS_MARGIN,
            )
        return self._rollups[context]

    @hookimpl
    def register_permissions(self) -> list[PermissionSpec]:
        return PERMISSIONS

    @hookimpl
    def register_stores(self) -> list[StoreSpec]:
        return [dashboard_store_spec()]

    @hookimpl
    def register_routes(self, context: ModuleContext) -> list[Route]:
        rollups = self.rollups(context)

        async def business() -> tuple[ZoneInfo, timedelta]:
            settings = context.optional_service(BusinessSettings)
            if settings is None:
                return ZoneInfo("UTC"), DEFAULT_SLA
            current = await settings.business()
            return current.zone, timedelta(minutes=current.first_response_sla_minutes)

        return dashboard_routes(rollups.store, context, business)

    @hookimpl
    def register_subscribers(self, context: ModuleContext) -> list[Subscriber]:
        return [self.rollups(context).subscriber()]

    @hookimpl
    def register_jobs(self, context: ModuleContext) -> list[Job]:
        return [self.rollups(context).prune_job()]

    @hookimpl
    def register_commands(self, context: ModuleContext) -> list[Command]:
        return [rebuild_command(context)]

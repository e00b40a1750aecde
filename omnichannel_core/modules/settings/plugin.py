"""The settings module's plugin: its hook implementations (entry point ``settings``).
docs/settings.md says what it does. It offers ``BusinessSettings`` (the dashboard's time zone
and SLA), hands the channels their stored variables (``config.stored_settings``), and sends
away messages through the inbox's ``AutomatedReplies``."""

from __future__ import annotations

from typing import Any

import attrs

from omnichannel_core.module import (
    AutomatedReplies,
    BulkSends,
    Business,
    BusinessSettings,
    Command,
    EventTypeSpec,
    InboxReader,
    ModuleContext,
    PermissionSpec,
    Route,
    StoreSpec,
    Subscriber,
    hookimpl,
    to_json,
)
from omnichannel_core.modules.settings.away import AwayMessages
from omnichannel_core.modules.settings.channel_values import ChannelValues
from omnichannel_core.modules.settings.commands import rotate_key
from omnichannel_core.modules.settings.permissions import PERMISSIONS, SETTINGS_READ
from omnichannel_core.modules.settings.refresh import Refresher
from omnichannel_core.modules.settings.routes import settings_routes
from omnichannel_core.modules.settings.service import SettingsService
from omnichannel_core.modules.settings.store import (
    SETTINGS_UPDATED,
    SettingsStore,
    settings_store_spec,
)
from omnichannel_core.modules.settings.view import settings_view


@attrs.frozen
class ProcessBusiness:
    """The :class:`BusinessSettings` service: the business as this process's settings
    describe it."""

    refresher: Refresher

    async def business(self) -> Business:
        return await self.refresher.business()


@attrs.frozen
class Parts:
    """What one server's settings module is made of (one per context)."""

    store: SettingsStore
    values: ChannelValues
    refresher: Refresher
    service: SettingsService


class SettingsModule:
    """The plugin (entry point ``omnichannel.modules: settings``)."""

    def __init__(self) -> None:
        self._parts: dict[ModuleContext, Parts] = {}

    def parts(self, context: ModuleContext) -> Parts:
        """This server's settings (one per context: each app has its own). The refresher
        loads them as each process starts and follows them until it stops."""
        if context not in self._parts:
            store = context.store(SettingsStore)
            values = ChannelValues(context.channels, context.config)
            refresher = Refresher(store, values, context.config.stored_settings)
            context.on_startup(refresher.start)
            context.on_shutdown(refresher.stop)
            service = SettingsService(store, values, context.channels, refresher)
            self._parts[context] = Parts(store, values, refresher, service)
        return self._parts[context]

    @hookimpl
    def register_permissions(self) -> list[PermissionSpec]:
        return PERMISSIONS

    @hookimpl
    def register_stores(self) -> list[StoreSpec]:
        return [settings_store_spec()]

    @hookimpl
    def register_services(self, context: ModuleContext) -> dict[type, Any]:
        return {BusinessSettings: ProcessBusiness(self.parts(context).refresher)}

    @hookimpl
    def register_event_types(self, context: ModuleContext) -> list[EventTypeSpec]:
        store = context.store(SettingsStore)

        async def load(record_id: str) -> Any:
            return to_json(settings_view(await store.get(), None))

        return [
            EventTypeSpec(
                SETTINGS_UPDATED,
                "settings",
                SETTINGS_READ,
                load,
                "the settings or the canned responses changed: read them again",
            )
        ]

    @hookimpl
    def register_routes(self, context: ModuleContext) -> list[Route]:
        return settings_routes(self.parts(context).service, context.config)

    @hookimpl
    def register_subscribers(self, context: ModuleContext) -> list[Subscriber]:
        parts = self.parts(context)
        away = AwayMessages(
            parts.refresher,
            parts.store,
            lambda: context.service(InboxReader),
            lambda: context.service(AutomatedReplies),
            lambda: context.service(BulkSends),
        )
        return [away.subscriber()]

    @hookimpl
    def register_commands(self, context: ModuleContext) -> list[Command]:
        parts = self.parts(context)
        return [rotate_key(parts.store, parts.values)]

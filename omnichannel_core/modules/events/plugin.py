"""The events module's plugin: its hook implementations (entry point ``events``)."""

from __future__ import annotations

from typing import Any

from omnichannel_core.module import InboxReader, LiveEvents, ModuleContext, Route, hookimpl
from omnichannel_core.modules.events.follow import HubEvents
from omnichannel_core.modules.events.hub import EventHub
from omnichannel_core.modules.events.stream import Events


class EventsModule:
    """The plugin (entry point ``omnichannel.modules: events``)."""

    def __init__(self) -> None:
        self._hubs: dict[ModuleContext, EventHub] = {}

    def hub(self, context: ModuleContext) -> EventHub:
        """The process's hub (one per context: each app has its own), built once every
        plugin declared its event types: by ``register_routes``, or the first follow."""
        if context not in self._hubs:
            hub = EventHub(
                context.events, context.news, context.event_types, context.service(InboxReader)
            )
            context.on_stopping(hub.stop_streams)
            context.on_shutdown(hub.close)
            self._hubs[context] = hub
        return self._hubs[context]

    @hookimpl
    def register_services(self, context: ModuleContext) -> dict[type, Any]:
        return {LiveEvents: HubEvents(lambda: self.hub(context))}

    @hookimpl
    def register_routes(self, context: ModuleContext) -> list[Route]:
        return [Route("/api/events", Events(self.hub(context)))]

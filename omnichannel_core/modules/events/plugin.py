"""The events module's plugin: its hook implementations (entry point ``events``)."""

from __future__ import annotations

from omnichannel_core.module import InboxReader, ModuleContext, Route, hookimpl
from omnichannel_core.modules.events.hub import EventHub
from omnichannel_core.modules.events.stream import Events


class EventsModule:
    """The plugin (entry point ``omnichannel.modules: events``)."""

    @hookimpl
    def register_routes(self, context: ModuleContext) -> list[Route]:
        hub = EventHub(
            context.events, context.news, context.event_types, context.service(InboxReader)
        )
        context.on_stopping(hub.stop_streams)
        context.on_shutdown(hub.close)
        return [Route("/api/events", Events(hub))]

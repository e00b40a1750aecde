"""The events module's plugin: its hook implementations (entry point ``events``)."""

from __future__ import annotations

from typing import Any

from omnichannel_core.module import (
    InboxReader,
    Job,
    JobControl,
    LiveEvents,
    ModuleContext,
    Presence,
    Route,
    StoreSpec,
    hookimpl,
)
from omnichannel_core.modules.events.follow import HubEvents
from omnichannel_core.modules.events.hub import EventHub
from omnichannel_core.modules.events.presence.routes import PresenceResource
from omnichannel_core.modules.events.presence.service import StoredPresence
from omnichannel_core.modules.events.presence.store import PresenceStore, presence_store_spec
from omnichannel_core.modules.events.presence.timing import presence_timing
from omnichannel_core.modules.events.presence.tracking import PresenceTracker
from omnichannel_core.modules.events.stream import Events


class EventsModule:
    """The plugin (entry point ``omnichannel.modules: events``)."""

    def __init__(self) -> None:
        self._hubs: dict[ModuleContext, EventHub] = {}
        self._presences: dict[ModuleContext, StoredPresence] = {}

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

    def presence(self, context: ModuleContext) -> StoredPresence:
        """Presence read from this server's store (one per context); ConfigError for a bad
        ``OMNICHANNEL_PRESENCE_TIMEOUT_SECONDS``."""
        if context not in self._presences:
            timing = presence_timing(context.config.environ)
            self._presences[context] = StoredPresence(context.store(PresenceStore), timing)
        return self._presences[context]

    @hookimpl
    def register_stores(self) -> list[StoreSpec]:
        return [presence_store_spec()]

    @hookimpl
    def register_services(self, context: ModuleContext) -> dict[type, Any]:
        return {LiveEvents: HubEvents(lambda: self.hub(context)), Presence: self.presence(context)}

    @hookimpl
    def register_routes(self, context: ModuleContext) -> list[Route]:
        presence = self.presence(context)
        tracker = PresenceTracker(presence.store, presence.timing)
        return [
            Route("/api/events", Events(self.hub(context), tracker)),
            Route("/api/presence", PresenceResource(presence)),
        ]

    @hookimpl
    def register_jobs(self, context: ModuleContext) -> list[Job]:
        presence = self.presence(context)

        async def prune(control: JobControl) -> None:
            await presence.prune()

        return [
            Job(
                "events.presence_prune",
                prune,
                every=presence.timing.timeout,
                description="delete the event streams not seen within the presence timeout",
            )
        ]

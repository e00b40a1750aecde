"""The application factory: ``create_app(config, plugins)``, and ``get_app()`` for gunicorn."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from datetime import timedelta
from types import FrameType
from typing import Any

import falcon
import falcon.asgi
import structlog

from omnichannel_core.access.service import Access
from omnichannel_core.access.tokens import TokenSigner
from omnichannel_core.auth import load_api_keys, signing_secret
from omnichannel_core.config import Config
from omnichannel_core.dispatch import ChannelDispatcher
from omnichannel_core.errors import PluginLoadError
from omnichannel_core.events.bus import EventBus, create_bus
from omnichannel_core.events.hub import EventHub
from omnichannel_core.events.retention import EventRetention
from omnichannel_core.inbox import Inbox
from omnichannel_core.logs import configure_logging
from omnichannel_core.plugins import LoadedPlugins, PluginFailure, load_plugins
from omnichannel_core.store import Store, open_store
from omnichannel_core.web.access_routes import mount_access
from omnichannel_core.web.channel_routes import UnknownChannel, channel_resources, mount_channel
from omnichannel_core.web.errors import install_error_handlers
from omnichannel_core.web.events_routes import mount_events
from omnichannel_core.web.inbox_routes import mount_inbox
from omnichannel_core.web.middleware import Authentication, RequestContext
from omnichannel_core.web.openapi import OpenApiDocument
from omnichannel_core.web.protection import protection_middleware
from omnichannel_core.web.system_routes import Health, Plugins, Root

log = structlog.get_logger("omnichannel.app")


class StoreLifespan:
    """Opens the store when the server starts and closes it when it stops."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def process_startup(self, scope: dict, event: dict) -> None:
        await self.store.open()

    async def process_shutdown(self, scope: dict, event: dict) -> None:
        await self.store.close()


class EventsLifespan:
    """Starts the event bus and the event log's pruning with the server; at shutdown, stops
    them and the hub that feeds the streams.

    A worker told to stop (SIGTERM, SIGINT) waits for its open responses to finish before
    it shuts down, and an event stream never finishes by itself: so the signal also ends
    the streams (chained before the server's own handler, which stays in charge)."""

    STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, bus: EventBus, hub: EventHub, retention: EventRetention) -> None:
        self.bus = bus
        self.hub = hub
        self.retention = retention
        self._previous: dict[int, Any] = {}

    async def process_startup(self, scope: dict, event: dict) -> None:
        await self.bus.start()  # a bus that cannot start stops the server, saying why
        self.retention.start()
        if threading.current_thread() is threading.main_thread():
            loop = asyncio.get_running_loop()
            for number in self.STOP_SIGNALS:
                previous = signal.getsignal(number)
                if callable(previous):
                    self._previous[number] = previous
                    signal.signal(number, self._chained(loop, previous))

    def _chained(self, loop: asyncio.AbstractEventLoop, previous: Callable) -> Callable:
        def on_stop_signal(number: int, frame: FrameType | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(self.hub.stop_streams)
            previous(number, frame)

        return on_stop_signal

    async def process_shutdown(self, scope: dict, event: dict) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous.clear()
        await self.retention.close()
        await self.hub.close()
        await self.bus.close()


class HookThreadsLifespan:
    """Stops the channels' hook thread pools when the server stops."""

    def __init__(self, dispatcher: ChannelDispatcher) -> None:
        self.dispatcher = dispatcher

    async def process_shutdown(self, scope: dict, event: dict) -> None:
        self.dispatcher.shutdown()


def log_plugin_failure(failure: PluginFailure) -> None:
    log.error(
        "plugin_load_failed",
        plugin=failure.name,
        distribution=failure.distribution,
        entry_point=failure.source,
        error=failure.error,
    )


def log_plugin_failures(plugins: LoadedPlugins) -> None:
    for failure in plugins.failures:
        log_plugin_failure(failure)
    for name in plugins.disabled:
        log.info("plugin_disabled", plugin=name)


def mount_channels(app: falcon.asgi.App, inbox: Inbox, config: Config) -> None:
    """Mount every channel's routes. A channel whose routes cannot be mounted is unloaded
    and recorded as a failed plugin; the other channels serve."""
    plugins = inbox.dispatcher.plugins
    for channel in inbox.dispatcher.channels:
        try:
            resources = channel_resources(channel, inbox, config)
        except PluginLoadError as error:
            log_plugin_failure(plugins.drop_channel(channel, error.message))
            continue
        except Exception as error:
            reason = f"channel_routes raised {type(error).__name__}: {error}"
            log_plugin_failure(plugins.drop_channel(channel, reason))
            continue
        mount_channel(app, channel, resources)


def create_access(store: Store, config: Config) -> Access:
    """Access on ``store``, with the server's signing secret and bootstrap key."""
    signer = TokenSigner(signing_secret(config), timedelta(minutes=config.access_token_minutes))
    return Access(store, config, signer, load_api_keys(config))


def create_app(
    config: Config, plugins: LoadedPlugins | None = None, store: Store | None = None
) -> falcon.asgi.App:
    """Build the ASGI app.

    :param config: the settings.
    :param plugins: the loaded plugins; discovered from entry points and the plugins folder
        when not given.
    :param store: the store; opened from ``config.store_url`` when not given.
    """
    if plugins is None:
        plugins = load_plugins(config.plugins_dir, config.disabled_plugins)
        log_plugin_failures(plugins)
    store = store or open_store(config.store_url)
    dispatcher = ChannelDispatcher(plugins, threads_per_channel=config.hook_threads)
    inbox = Inbox(store, dispatcher, config)
    access = create_access(store, config)
    bus = create_bus(config)
    store.on_events_logged(bus.ring)
    hub = EventHub(store, bus)
    retention = EventRetention(store, timedelta(hours=config.event_retention_hours))

    app = falcon.asgi.App(
        middleware=[
            StoreLifespan(store),
            EventsLifespan(bus, hub, retention),
            HookThreadsLifespan(dispatcher),
            RequestContext(),
            *protection_middleware(config),
            Authentication(access),
        ]
    )
    app.req_options.strip_url_path_trailing_slash = True
    install_error_handlers(app)

    app.add_route("/", Root(inbox))
    app.add_route("/health", Health(inbox, plugins))
    app.add_route("/api/plugins", Plugins(plugins))
    app.add_route("/api/openapi.json", OpenApiDocument())
    mount_access(app, access, config)
    mount_inbox(app, inbox, access, config)
    mount_events(app, hub)
    mount_channels(app, inbox, config)
    failed = [failure.name for failure in plugins.failures if failure.kind == "channel"]
    unknown = UnknownChannel(inbox.dispatcher.channels, failed)
    app.add_route("/api/channels/{name}/{rest:path}", unknown)
    app.add_route("/api/channels/{name}", unknown)
    return app


def get_app() -> falcon.asgi.App:
    """The app as configured by the environment; gunicorn calls this in each worker."""
    config = Config.from_environ()
    configure_logging(config)
    return create_app(config)

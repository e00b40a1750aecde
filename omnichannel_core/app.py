"""Assembling the server: ``create_app(config, plugins)``, and ``get_app()`` for gunicorn.

:func:`build_registry` loads the plugins (the core's own first, then the modules, channels
and the rest) and collects what they contribute (`omnichannel_core.plugins.registry`);
:func:`create_app` mounts the routes they registered behind the kernel's middleware. The job
runner (`omnichannel_core.worker`) builds the same registry and runs its jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

import falcon
import falcon.asgi
import structlog

from omnichannel_core.config import Config
from omnichannel_core.errors import ConfigError
from omnichannel_core.logs import configure_logging
from omnichannel_core.plugins.channels import Channels
from omnichannel_core.plugins.dispatch import ChannelDispatcher
from omnichannel_core.plugins.loading import LoadedPlugins, load_plugins
from omnichannel_core.plugins.registry import Registry
from omnichannel_core.store import Database, open_database
from omnichannel_core.web.errors import install_error_handlers
from omnichannel_core.web.middleware import Authentication, BodyReading, RequestContext
from omnichannel_core.web.mounting import Mounts
from omnichannel_core.web.protection import protection_middleware

log = structlog.get_logger("omnichannel.app")


FAILURES_REPORTED_VARIABLE = "OMNICHANNEL_PLUGIN_FAILURES_REPORTED"
"""Set by the server's master once it has logged what failed to load: the processes it
starts (each web worker, the job runner) load the same plugins and say nothing again."""


def log_plugin_failures(plugins: LoadedPlugins) -> None:
    """One ``plugin_load_failed`` line per plugin that failed (to load, or later, unloaded
    for what it contributed), one ``plugin_disabled`` per disabled one, and a warning for a
    name to disable that no plugin has."""
    for failure in plugins.failures:
        log.error(
            "plugin_load_failed",
            plugin=failure.name,
            distribution=failure.distribution,
            entry_point=failure.source,
            error=failure.error,
        )
    for name in plugins.disabled:
        log.info("plugin_disabled", plugin=name)
    for name in plugins.disabled_unknown:
        log.warning(
            "plugin_to_disable_not_found", plugin=name, variable="OMNICHANNEL_DISABLE_PLUGINS"
        )


def build_registry(
    config: Config, plugins: LoadedPlugins | None = None, database: Database | None = None
) -> Registry:
    """Load the plugins (unless given) and collect what they contribute, on ``database``
    (the one ``config.store_url`` names, unless given; nothing is opened yet). What failed
    is logged, unless the process that started this one already did."""
    if plugins is None:
        plugins = load_plugins(config.plugins_dir, config.disabled_plugins)
    database = database or open_database(config.store_url)
    dispatcher = ChannelDispatcher(plugins, threads_per_channel=config.hook_threads)
    registry = Registry(plugins, config, database, Channels(plugins, dispatcher)).collect()
    if os.environ.get(FAILURES_REPORTED_VARIABLE) != "1":
        log_plugin_failures(plugins)
    return registry


class Lifespan:
    """Each process's start and stop: the stores and the event bus, and what plugins asked
    to run then (``context.on_startup``, ``on_shutdown``).

    A worker told to stop (SIGTERM, SIGINT) waits for its open responses to finish before
    it shuts down, and an event stream never finishes by itself: so the signal also runs the
    plugins' ``on_stopping`` callbacks (chained before the server's own handler, which stays
    in charge)."""

    STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._previous: dict[int, Any] = {}

    async def process_startup(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        await self.registry.open_stores()
        await self.registry.bus.start()  # a bus that cannot start stops the server, saying why
        for callback in self.registry.startup_callbacks:
            await callback()
        if threading.current_thread() is threading.main_thread():
            loop = asyncio.get_running_loop()
            for number in self.STOP_SIGNALS:
                previous = signal.getsignal(number)
                if callable(previous):
                    self._previous[number] = previous
                    signal.signal(number, self._chained(loop, previous))

    def _chained(self, loop: asyncio.AbstractEventLoop, previous: Callable[..., Any]) -> Any:
        def on_stop_signal(number: int, frame: FrameType | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(self.stopping)
            previous(number, frame)

        return on_stop_signal

    def stopping(self) -> None:
        for callback in self.registry.stopping_callbacks:
            try:
                callback()
            except Exception:
                log.exception("stopping_callback_failed")

    async def process_shutdown(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous.clear()
        for callback in self.registry.shutdown_callbacks:
            try:
                await callback()
            except Exception:
                log.exception("shutdown_callback_failed")
        await self.registry.news.close()
        await self.registry.bus.close()
        self.registry.channels.shutdown()
        await self.registry.close_stores()


def create_app(
    config: Config, plugins: LoadedPlugins | None = None, database: Database | None = None
) -> falcon.asgi.App:
    """Build the ASGI app.

    :param config: the settings.
    :param plugins: the loaded plugins; discovered from entry points and the plugins folder
        when not given.
    :param database: the database; the one ``config.store_url`` names when not given.
    """
    return assemble(config, plugins, database)[0]


def assemble(
    config: Config, plugins: LoadedPlugins | None = None, database: Database | None = None
) -> tuple[falcon.asgi.App, Registry]:
    """The ASGI app and the registry it serves (:func:`create_app`'s arguments)."""
    registry = build_registry(config, plugins, database)
    mounts = Mounts(config)
    authentication = Authentication(mounts, registry.authenticators)
    app = falcon.asgi.App(
        middleware=[
            Lifespan(registry),
            RequestContext(),
            *protection_middleware(config, mounts),
            authentication,
            BodyReading(mounts, config.max_body_bytes),
        ]
    )
    app.req_options.strip_url_path_trailing_slash = True
    install_error_handlers(app)
    mounts.mount_all(app, registry.routes)
    return app, registry


def get_app() -> falcon.asgi.App:
    """The app as configured by the environment; gunicorn calls this in each worker."""
    config = Config.from_environ()
    configure_logging(config)
    return create_app(config)


def prepare_stores() -> None:
    """Open every store of the configured server once (applying its migrations), then close
    it: what gunicorn's master has done before forking its workers. Run in a process of its
    own (:data:`PREPARE_STORES_COMMAND`): a store's client may leave threads and gRPC
    state behind (Firestore's does), and workers forked from a process holding them can
    hang in their first call. Exits 2 with one line when the configuration is refused."""
    config = Config.from_environ()
    configure_logging(config)

    async def migrate() -> None:
        registry = build_registry(config)
        await registry.open_stores()
        await registry.close_stores()

    try:
        asyncio.run(migrate())
    except ConfigError as error:  # e.g. a store path that cannot be created or opened
        sys.stderr.write(f"omnichannel: {error.message}\n")
        raise SystemExit(2) from None


PREPARE_STORES_COMMAND = ("-c", "from omnichannel_core.app import prepare_stores; prepare_stores()")
"""``python`` arguments that run :func:`prepare_stores`."""

"""What the plugins contribute through the module hooks, collected and checked at start-up.

The registry calls each ``register_*`` hook for each plugin on its own, phase by phase in
the order of `omnichannel_core.hookspecs` (permissions, stores, services, event types,
authenticators, routes, subscribers, jobs), so a later phase can use what earlier ones
made (a route's permission must exist; a service can use its module's store). Each result
is checked; a plugin whose hook raises or returns something invalid is unloaded, with
everything it contributed, and reported as a failed plugin (``/health``, ``/api/plugins``,
``omnichannel plugins``) naming the hook and the reason. The core's own plugin is never
unloaded: a problem there stops start-up.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import attrs
import structlog

from omnichannel_core.bus.bus import create_bus
from omnichannel_core.bus.news import News
from omnichannel_core.commands import CORE_COMMANDS, Command
from omnichannel_core.config import Config
from omnichannel_core.events.records import EventTypeSpec
from omnichannel_core.jobs.specs import Job, Subscriber
from omnichannel_core.jobs.subscribers import start_subscriber
from omnichannel_core.plugins.bridge import original_coroutine
from omnichannel_core.plugins.channels import Channels
from omnichannel_core.plugins.context import Authenticator, CoreContext, ModuleContext
from omnichannel_core.plugins.loading import LoadedPlugin, LoadedPlugins
from omnichannel_core.plugins.settling import missing_dependency
from omnichannel_core.policy import PermissionSpec, Policy
from omnichannel_core.route_checks import (
    RouteProblem,
    check_route,
    check_schemas,
    check_templates,
)
from omnichannel_core.routes import Route
from omnichannel_core.store import Database
from omnichannel_core.store.protocols import AuditLog, EventLog, JobStore
from omnichannel_core.store.specs import StoreSpec

log = structlog.get_logger("omnichannel.plugins")

T = TypeVar("T")

PHASES = (
    "register_permissions",
    "register_stores",
    "register_services",
    "register_event_types",
    "register_authenticators",
    "register_routes",
    "register_subscribers",
    "register_jobs",
    "register_commands",
)

Lifecycle = Callable[[], Awaitable[None]]


class ContributionRefused(Exception):
    """A plugin's hook gave something the core cannot take; the plugin is unloaded."""


@attrs.define
class Contributions:
    """Everything one plugin contributed."""

    permissions: list[PermissionSpec] = attrs.field(factory=list)
    stores: list[StoreSpec] = attrs.field(factory=list)
    store_objects: dict[type, Any] = attrs.field(factory=dict)
    services: dict[type, Any] = attrs.field(factory=dict)
    event_types: list[EventTypeSpec] = attrs.field(factory=list)
    authenticators: list[Authenticator] = attrs.field(factory=list)
    routes: list[Route] = attrs.field(factory=list)
    subscribers: list[Subscriber] = attrs.field(factory=list)
    jobs: list[Job] = attrs.field(factory=list)
    commands: list[Command] = attrs.field(factory=list)
    startup: list[Lifecycle] = attrs.field(factory=list)
    shutdown: list[Lifecycle] = attrs.field(factory=list)
    stopping: list[Callable[[], None]] = attrs.field(factory=list)


class Registry:
    """The plugins' contributions, by plugin, in registration order.

    :param plugins: what the loader registered.
    :param config: the server's configuration.
    :param database: the database the stores are built on (not opened yet).
    :param channels: the channels' face (`omnichannel_core.plugins.channels`).
    """

    def __init__(
        self, plugins: LoadedPlugins, config: Config, database: Database, channels: Channels
    ) -> None:
        self.plugins = plugins
        self.config = config
        self.database = database
        self.channels = channels
        self.bus = create_bus(config, database.data_version)
        """How this process learns that the log grew (started with the process)."""
        self.news = News(self.bus)
        """Every reader of the log in this process, woken by the bus."""
        database.on_events_logged(self.bus.ring)
        self._policy: Policy | None = None
        self._by_plugin: dict[int, Contributions] = {}
        self._contexts: dict[int, ModuleContext] = {}
        self._services_used: dict[int, set[type]] = {}
        """By plugin: the interfaces it asked for with ``context.service``."""

    # collecting ------------------------------------------------------------------------

    def collect(self) -> Registry:
        """Run every phase for every plugin, then unload those that lost what they needed
        from a plugin unloaded after them (`plugins.settling`); returns self."""
        for phase in PHASES:
            for entry in list(self.plugins.loaded):
                if entry in self.plugins.loaded:  # not unloaded meanwhile
                    self._run(entry, phase)
            if phase == "register_permissions":
                self._policy = Policy(self._all(lambda c: c.permissions))
        self._settle()
        return self

    def _settle(self) -> None:
        unsettled = True
        while unsettled:
            unsettled = False
            for entry, contributions in self._owned():
                if entry.info.kind == "core":
                    continue
                missing = missing_dependency(
                    routes=contributions.routes,
                    event_types=contributions.event_types,
                    subscribers=contributions.subscribers,
                    services_used=self._services_used.get(id(entry.plugin), ()),
                    policy=self.policy,
                    known_event_types=self.event_types,
                    offered_services=set(self._all(lambda c: list(c.services))),
                )
                if missing is not None:
                    self._unload(entry, missing)
                    unsettled = True
                    break

    def _run(self, entry: LoadedPlugin, phase: str) -> None:
        context = self.context(entry)
        try:
            result = self._call(entry, phase, context)
            if result is not None:
                getattr(self, "_take_" + phase.removeprefix("register_"))(entry, result)
        except ContributionRefused as refusal:
            self._unload(entry, f"{phase}: {refusal}")
        except Exception as error:
            if entry.info.kind == "core":
                raise
            log.exception("plugin_hook_crashed", plugin=entry.info.name, hook=phase)
            self._unload(entry, f"{phase} raised {type(error).__name__}: {error}")

    def _call(self, entry: LoadedPlugin, phase: str, context: ModuleContext) -> Any:
        hook = getattr(self.plugins.manager.hook, phase)
        impls = [impl for impl in hook.get_hookimpls() if impl.plugin is entry.plugin]
        if not impls:
            return None
        (impl,) = impls
        if original_coroutine(impl.function) is not None:
            raise ContributionRefused("must be a plain function, not async")
        arguments = {"context": context}
        return impl.function(**{name: arguments[name] for name in impl.argnames})

    def _unload(self, entry: LoadedPlugin, reason: str) -> None:
        if entry.info.kind == "core":
            raise RuntimeError(f"the core's own plugin: {reason}")
        withdrawn = self._by_plugin.pop(id(entry.plugin), None)
        if withdrawn is not None and self._policy is not None:
            self._policy.withdraw(spec.name for spec in withdrawn.permissions)
        self.plugins.drop(entry.plugin, reason)

    def context(self, entry: LoadedPlugin) -> ModuleContext:
        """The plugin's own context (made once)."""
        key = id(entry.plugin)
        if key not in self._contexts:
            kind = CoreContext if entry.info.kind == "core" else ModuleContext
            channel = entry.info.kind == "channel"
            self._contexts[key] = kind(self, entry.info.name, channel=channel)
        return self._contexts[key]

    def _mine(self, entry: LoadedPlugin) -> Contributions:
        return self._by_plugin.setdefault(id(entry.plugin), Contributions())

    def _all(self, pick: Callable[[Contributions], list[T]]) -> list[T]:
        return [
            item
            for entry in self.plugins.loaded
            for item in pick(self._by_plugin.get(id(entry.plugin), Contributions()))
        ]

    def _owned(self) -> list[tuple[LoadedPlugin, Contributions]]:
        return [
            (entry, self._by_plugin[id(entry.plugin)])
            for entry in self.plugins.loaded
            if id(entry.plugin) in self._by_plugin
        ]

    # each phase's check ----------------------------------------------------------------

    @staticmethod
    def _items(result: Any, kind: type, what: str) -> list[Any]:
        if not isinstance(result, list | tuple):
            raise ContributionRefused(f"must return a list of {what}, not {type(result).__name__}")
        for item in result:
            if not isinstance(item, kind):
                raise ContributionRefused(f"returned a {type(item).__name__}, not a {what}")
        return list(result)

    def _take_permissions(self, entry: LoadedPlugin, result: Any) -> None:
        specs = self._items(result, PermissionSpec, "PermissionSpec")
        taken = {spec.name for spec in self._all(lambda c: c.permissions)}
        for spec in specs:
            if spec.name in taken:
                raise ContributionRefused(f"permission {spec.name!r} is contributed already")
            taken.add(spec.name)
        self._mine(entry).permissions.extend(specs)

    def _take_stores(self, entry: LoadedPlugin, result: Any) -> None:
        specs = self._items(result, StoreSpec, "StoreSpec")
        names = {spec.name for spec in self._all(lambda c: c.stores)}
        built: dict[type, Any] = {}
        for spec in specs:
            if spec.name in names:
                raise ContributionRefused(f"store {spec.name!r} is registered already")
            names.add(spec.name)
            factory = spec.factory(self.database.backend)
            if factory is None:
                raise ContributionRefused(
                    f"store {spec.name!r} has no {self.database.backend} implementation"
                    " (OMNICHANNEL_STORE)"
                )
            built[spec.interface] = factory(self.database)
        mine = self._mine(entry)
        mine.stores.extend(specs)
        mine.store_objects.update(built)

    def _take_services(self, entry: LoadedPlugin, result: Any) -> None:
        if not isinstance(result, Mapping):
            raise ContributionRefused("must return a mapping {Interface: implementation}")
        offered = set(self._all(lambda c: list(c.services)))
        for interface in result:
            if not isinstance(interface, type):
                raise ContributionRefused(f"a service's key must be a class, not {interface!r}")
            if interface in offered:
                raise ContributionRefused(f"{interface.__name__} is offered already")
        self._mine(entry).services.update(result)

    def _take_event_types(self, entry: LoadedPlugin, result: Any) -> None:
        specs = self._items(result, EventTypeSpec, "EventTypeSpec")
        names = {spec.name for spec in self._all(lambda c: c.event_types)}
        for spec in specs:
            if spec.name in names:
                raise ContributionRefused(f"event type {spec.name!r} is declared already")
            if not self.policy.knows(spec.permission):
                raise ContributionRefused(
                    f"event type {spec.name!r} needs unknown permission {spec.permission!r}"
                )
            names.add(spec.name)
        self._mine(entry).event_types.extend(specs)

    def _take_authenticators(self, entry: LoadedPlugin, result: Any) -> None:
        if not isinstance(result, list | tuple) or not all(
            inspect.iscoroutinefunction(item) for item in result
        ):
            raise ContributionRefused("must return a list of async functions")
        self._mine(entry).authenticators.extend(result)

    def _take_routes(self, entry: LoadedPlugin, result: Any) -> None:
        routes = self._items(result, Route, "Route")
        served = {route.path for route in self._all(lambda c: c.routes)}
        # The protection of a request is found by its resource: one resource, one policy.
        by_resource = {id(route.resource): route for route in self._all(lambda c: c.routes)}
        for route in routes:
            if route.path in served:
                raise ContributionRefused(f"route {route.path!r} is served already")
            earlier = by_resource.setdefault(id(route.resource), route)
            if earlier.policy != route.policy:
                raise ContributionRefused(
                    f"route {route.path!r} serves the resource of {earlier.path!r} under"
                    " another RoutePolicy: give each route its own resource"
                )
            try:
                check_route(route, self.policy)
            except RouteProblem as problem:
                raise ContributionRefused(str(problem)) from None
            served.add(route.path)
        try:
            check_templates([*self._all(lambda c: c.routes), *routes])
            check_schemas([*self._all(lambda c: c.routes), *routes])
        except RouteProblem as problem:
            raise ContributionRefused(str(problem)) from None
        self._mine(entry).routes.extend(routes)

    def _take_subscribers(self, entry: LoadedPlugin, result: Any) -> None:
        subscribers = self._items(result, Subscriber, "Subscriber")
        names = {subscriber.name for subscriber in self._all(lambda c: c.subscribers)}
        known = {spec.name for spec in self._all(lambda c: c.event_types)}
        for subscriber in subscribers:
            if subscriber.name in names:
                raise ContributionRefused(f"subscriber {subscriber.name!r} is registered already")
            unknown = sorted((subscriber.types or frozenset()) - known)
            if unknown:
                raise ContributionRefused(
                    f"subscriber {subscriber.name!r} wants unknown event types: {unknown}"
                )
            names.add(subscriber.name)
        self._mine(entry).subscribers.extend(subscribers)

    def _take_jobs(self, entry: LoadedPlugin, result: Any) -> None:
        jobs = self._items(result, Job, "Job")
        if entry.info.kind == "core":  # its names are its own: a subscriber taking one goes
            self._unload_subscribers_named({job.name for job in jobs})
        names = {job.name for job in self._all(lambda c: c.jobs)}
        names |= {subscriber.name for subscriber in self._all(lambda c: c.subscribers)}
        for job in jobs:
            if job.name in names:
                raise ContributionRefused(f"job {job.name!r} is registered already")
            names.add(job.name)
        self._mine(entry).jobs.extend(jobs)

    def _unload_subscribers_named(self, names: set[str]) -> None:
        """Jobs and subscribers share one namespace (the runner's leases); the core's jobs
        come in a later phase than plugins' subscribers, yet keep their names."""
        for other, contributions in self._owned():
            taken = sorted(names & {subscriber.name for subscriber in contributions.subscribers})
            if taken and other.info.kind != "core":
                self._unload(other, f"register_subscribers: {taken[0]!r} is a job of the core's")

    def _take_commands(self, entry: LoadedPlugin, result: Any) -> None:
        commands = self._items(result, Command, "Command")
        taken = {(command.group, command.name) for command in self._all(lambda c: c.commands)}
        for command in commands:
            if command.group in CORE_COMMANDS:
                raise ContributionRefused(
                    f"command group {command.group!r} is the core's own command"
                    f" ({', '.join(CORE_COMMANDS)} are)"
                )
            if (command.group, command.name) in taken:
                raise ContributionRefused(f"command {command.group} {command.name} exists already")
            taken.add((command.group, command.name))
        self._mine(entry).commands.extend(commands)

    # lifecycle callbacks, registered through the context --------------------------------

    def on_startup(self, owner: ModuleContext, callback: Lifecycle) -> None:
        self._mine_by_context(owner).startup.append(callback)

    def on_shutdown(self, owner: ModuleContext, callback: Lifecycle) -> None:
        self._mine_by_context(owner).shutdown.append(callback)

    def on_stopping(self, owner: ModuleContext, callback: Callable[[], None]) -> None:
        self._mine_by_context(owner).stopping.append(callback)

    def _mine_by_context(self, context: ModuleContext) -> Contributions:
        for entry in self.plugins.loaded:
            if self._contexts.get(id(entry.plugin)) is context:
                return self._mine(entry)
        raise LookupError(f"{context!r} belongs to no loaded plugin")

    # what the rest of the core reads ---------------------------------------------------

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            raise RuntimeError("the policy is built once every plugin gave its permissions")
        return self._policy

    @property
    def store_specs(self) -> list[StoreSpec]:
        """Every store, the core's first, in registration order (the migrations' order)."""
        return self._all(lambda c: c.stores)

    def store_of(self, owner: str, interface: type[T]) -> T:
        for entry, contributions in self._owned():
            if entry.info.name == owner and interface in contributions.store_objects:
                store: T = contributions.store_objects[interface]
                return store
        raise KeyError(f"{owner} registered no store {interface.__name__}")

    def _core_store(self, interface: type[T]) -> T:
        return self.store_of("core", interface)

    @property
    def event_log(self) -> EventLog:
        return self._core_store(EventLog)

    @property
    def audit_log(self) -> AuditLog:
        return self._core_store(AuditLog)

    @property
    def job_store(self) -> JobStore:
        return self._core_store(JobStore)

    def service(self, interface: type[T], user: ModuleContext | None = None) -> T:
        """The service offered under ``interface``; ``user``, the context asking, is
        remembered as depending on it."""
        if user is not None:
            for entry in self.plugins.loaded:
                if self._contexts.get(id(entry.plugin)) is user:
                    self._services_used.setdefault(id(entry.plugin), set()).add(interface)
        for _, contributions in self._owned():
            if interface in contributions.services:
                service: T = contributions.services[interface]
                return service
        raise LookupError(
            f"no loaded plugin offers {interface.__name__} (is the module that provides it"
            " installed, enabled, and loaded? GET /api/plugins says)"
        )

    @property
    def event_types(self) -> dict[str, EventTypeSpec]:
        return {spec.name: spec for spec in self._all(lambda c: c.event_types)}

    @property
    def authenticators(self) -> list[Authenticator]:
        return self._all(lambda c: c.authenticators)

    @property
    def routes(self) -> list[tuple[str, Route]]:
        """Every route with the name of the plugin that serves it."""
        return [
            (entry.info.name, route)
            for entry, contributions in self._owned()
            for route in contributions.routes
        ]

    @property
    def subscribers(self) -> list[Subscriber]:
        return self._all(lambda c: c.subscribers)

    @property
    def jobs(self) -> list[Job]:
        return self._all(lambda c: c.jobs)

    @property
    def commands(self) -> list[Command]:
        return self._all(lambda c: c.commands)

    @property
    def startup_callbacks(self) -> list[Lifecycle]:
        return self._all(lambda c: c.startup)

    @property
    def shutdown_callbacks(self) -> list[Lifecycle]:
        return self._all(lambda c: c.shutdown)

    @property
    def stopping_callbacks(self) -> list[Callable[[], None]]:
        return self._all(lambda c: c.stopping)

    # the database ----------------------------------------------------------------------

    async def open_stores(self) -> None:
        """Migrate every store (idempotent; under the database's own lock), open the
        database for this process, and give each new event subscriber its first cursor."""
        await self.database.migrate(self.store_specs)
        await self.database.open()
        for subscriber in self.subscribers:
            await start_subscriber(subscriber, self.job_store, self.event_log)

    async def close_stores(self) -> None:
        await self.database.close()

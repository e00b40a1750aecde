"""Plugin discovery: the core's own plugin, modules, channels, cross-cutting plugins and
local plugin files, all into one plugin manager.

- the core itself, first: the kernel's own routes, stores and jobs, registered through the
  same hooks as any module's (:data:`CORE_PLUGIN`);
- modules from the ``omnichannel.modules`` entry point group, the built-in ones (inbox,
  access, events) included: omnichannel-core declares them like any distribution would;
- channels from ``omnichannel.channels`` (the entry point's name is the channel's name);
- cross-cutting plugins from ``omnichannel.plugins`` and from the modules of the local
  plugins folder.

A plugin that fails to load is recorded with its distribution and entry point and logged;
the rest of the server starts. ``OMNICHANNEL_DISABLE_PLUGINS`` names plugins (module,
channel, entry point or local module names) not to load; the core's own cannot be.

Only a channel implements the channel hooks plainly: a plain ``send`` in any other plugin
would answer for every channel, so it is a load failure; others may wrap them
(``wrapper=True``). Any plugin may implement the module hooks (``register_*``).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import attrs
import pluggy

from omnichannel_core import PROJECT_NAME, hookspecs
from omnichannel_core.plugins.bridge import BridgedPlugin

CHANNEL_GROUP = "omnichannel.channels"
MODULE_GROUP = "omnichannel.modules"
PLUGIN_GROUP = "omnichannel.plugins"
CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
MODULE_NAME = CHANNEL_NAME
CHANNEL_HOOKS = frozenset(
    name
    for name, spec in vars(hookspecs).items()
    if hasattr(spec, f"{PROJECT_NAME}_spec") and not name.startswith("register_")
)
"""Every hook but the module hooks (``register_*``): dispatched per channel, and only a
channel implements them plainly (others wrap them)."""
CORE_PLUGIN = "omnichannel_core.system.plugin:SystemPlugin"
"""The kernel's own plugin: registered first, never disabled."""


@attrs.frozen
class PluginInfo:
    """One loaded plugin, as ``GET /api/plugins`` and ``omnichannel plugins`` show it."""

    name: str
    kind: str  # "core" | "module" | "channel" | "plugin" | "local"
    distribution: str | None
    version: str | None
    source: str
    hooks: tuple[str, ...]


@attrs.frozen
class PluginFailure:
    """A plugin that did not load, and why."""

    name: str
    kind: str
    distribution: str | None
    source: str
    error: str


@attrs.frozen
class LoadedPlugin:
    """A registered plugin: what pluggy holds, and how users know it."""

    plugin: object
    info: PluginInfo


@attrs.define
class LoadedPlugins:
    """The plugin manager and what went into it, in registration order."""

    manager: pluggy.PluginManager
    channels: dict[str, object] = attrs.field(factory=dict)
    loaded: list[LoadedPlugin] = attrs.field(factory=list)
    failures: list[PluginFailure] = attrs.field(factory=list)
    disabled: list[str] = attrs.field(factory=list)
    disabled_channels: list[str] = attrs.field(factory=list)
    """The channels among ``disabled`` (their routes say so)."""
    disabled_unknown: list[str] = attrs.field(factory=list)
    """Names ``OMNICHANNEL_DISABLE_PLUGINS`` gives that no plugin has (a typo?)."""

    @property
    def info(self) -> list[PluginInfo]:
        return [entry.info for entry in self.loaded]

    def describe(self, plugin: object) -> tuple[str, ...]:
        return tuple(sorted(caller.name for caller in self.manager.get_hookcallers(plugin) or ()))

    def drop(self, plugin: object, error: str) -> PluginFailure:
        """Unload a registered plugin that turned out unusable (a ``register_*`` or
        ``channel_routes`` hook raised or returned something invalid): it leaves the manager
        and the list of plugins, and joins the failures."""
        (entry,) = [entry for entry in self.loaded if entry.plugin is plugin]
        if entry.info.kind == "core":
            raise RuntimeError(f"the core's own plugin failed: {error}")
        self.loaded.remove(entry)
        self.manager.unregister(plugin)
        if entry.info.kind == "channel":
            self.channels.pop(entry.info.name, None)
        info = entry.info
        failure = PluginFailure(info.name, info.kind, info.distribution, info.source, error)
        self.failures.append(failure)
        return failure

    def drop_channel(self, name: str, error: str) -> PluginFailure:
        """Unload the channel ``name``."""
        return self.drop(self.channels[name], error)


def plain_channel_hooks(manager: pluggy.PluginManager, plugin: object) -> list[str]:
    """The channel hooks ``plugin`` implements without ``wrapper=True``."""
    return sorted(
        caller.name
        for caller in manager.get_hookcallers(plugin) or ()
        if caller.name in CHANNEL_HOOKS
        for impl in caller.get_hookimpls()
        if impl.plugin is plugin and not impl.wrapper and not impl.hookwrapper
    )


def new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return manager


def _instantiate(obj: Any) -> object:
    """Entry points may name a module, an object or a class (instantiated without arguments)."""
    return obj() if inspect.isclass(obj) else obj


def _entry_point_source(entry_point: EntryPoint) -> str:
    return f"{entry_point.group}:{entry_point.name} = {entry_point.value}"


class _Loader:
    def __init__(self, loaded: LoadedPlugins, disabled: Iterable[str]) -> None:
        self.loaded = loaded
        self.disabled = set(disabled)

    def register(
        self,
        plugin: object,
        *,
        name: str,
        kind: str,
        distribution: str | None,
        version: str | None,
        source: str,
    ) -> object | None:
        """Register ``plugin`` (bridged); returns what pluggy holds, or None on failure.

        ``name`` is the name users see and disable; pluggy holds channels under their name and
        other plugins under ``<kind>:<name>``, so a plugin may share a channel's name.
        """
        if kind in ("module", "channel") and not MODULE_NAME.match(name):
            self.fail(
                name, kind, distribution, source, f"{kind} names must match {MODULE_NAME.pattern}"
            )
            return None
        manager = self.loaded.manager
        plugin = BridgedPlugin(plugin)
        try:
            manager.register(plugin, name=name if kind == "channel" else f"{kind}:{name}")
        except pluggy.PluginValidationError as error:  # a hook's arguments its spec lacks
            self.fail(name, kind, distribution, source, str(error))
            return None
        except ValueError as error:  # duplicate name or object
            self.fail(name, kind, distribution, source, f"not registered: {error}")
            return None
        try:
            manager.check_pending()
        except pluggy.PluginValidationError as error:
            manager.unregister(plugin)
            self.fail(name, kind, distribution, source, str(error))
            return None
        plain = plain_channel_hooks(manager, plugin) if kind != "channel" else []
        if plain:
            manager.unregister(plugin)
            reason = (
                "only a channel implements channel hooks; other plugins may only wrap them: "
                + ", ".join(plain)
                + (" is" if len(plain) == 1 else " are")
                + " not wrapper=True"
            )
            self.fail(name, kind, distribution, source, reason)
            return None
        info = PluginInfo(name, kind, distribution, version, source, self.loaded.describe(plugin))
        self.loaded.loaded.append(LoadedPlugin(plugin, info))
        return plugin

    def fail(self, name: str, kind: str, distribution: str | None, source: str, error: str) -> None:
        self.loaded.failures.append(PluginFailure(name, kind, distribution, source, error))

    def load_entry_point(self, entry_point: EntryPoint, kind: str) -> None:
        dist = entry_point.dist
        distribution = dist.metadata["Name"] if dist is not None else None
        version = dist.version if dist is not None else None
        source = _entry_point_source(entry_point)
        name = entry_point.name
        if name in self.disabled:
            self.loaded.disabled.append(name)
            if kind == "channel":
                self.loaded.disabled_channels.append(name)
            return
        if kind == "channel" and name in self.loaded.channels:
            self.fail(name, kind, distribution, source, f"channel {name!r} is already provided")
            return
        try:
            plugin = _instantiate(entry_point.load())
        except Exception as error:
            self.fail(name, kind, distribution, source, f"{type(error).__name__}: {error}")
            return
        registered = self.register(
            plugin,
            name=name,
            kind=kind,
            distribution=distribution,
            version=version,
            source=source,
        )
        if registered is not None and kind == "channel":
            self.loaded.channels[name] = registered

    def load_local(self, path: Path) -> None:
        name = path.stem
        source = str(path)
        if name in self.disabled:
            self.loaded.disabled.append(name)
            return
        module_name = f"omnichannel_local_plugins.{name}"
        try:
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        except Exception as error:
            sys.modules.pop(module_name, None)
            self.fail(name, "local", None, source, f"{type(error).__name__}: {error}")
            return
        self.register(
            module,
            name=name,
            kind="local",
            distribution=None,
            version=None,
            source=source,
        )


def _core_plugin() -> object:
    module_name, _, attribute = CORE_PLUGIN.partition(":")
    return _instantiate(getattr(importlib.import_module(module_name), attribute))


def load_plugins(
    plugins_dir: Path | None,
    disabled: Iterable[str] = (),
    extra: Iterable[tuple[str, object]] = (),
    extra_modules: Iterable[tuple[str, object]] = (),
) -> LoadedPlugins:
    """Discover and register every plugin: the core's own, modules, channels, cross-cutting
    plugins, local plugin files.

    :param plugins_dir: folder of local plugin modules (``*.py``, not starting with ``_``).
    :param disabled: names not to load.
    :param extra: ``(channel name, plugin)`` pairs registered as channels without packaging,
        for tests and embedding; an installed channel of the same name is left out (the
        object given stands in for it).
    :param extra_modules: ``(module name, plugin)`` pairs registered as modules likewise.
    """
    disabled = set(disabled)
    loaded = LoadedPlugins(manager=new_manager())
    loader = _Loader(loaded, disabled)
    core = loader.register(
        _core_plugin(),
        name="core",
        kind="core",
        distribution=None,
        version=None,
        source=CORE_PLUGIN,
    )
    if core is None:
        raise RuntimeError(f"the core's own plugin did not load: {loaded.failures[-1].error}")
    extra, extra_modules = list(extra), list(extra_modules)
    given_modules = {name for name, _ in extra_modules}
    given_channels = {name for name, _ in extra}
    for entry_point in sorted(entry_points(group=MODULE_GROUP), key=lambda ep: ep.name):
        if entry_point.name not in given_modules:  # the object given stands in for it
            loader.load_entry_point(entry_point, "module")
    for name, plugin in extra_modules:
        loader.register(
            plugin, name=name, kind="module", distribution=None, version=None, source="<extra>"
        )
    for entry_point in sorted(entry_points(group=CHANNEL_GROUP), key=lambda ep: ep.name):
        if entry_point.name not in given_channels:
            loader.load_entry_point(entry_point, "channel")
    for name, plugin in extra:
        registered = loader.register(
            plugin, name=name, kind="channel", distribution=None, version=None, source="<extra>"
        )
        if registered is not None:
            loaded.channels[name] = registered
    for entry_point in sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
        loader.load_entry_point(entry_point, "plugin")
    if plugins_dir is not None and plugins_dir.is_dir():
        for path in sorted(plugins_dir.glob("*.py")):
            if not path.name.startswith("_"):
                loader.load_local(path)
    loaded.disabled_unknown = sorted(set(disabled) - set(loaded.disabled))
    return loaded

"""Plugin discovery: channel entry points, cross-cutting entry points, local plugin modules.

Channels come from the ``omnichannel.channels`` entry point group (the entry point's name is
the channel's name); cross-cutting plugins from ``omnichannel.plugins`` and from the modules
of the local plugins folder. A plugin that fails to load is recorded with its distribution
and entry point and logged; the rest of the server starts. ``OMNICHANNEL_DISABLE_PLUGINS``
names plugins (channel names, entry point names or local module names) not to load.

A cross-cutting plugin may only wrap the channel hooks (``wrapper=True``): a plain
implementation of ``send`` in one would answer for every channel, so it is a load failure.
"""

from __future__ import annotations

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
from omnichannel_core.hook_bridge import BridgedPlugin

CHANNEL_GROUP = "omnichannel.channels"
PLUGIN_GROUP = "omnichannel.plugins"
CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
CHANNEL_HOOKS = frozenset({"receive", "status", "send", "health", "channel_routes"})


@attrs.frozen
class PluginInfo:
    """One loaded plugin, as ``GET /api/plugins`` and ``omnichannel plugins`` show it."""

    name: str
    kind: str  # "channel" | "plugin" | "local"
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


@attrs.define
class LoadedPlugins:
    """The plugin manager and what went into it."""

    manager: pluggy.PluginManager
    channels: dict[str, object] = attrs.field(factory=dict)
    info: list[PluginInfo] = attrs.field(factory=list)
    failures: list[PluginFailure] = attrs.field(factory=list)
    disabled: list[str] = attrs.field(factory=list)

    def describe(self, plugin: object) -> tuple[str, ...]:
        return tuple(sorted(caller.name for caller in self.manager.get_hookcallers(plugin) or ()))

    def drop_channel(self, name: str, error: str) -> PluginFailure:
        """Unload a registered channel that turned out unusable (say its ``channel_routes``
        raised): it leaves the manager and the list of plugins, and joins the failures."""
        plugin = self.channels.pop(name)
        self.manager.unregister(plugin)
        (info,) = [item for item in self.info if item.kind == "channel" and item.name == name]
        self.info.remove(info)
        failure = PluginFailure(name, "channel", info.distribution, info.source, error)
        self.failures.append(failure)
        return failure


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
        manager = self.loaded.manager
        plugin = BridgedPlugin(plugin)
        try:
            manager.register(plugin, name=name if kind == "channel" else f"{kind}:{name}")
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
            error = (
                "cross-cutting plugins may only wrap channel hooks: "
                + ", ".join(plain)
                + (" is" if len(plain) == 1 else " are")
                + " not wrapper=True"
            )
            self.fail(name, kind, distribution, source, error)
            return None
        self.loaded.info.append(
            PluginInfo(name, kind, distribution, version, source, self.loaded.describe(plugin))
        )
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
            return
        if kind == "channel" and not CHANNEL_NAME.match(name):
            self.fail(
                name, kind, distribution, source, "channel names must match " + CHANNEL_NAME.pattern
            )
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


def load_plugins(
    plugins_dir: Path | None,
    disabled: Iterable[str] = (),
    extra: Iterable[tuple[str, object]] = (),
) -> LoadedPlugins:
    """Discover and register every plugin.

    :param plugins_dir: folder of local plugin modules (``*.py``, not starting with ``_``).
    :param disabled: names not to load.
    :param extra: ``(channel name, plugin)`` pairs registered as channels without packaging,
        for tests and embedding.
    """
    loaded = LoadedPlugins(manager=new_manager())
    loader = _Loader(loaded, disabled)
    for entry_point in sorted(entry_points(group=CHANNEL_GROUP), key=lambda ep: ep.name):
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
    return loaded

"""A channel's hook implementations checked against the hookspecs, as the server would
register them, but in the test's own process so a mistake is reported by name.

pluggy refuses, at registration, an implementation that takes an argument its spec does not
have, and ``check_pending`` one whose name is no hook; an implementation marked
``optionalhook`` escapes the latter, so the names are checked here as well.
"""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points

import pluggy

from omnichannel_core import PROJECT_NAME, hookspecs
from omnichannel_core.plugins.bridge import BridgedPlugin
from omnichannel_core.plugins.loading import CHANNEL_GROUP, new_manager


def hookspec_names() -> frozenset[str]:
    """The names of the hooks the core specifies."""
    return frozenset(
        name
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, f"{PROJECT_NAME}_spec")
    )


def hook_implementations(plugin: object) -> dict[str, str]:
    """The plugin's hook implementations: attribute name -> the hook it implements."""
    found = {}
    for name in dir(plugin):
        if name.startswith("__"):
            continue
        options = getattr(getattr(plugin, name, None), f"{PROJECT_NAME}_impl", None)
        if isinstance(options, dict):
            found[name] = options.get("specname") or name
    return found


def load_channel(channel: str) -> object:
    """The plugin the server would register for the installed channel entry point
    ``channel`` (a class is instantiated, as the server does)."""
    found = list(entry_points(group=CHANNEL_GROUP, name=channel))
    if len(found) != 1:
        raise LookupError(f"{len(found)} installed {CHANNEL_GROUP!r} entry points are {channel!r}")
    loaded = found[0].load()
    return loaded() if inspect.isclass(loaded) else loaded


def hookspec_problems(channel: str, plugin: object) -> list[str]:
    """What in ``plugin`` does not match the hookspecs; empty when it registers cleanly."""
    implementations = hook_implementations(plugin)
    if not implementations:
        return [f"channel {channel!r} implements no hook at all (no @hookimpl found)"]
    specs = hookspec_names()
    unknown = {name: hook for name, hook in implementations.items() if hook not in specs}
    if unknown:
        return [
            f"channel {channel!r} marks {name} with @hookimpl, but {hook!r} is no hook;"
            f" the hooks are {', '.join(sorted(specs))}"
            for name, hook in sorted(unknown.items())
        ]
    manager = new_manager()
    try:
        manager.register(BridgedPlugin(plugin), name=channel)
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        return [f"channel {channel!r} does not match the hookspecs: {error}"]
    return []

"""Per-channel hook dispatch.

Calling a hook for channel ``twilio`` runs Twilio's implementation and every cross-cutting
plugin's wrappers, never another channel's implementation (pluggy's
``subset_hook_caller`` leaves the other channels out). Sync implementations run in a worker
thread; coroutine implementations are awaited on the loop.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pluggy

from omnichannel_core.errors import HookNotImplemented, NotFound
from omnichannel_core.plugins import LoadedPlugins


class ChannelDispatcher:
    """Calls hooks for one channel at a time."""

    def __init__(self, plugins: LoadedPlugins) -> None:
        self.plugins = plugins
        self.manager = plugins.manager
        self._callers: dict[tuple[str, str], pluggy.HookCaller] = {}
        self._runs_on_loop: dict[tuple[str, str], bool] = {}

    @property
    def channels(self) -> list[str]:
        return sorted(self.plugins.channels)

    def _channel_plugin(self, channel: str) -> object:
        try:
            return self.plugins.channels[channel]
        except KeyError:
            raise NotFound(f"unknown channel {channel!r}", channel=channel) from None

    def caller(self, channel: str, hook: str) -> pluggy.HookCaller:
        key = (channel, hook)
        if key not in self._callers:
            own = self._channel_plugin(channel)
            others = [plugin for plugin in self.plugins.channels.values() if plugin is not own]
            self._callers[key] = self.manager.subset_hook_caller(hook, remove_plugins=others)
        return self._callers[key]

    def implements(self, channel: str, hook: str) -> bool:
        """True when the channel itself (not only a wrapper) implements ``hook``."""
        own = self._channel_plugin(channel)
        return any(
            impl.plugin is own and not impl.wrapper and not impl.hookwrapper
            for impl in getattr(self.manager.hook, hook).get_hookimpls()
        )

    def _on_loop(self, channel: str, hook: str) -> bool:
        key = (channel, hook)
        if key not in self._runs_on_loop:
            own = self._channel_plugin(channel)
            impls = getattr(self.manager.hook, hook).get_hookimpls()
            self._runs_on_loop[key] = all(
                inspect.iscoroutinefunction(impl.function)
                for impl in impls
                if impl.plugin is own and not impl.wrapper and not impl.hookwrapper
            )
        return self._runs_on_loop[key]

    async def call(self, channel: str, hook: str, **kwargs: Any) -> Any:
        """Run ``hook`` for ``channel`` and return its (awaited) result.

        Raises :class:`HookNotImplemented` when the channel has no implementation.
        """
        if not self.implements(channel, hook):
            raise HookNotImplemented(channel, hook)
        caller = self.caller(channel, hook)
        if self._on_loop(channel, hook):
            result = caller(channel=channel, **kwargs)
        else:
            result = await asyncio.to_thread(caller, channel=channel, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    def call_at_startup(self, channel: str, hook: str, **kwargs: Any) -> list[Any]:
        """Run a non-firstresult hook synchronously (start-up only); returns each result."""
        results = self.caller(channel, hook)(channel=channel, **kwargs)
        return [item for item in results if item is not None]

"""Per-channel hook dispatch.

Calling a hook for channel ``twilio`` runs Twilio's implementation and every cross-cutting
plugin's wrappers, never another channel's implementation (pluggy's
``subset_hook_caller`` leaves the other channels out). Sync implementations run in a worker
thread; coroutine implementations are awaited on the loop, or, when a wrapper surrounds them,
run on the loop from the worker thread through ``hook_bridge`` so the wrapper sees their real
result.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pluggy

from omnichannel_core.errors import HookNotImplemented, NotFound
from omnichannel_core.hook_bridge import EVENT_LOOP, original_coroutine
from omnichannel_core.plugins import LoadedPlugins


class ChannelDispatcher:
    """Calls hooks for one channel at a time."""

    def __init__(self, plugins: LoadedPlugins) -> None:
        self.plugins = plugins
        self.manager = plugins.manager
        self._callers: dict[tuple[str, str], pluggy.HookCaller] = {}
        self._implements: dict[tuple[str, str], bool] = {}
        self._direct: dict[tuple[str, str], tuple[Any, tuple[str, ...]] | None] = {}

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
        key = (channel, hook)
        if key not in self._implements:
            own = self._channel_plugin(channel)
            self._implements[key] = any(
                impl.plugin is own and not impl.wrapper and not impl.hookwrapper
                for impl in getattr(self.manager.hook, hook).get_hookimpls()
            )
        return self._implements[key]

    def _direct_coroutine(self, channel: str, hook: str) -> tuple[Any, tuple[str, ...]] | None:
        """The channel's coroutine implementation and its argument names, when it is the only
        implementation this call would run (no wrapper, no other plugin): then it is awaited
        on the loop directly. None means: go through pluggy in a worker thread."""
        key = (channel, hook)
        if key not in self._direct:
            impls = self.caller(channel, hook).get_hookimpls()
            direct = None
            if len(impls) == 1 and not impls[0].wrapper and not impls[0].hookwrapper:
                coroutine = original_coroutine(impls[0].function)
                if coroutine is not None:
                    direct = (coroutine, tuple(impls[0].argnames))
            self._direct[key] = direct
        return self._direct[key]

    async def call(self, channel: str, hook: str, **kwargs: Any) -> Any:
        """Run ``hook`` for ``channel`` and return its result.

        Raises :class:`HookNotImplemented` when the channel has no implementation.
        """
        if not self.implements(channel, hook):
            raise HookNotImplemented(channel, hook)
        kwargs["channel"] = channel
        direct = self._direct_coroutine(channel, hook)
        if direct is not None:
            coroutine, argnames = direct
            return await coroutine(**{name: kwargs[name] for name in argnames})
        EVENT_LOOP.set(asyncio.get_running_loop())
        return await asyncio.to_thread(self.caller(channel, hook), **kwargs)

    def call_at_startup(self, channel: str, hook: str, **kwargs: Any) -> list[Any]:
        """Run a non-firstresult hook synchronously (start-up only); returns each result."""
        results = self.caller(channel, hook)(channel=channel, **kwargs)
        return [item for item in results if item is not None]

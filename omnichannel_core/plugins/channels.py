"""The channels, as modules see them: which are loaded, calling their hooks, their health.

A thin face over the per-channel :class:`~omnichannel_core.plugins.dispatch.ChannelDispatcher`
and what the loader recorded; ``context.channels`` is one. The inbox module is the one that
calls ``receive``, ``status`` and ``send`` (it stores what they produce); any module may
read the list and the health of the channels.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from omnichannel_core.config import Config
from omnichannel_core.errors import ChannelFailed, HookNotImplemented, PluginLoadError
from omnichannel_core.hooktypes import ChannelHealth, Setting
from omnichannel_core.plugins.dispatch import ChannelDispatcher
from omnichannel_core.plugins.loading import LoadedPlugins

log = structlog.get_logger("omnichannel.channels")

HEALTH_TIMEOUT_SECONDS = 5.0
"""The longest a channel's ``health`` hook is waited for."""


class Channels:
    def __init__(self, plugins: LoadedPlugins, dispatcher: ChannelDispatcher) -> None:
        self.plugins = plugins
        self.dispatcher = dispatcher

    @property
    def names(self) -> list[str]:
        """The loaded channels, sorted."""
        return self.dispatcher.channels

    @property
    def failed(self) -> list[str]:
        """Channels that failed to load."""
        return [failure.name for failure in self.plugins.failures if failure.kind == "channel"]

    @property
    def disabled(self) -> list[str]:
        """Channels left out by ``OMNICHANNEL_DISABLE_PLUGINS``."""
        return list(self.plugins.disabled_channels)

    def loaded(self, channel: str) -> bool:
        return channel in self.plugins.channels

    def implements(self, channel: str, hook: str) -> bool:
        """True when the channel itself (not only a wrapper) implements ``hook``."""
        return self.dispatcher.implements(channel, hook)

    async def call(
        self,
        channel: str,
        hook: str,
        *,
        started: Callable[[], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``hook`` for ``channel`` (its implementation, within every wrapper); raises
        HookNotImplemented when it has none, and whatever the hook raises. ``started`` is
        awaited right before the hook runs (a sync hook's once a thread takes it); what it
        raises is raised instead, and the hook does not run."""
        return await self.dispatcher.call(channel, hook, started=started, **kwargs)

    async def health(self, channel: str, **kwargs: Any) -> ChannelHealth:
        """The channel's report, or a failed one when it takes longer than
        :data:`HEALTH_TIMEOUT_SECONDS` (a sync health hook that hangs keeps its thread, but
        nobody waits for it); raises HookNotImplemented when it has no ``health``."""
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
                result = await self.dispatcher.call(channel, "health", **kwargs)
        except HookNotImplemented:
            raise
        except TimeoutError:
            return ChannelHealth(ok=False, detail="health check timed out")
        except Exception as error:
            log.exception("channel_health_crashed", channel=channel)
            return ChannelHealth(ok=False, detail=f"health check failed: {type(error).__name__}")
        if not isinstance(result, ChannelHealth):
            return ChannelHealth(ok=False, detail="health returned the wrong type")
        return result

    async def declared_settings(self, channel: str, config: Config) -> tuple[Setting, ...]:
        """The variables the channel declares (its ``settings`` hook), in its order; empty
        when it has no such hook (it is configured through the environment only). Raises
        NotFound for a channel that is not loaded.

        :raises ChannelFailed: the hook raised, or answered something else than a list of
            :class:`Setting` with each name once.
        """
        if not self.implements(channel, "settings"):
            return ()
        try:
            declared = await self.dispatcher.call(channel, "settings", config=config)
        except Exception as error:
            log.exception("channel_settings_failed", channel=channel)
            raise ChannelFailed(
                f"channel {channel!r} settings failed: {type(error).__name__}", channel=channel
            ) from None
        return checked_settings(channel, declared)

    def contributed_routes(self, channel: str, **kwargs: Any) -> list[Any]:
        """What the channel's ``channel_routes`` return, joined (start-up only); raises
        PluginLoadError for an async implementation, and whatever the hook raises."""
        routes: list[Any] = []
        for result in self.dispatcher.call_at_startup(channel, "channel_routes", **kwargs):
            if inspect.isawaitable(result):
                if hasattr(result, "close"):
                    result.close()
                raise PluginLoadError(
                    f"channel {channel!r} channel_routes must be a plain function, not async",
                    channel=channel,
                )
            routes.extend(result)
        return routes

    def drop(self, channel: str, reason: str) -> None:
        """Unload a channel found unusable at start-up (its routes could not be mounted)."""
        self.plugins.drop_channel(channel, reason)

    def shutdown(self) -> None:
        self.dispatcher.shutdown()


SERVER_PREFIX = "OMNICHANNEL_"
"""The server's own variables: from the environment only, never a channel's to declare."""


def checked_settings(channel: str, declared: object) -> tuple[Setting, ...]:
    """What a channel's ``settings`` hook answered, checked: a list (or tuple) of
    :class:`Setting`, each name once, none of the server's own (``OMNICHANNEL_*``, which
    could then be stored through the API); else ChannelFailed saying what is wrong."""
    if not isinstance(declared, list | tuple) or not all(
        isinstance(item, Setting) for item in declared
    ):
        raise ChannelFailed(
            f"channel {channel!r} settings must return a list of Setting, not"
            f" {type(declared).__name__}",
            channel=channel,
        )
    names = [item.name for item in declared]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ChannelFailed(
            f"channel {channel!r} settings declares {', '.join(twice)} more than once",
            channel=channel,
        )
    servers = sorted(name for name in names if name.startswith(SERVER_PREFIX))
    if servers:
        raise ChannelFailed(
            f"channel {channel!r} settings declares {', '.join(servers)}: the server's own"
            f" variables ({SERVER_PREFIX}*) come from the environment only",
            channel=channel,
        )
    return tuple(declared)

"""Per-channel hook dispatch.

Calling a hook for channel ``twilio`` runs Twilio's implementation and every cross-cutting
plugin's wrappers, never another channel's implementation (pluggy's
``subset_hook_caller`` leaves the other channels out). Sync implementations run in a worker
thread; coroutine implementations are awaited on the loop, or, when a wrapper surrounds them,
run on the loop from the worker thread through `omnichannel_core.plugins.bridge` so the
wrapper sees their real result.

Each channel has its own bounded thread pool for those calls, apart from asyncio's default
executor (which the store uses): a channel whose blocking SDK hangs fills only its own pool,
never another channel's, and never the store's threads, so ``/health`` and the other
channels keep answering.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pluggy

from omnichannel_core.errors import HookNotImplemented, NotFound
from omnichannel_core.plugins.bridge import EVENT_LOOP, original_coroutine
from omnichannel_core.plugins.loading import LoadedPlugins

HOOK_THREADS_PER_CHANNEL = 16
"""How many sync hook calls of one channel may run at once; more wait for a free thread."""


class ChannelDispatcher:
    """Calls hooks for one channel at a time.

    :param threads_per_channel: the size of each channel's thread pool for sync hook calls.
    """

    def __init__(
        self, plugins: LoadedPlugins, threads_per_channel: int = HOOK_THREADS_PER_CHANNEL
    ) -> None:
        self.plugins = plugins
        self.manager = plugins.manager
        self.threads_per_channel = threads_per_channel
        self._pools: dict[str, ThreadPoolExecutor] = {}
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
        own = self._channel_plugin(channel)  # a channel unloaded since is unknown now
        if key not in self._callers:
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

    async def call(
        self,
        channel: str,
        hook: str,
        *,
        started: Callable[[], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``hook`` for ``channel`` and return its result.

        ``started``, when given, is awaited on the loop right before the hook runs: for a
        sync hook, once a thread of the channel's pool has taken the call (a call queued
        behind busy threads has not started). What it raises is raised, and the hook does
        not run: the outbox marks a send durably there, so that a send still waiting for a
        thread when its runner dies is known never to have reached the provider.

        Raises :class:`HookNotImplemented` when the channel has no implementation.
        """
        if not self.implements(channel, hook):
            raise HookNotImplemented(channel, hook)
        kwargs["channel"] = channel
        direct = self._direct_coroutine(channel, hook)
        if direct is not None:
            coroutine, argnames = direct
            if started is not None:
                await started()
            return await coroutine(**{name: kwargs[name] for name in argnames})
        loop = asyncio.get_running_loop()
        # run_in_executor does not carry contextvars over: run the call in a copy of this
        # context (request id, channel for the logs) holding the loop the bridge needs.
        context = contextvars.copy_context()
        context.run(EVENT_LOOP.set, loop)
        caller = self.caller(channel, hook)
        if started is None:
            call = functools.partial(context.run, caller, **kwargs)
        else:
            call = functools.partial(context.run, _after(started, loop, caller), **kwargs)
        return await loop.run_in_executor(self.thread_pool(channel), call)

    def thread_pool(self, channel: str) -> ThreadPoolExecutor:
        """The channel's own pool for sync hook calls, created on first use."""
        pool = self._pools.get(channel)
        if pool is None:
            pool = ThreadPoolExecutor(
                max_workers=self.threads_per_channel, thread_name_prefix=f"hook-{channel}"
            )
            self._pools[channel] = pool
        return pool

    def shutdown(self) -> None:
        """Stop every channel's pool: queued calls are cancelled, running ones finish alone."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)

    def call_at_startup(self, channel: str, hook: str, **kwargs: Any) -> list[Any]:
        """Run a non-firstresult hook synchronously (start-up only); returns each result."""
        results = self.caller(channel, hook)(channel=channel, **kwargs)
        return [item for item in results if item is not None]


STARTED_TIMEOUT_SECONDS = 60.0
"""How long a worker thread waits for the loop to run a call's ``started``."""


def _after(
    started: Callable[[], Awaitable[None]],
    loop: asyncio.AbstractEventLoop,
    caller: Callable[..., Any],
) -> Callable[..., Any]:
    """``caller``, run in a worker thread once ``started`` has run on ``loop``."""

    def call(**kwargs: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(_awaited(started), loop)
        try:
            future.result(timeout=STARTED_TIMEOUT_SECONDS)
        except TimeoutError:
            future.cancel()
            raise TimeoutError("the call's started did not run in time: not called") from None
        return caller(**kwargs)

    return call


async def _awaited(started: Callable[[], Awaitable[None]]) -> None:
    await started()

"""Lets coroutine hook implementations run under pluggy's synchronous calls.

pluggy calls implementations as plain functions, so a ``wrapper=True`` implementation around
a coroutine function would only ever see an un-awaited coroutine. Every registered plugin is
therefore presented to pluggy through :class:`BridgedPlugin`, which turns each coroutine
hook implementation into a plain function that, called in a worker thread, runs the coroutine
on the server's event loop and returns its real result (or raises its real exception). So a
wrapper sees the same thing whether a channel is sync or async.

When nothing wraps a coroutine implementation, the dispatcher skips the thread and awaits it
on the loop directly (see ``plugins/dispatch.py``): the bridge costs nothing on that path.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from omnichannel_core import PROJECT_NAME

EVENT_LOOP: contextvars.ContextVar[asyncio.AbstractEventLoop] = contextvars.ContextVar(
    "omnichannel_event_loop"
)
_IMPL_MARK = PROJECT_NAME + "_impl"
ORIGINAL_COROUTINE = "__omnichannel_coroutine__"
LOOP_CHECK_SECONDS = 1.0
"""How often a hook thread waiting for its coroutine checks that the loop still runs."""


def _bridge(function: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
    @functools.wraps(function)
    def run_on_loop(*args: Any, **kwargs: Any) -> Any:
        loop = EVENT_LOOP.get(None)
        if loop is None:  # called outside the server (a script, a test): run it here
            return asyncio.run(function(*args, **kwargs))
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("a bridged coroutine hook was called on the event loop thread")
        return _result(asyncio.run_coroutine_threadsafe(function(*args, **kwargs), loop), loop)

    setattr(run_on_loop, ORIGINAL_COROUTINE, function)
    return run_on_loop


def _result(future: concurrent.futures.Future[Any], loop: asyncio.AbstractEventLoop) -> Any:
    """The coroutine's outcome; RuntimeError if the loop closes first (the server stopping
    as the hook was scheduled), so the hook's thread never waits forever for it."""
    while True:
        try:
            return future.result(timeout=LOOP_CHECK_SECONDS)
        except TimeoutError:
            if loop.is_closed():  # nothing will run it now
                raise RuntimeError("the server stopped before the hook finished") from None


def original_coroutine(function: Callable[..., Any]) -> Callable[..., Any] | None:
    """The coroutine function behind a bridged implementation, or None for a plain one."""
    return getattr(function, ORIGINAL_COROUTINE, None)


class BridgedPlugin:
    """A plugin as pluggy sees it: the same hook implementations, coroutine ones bridged.

    pluggy finds implementations with ``inspect.getattr_static``, so they are copied onto the
    instance as real attributes rather than served by ``__getattr__``.
    """

    def __init__(self, plugin: object) -> None:
        self.plugin = plugin
        for name in dir(plugin):
            if name.startswith("__"):
                continue
            try:
                value = getattr(plugin, name)
            except Exception:  # noqa: S112 - a failing property is not a hook implementation
                continue
            if not callable(value) or not hasattr(value, _IMPL_MARK):
                continue
            setattr(self, name, _bridge(value) if inspect.iscoroutinefunction(value) else value)

    def __repr__(self) -> str:
        return f"<bridged {self.plugin!r}>"

"""Stopping background tasks, and waiting with a deadline, without losing a cancellation.

Two traps of asyncio on Python 3.11 that hung the server at shutdown:

- ``asyncio.wait_for(coroutine, timeout)`` runs the coroutine as a task of its own; when the
  caller is cancelled just as that task finishes, ``wait_for`` returns its result and the
  cancellation is lost (fixed in 3.12). A loop around it then never stops. Use
  :func:`wait_until` for an event, or ``async with asyncio.timeout(...)``, which run in the
  caller's task.
- ``with suppress(CancelledError): await task`` after ``task.cancel()`` also swallows the
  caller's *own* cancellation, should it come meanwhile. :func:`cancel_and_wait` lets that
  one through.
"""

from __future__ import annotations

import asyncio

import structlog

log = structlog.get_logger("omnichannel.tasks")


async def wait_until(event: asyncio.Event, at_most: float) -> bool:
    """Wait for ``event``; False when ``at_most`` seconds passed first. Always lets the
    other tasks run once, as an await should: a loop around a set event does not hold the
    event loop."""
    if event.is_set():
        await asyncio.sleep(0)
        return True
    try:
        async with asyncio.timeout(at_most):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def cancel_and_wait(*tasks: asyncio.Task[object]) -> None:
    """Cancel ``tasks`` and wait until each has finished, whatever it raised (an error is
    logged). A cancellation of the caller that arrives meanwhile is raised once the task
    being awaited has ended, even if that task swallowed it (the tasks after it are
    cancelled but not awaited); one the caller was already
    handling when it called (stopping tasks in a ``finally``) does not cut the stop short."""
    current = asyncio.current_task()
    before = current.cancelling() if current is not None else 0

    def cancelled_meanwhile() -> bool:
        return current is not None and current.cancelling() > before

    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            if cancelled_meanwhile():
                raise
        except Exception:
            log.exception("task_failed_as_it_stopped", task=task.get_name())
        if cancelled_meanwhile():
            raise asyncio.CancelledError

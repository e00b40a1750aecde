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
    """Wait for ``event``; False when ``at_most`` seconds passed first."""
    try:
        async with asyncio.timeout(at_most):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def cancel_and_wait(*tasks: asyncio.Task[object]) -> None:
    """Cancel ``tasks`` and wait until each has finished, whatever it raised; a cancellation
    of the caller itself meanwhile still propagates (after every task has been asked)."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        except Exception:
            log.exception("task_failed_as_it_stopped", task=task.get_name())

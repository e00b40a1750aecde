"""Long polling, the fallback where WebSockets are blocked: one ``POST poll`` answers the
frames a socket would have sent since the widget's cursor.

A poll first waits for its stream to settle (what was missed: the replay begun, or the
history sent), then, when that brought nothing new, for the first new frame, up to
``wait`` seconds; a short grace then takes what comes with it. The cursor it answers is the
stream's (:attr:`~omnichannel_webchat.stream.VisitorStream.cursor`), which never passes a
frame that was not sent: a poll answered early, or cut, leaves no gap.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from omnichannel_webchat.stream import VisitorStream

SETTLE_SECONDS = 10.0
"""The longest a poll waits for its history to be read; then it waits for news as usual."""
GRACE_SECONDS = 0.05
"""How long a poll keeps collecting once something new came: the rest of a burst."""


async def collect(stream: VisitorStream, wait: float) -> list[dict[str, Any]]:
    """The frames of ``stream`` for one poll (see the module's doc); the error of the
    stream, if it fails meanwhile."""
    frames: list[dict[str, Any]] = []
    news = asyncio.Event()

    async def pump() -> None:
        async with contextlib.aclosing(stream.frames()) as told:  # its feed freed at once
            async for frame in told:
                frames.append(frame)
                if frame["type"] not in ("ready", "token"):
                    news.set()

    task = asyncio.create_task(pump())
    try:
        await _until(task, stream.settled, SETTLE_SECONDS)
        if not news.is_set():
            await _until(task, news, wait)
        if news.is_set() and not task.done():
            await asyncio.wait({task}, timeout=GRACE_SECONDS)
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # a cancel of ours still raises
    return frames


async def _until(task: asyncio.Task[None], event: asyncio.Event, seconds: float) -> None:
    """Until ``event`` is set, ``task`` ends, or ``seconds`` pass."""
    if event.is_set() or task.done():
        return
    waiting = asyncio.create_task(event.wait())
    try:
        await asyncio.wait({task, waiting}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()

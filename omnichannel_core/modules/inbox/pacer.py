"""A runner's share of the shared send paces: it hands out send slots, replies first.

Slots are reserved from the store (:meth:`OutboxStore.reserve_pace`) a second's worth at a
time, so every runner and server shares one rate while a pace's record is written about
once a second at most. Within a runner, the senders waiting on a pace get its slots in
priority order (replies before bulk sends), then first come first served. A slot not used
within :data:`LATE_SECONDS` of its time is dropped, never spent late in a burst.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import time

from omnichannel_core.modules.inbox.send_policies import Pace
from omnichannel_core.modules.inbox.store.outbox import OutboxStore

BLOCK_SECONDS = 1.0
"""How many seconds of a pace's slots a runner reserves at once."""
LATE_SECONDS = 1.0
"""How late a slot may still be spent: the store's round trip to reserve it makes the first
slots of a block a little late; an older one was left unused (nothing waited) and goes."""


class _PaceQueue:
    def __init__(self) -> None:
        self.slots: collections.deque[float] = collections.deque()
        self.spacing = 0.0
        self.last_given = 0.0
        self.waiting: list[tuple[int, int, asyncio.Future[float]]] = []
        self.dispatcher: asyncio.Task[None] | None = None


class Pacer:
    def __init__(self, store: OutboxStore) -> None:
        self.store = store
        self._queues: dict[str, _PaceQueue] = {}
        self._order = itertools.count()

    async def turn(self, pace: Pace, priority: int) -> float | None:
        """Return at this sender's slot on ``pace`` (at once when it is unpaced): the slot's
        time."""
        if pace.rate <= 0:
            return None
        queue = self._queues.setdefault(pace.key, _PaceQueue())
        ready: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        heapq.heappush(queue.waiting, (priority, next(self._order), ready))
        if queue.dispatcher is None or queue.dispatcher.done():
            queue.dispatcher = asyncio.create_task(self._dispatch(pace, queue))
        try:
            return await ready
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise

    async def slow(self, key: str, retry_after: float | None) -> None:
        """The provider throttled ``key``: slow it for everyone, and drop this runner's
        reserved slots (they were counted at the old pace)."""
        now = time.time()
        await self.store.slow_pace(key, now + (retry_after or 0.0), now)
        queue = self._queues.get(key)
        if queue is not None:
            queue.slots.clear()

    async def _dispatch(self, pace: Pace, queue: _PaceQueue) -> None:
        while queue.waiting:
            slot = await self._next_slot(pace, queue)
            # A late slot (the loop stalled, or the reservation's round trip) is spent, but
            # never sooner than half a spacing after the last one: catching up at twice the
            # rate at most, not in a burst.
            delay = max(slot, queue.last_given + queue.spacing / 2) - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.last_given = time.time()
            while queue.waiting:
                _, _, ready = heapq.heappop(queue.waiting)
                if not ready.done():  # a cancelled waiter gives its place to the next
                    ready.set_result(slot)
                    break
            else:
                queue.slots.appendleft(slot)  # nobody waits any more: keep it

    async def _next_slot(self, pace: Pace, queue: _PaceQueue) -> float:
        now = time.time()
        while queue.slots and queue.slots[0] < now - max(queue.spacing, LATE_SECONDS):
            queue.slots.popleft()  # long past: never spend it late, in a burst
        if not queue.slots:
            interval = 1.0 / pace.rate
            count = max(1, round(pace.rate * BLOCK_SECONDS))
            start, spacing = await self.store.reserve_pace(pace.key, interval, count, now)
            queue.spacing = spacing
            queue.slots.extend(start + spacing * index for index in range(count))
        return queue.slots.popleft()

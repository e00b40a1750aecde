"""Stopping background tasks without losing a cancellation (`omnichannel_core.tasks`)."""

from __future__ import annotations

import asyncio

import pytest

from omnichannel_core.tasks import cancel_and_wait, wait_until


def test_cancel_and_wait_stops_every_task_and_outlives_their_failures():
    """Each task is cancelled and awaited; one that raises as it stops does not keep the
    others from being stopped."""

    async def scenario() -> list[bool]:
        async def fails_when_stopped() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                raise RuntimeError("failed while stopping") from None

        tasks = [asyncio.create_task(fails_when_stopped()), asyncio.create_task(asyncio.sleep(60))]
        await asyncio.sleep(0)
        await cancel_and_wait(*tasks)
        return [task.done() for task in tasks]

    assert asyncio.run(scenario()) == [True, True]


def test_a_caller_cancelled_while_it_waits_for_a_task_is_cancelled():
    """The caller's own cancellation, arriving while it waits for a slow task to stop, is
    not taken for the task's."""

    async def scenario() -> None:
        async def slow_to_stop() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                await asyncio.sleep(0.2)
                raise

        task = asyncio.create_task(slow_to_stop())
        await asyncio.sleep(0)
        stopper = asyncio.create_task(cancel_and_wait(task))
        await asyncio.sleep(0.05)
        stopper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopper

    asyncio.run(scenario())


def test_wait_until_says_whether_the_event_came_in_time():
    async def scenario() -> tuple[bool, bool]:
        event = asyncio.Event()
        late = await wait_until(event, 0.05)
        asyncio.get_running_loop().call_later(0.01, event.set)
        return late, await wait_until(event, 5)

    assert asyncio.run(scenario()) == (False, True)

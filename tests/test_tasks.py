"""Stopping background tasks without losing a cancellation (`omnichannel_core.tasks`)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time

import pytest

from omnichannel_core import hookimpl
from omnichannel_core.plugins.bridge import EVENT_LOOP, BridgedPlugin
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


def test_a_callers_cancellation_swallowed_by_the_task_it_stops_is_still_raised():
    """The stopper's cancellation is passed on to the task it awaits; a task that swallows
    it (or fails instead) does not make the stopper carry on as if not cancelled."""

    async def scenario(ending: str) -> None:
        async def swallows() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(0.2)
                if ending == "fails":
                    raise RuntimeError("failed as it stopped") from None

        task = asyncio.create_task(swallows())
        await asyncio.sleep(0)
        stopper = asyncio.create_task(cancel_and_wait(task))
        await asyncio.sleep(0.05)
        stopper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopper

    for ending in ("returns", "fails"):
        asyncio.run(scenario(ending))


def test_a_stop_in_a_finally_after_a_cancellation_stops_everything():
    """A task already cancelled, stopping its helpers in ``finally``, goes on with the rest
    of its clean-up: the helpers' own cancellation is not taken for its."""

    async def scenario() -> list[str]:
        done: list[str] = []

        async def owner() -> None:
            helper = asyncio.create_task(asyncio.sleep(60))
            try:
                await asyncio.sleep(60)
            finally:
                await cancel_and_wait(helper)
                done.append("helper stopped")
                done.append("the rest of the clean-up")

        task = asyncio.create_task(owner())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return done

    assert asyncio.run(scenario()) == ["helper stopped", "the rest of the clean-up"]


def test_a_loop_waiting_on_a_set_event_lets_others_run():
    """A job that ignores ``JobControl.sleep``'s answer after a stop still yields to the
    event loop at each wait, so it can be cancelled."""

    async def scenario() -> bool:
        stop = asyncio.Event()
        stop.set()

        async def ignores_the_answer() -> None:
            while True:
                await wait_until(stop, 1)

        task = asyncio.create_task(ignores_the_answer())
        await asyncio.sleep(0.05)
        await cancel_and_wait(task)
        return task.cancelled()

    assert asyncio.run(scenario()) is True


class SlowHook:
    @hookimpl
    async def health(self) -> str:
        await asyncio.sleep(5)
        return "never"


def test_a_hook_thread_waiting_on_a_loop_that_closes_is_let_go():
    """A bridged coroutine hook scheduled as the server's loop closes (its tasks cancelled,
    a thread's work still finishing) raises in its thread instead of waiting for ever,
    which kept the process from exiting."""
    outcome: list[BaseException] = []
    bridged = BridgedPlugin(SlowHook())

    def in_hook_thread() -> None:
        time.sleep(0.3)  # called once asyncio.run is waiting for the default executor
        try:
            bridged.health()
        except RuntimeError as error:
            outcome.append(error)

    async def server() -> threading.Thread:
        EVENT_LOOP.set(asyncio.get_running_loop())
        context = contextvars.copy_context()  # as the dispatcher's hook threads get it
        thread = threading.Thread(target=context.run, args=(in_hook_thread,), daemon=True)
        thread.start()
        asyncio.get_running_loop().run_in_executor(None, time.sleep, 0.6)
        await asyncio.sleep(0.1)
        return thread

    thread = asyncio.run(server())
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert "the server stopped before the hook finished" in str(outcome[0])

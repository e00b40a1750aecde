"""The job runner as a process: ``omnichannel worker``.

It loads the plugins and collects what they contribute, exactly as the web server does
(`omnichannel_core.app.build_registry`), opens the stores (migrating them if needed) and
the event bus, and runs every registered job and event subscriber
(`omnichannel_core.jobs.runner`) until SIGTERM or SIGINT, then stops cleanly: running work
finishes or is cancelled after the grace period, and leases are handed back.

``omnichannel serve`` starts one beside the web server by default; run it alone to scale
background work apart from the web (several are fine: singletons run once between them).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import timedelta
from typing import Any

import structlog

from omnichannel_core.app import build_registry
from omnichannel_core.config import Config
from omnichannel_core.jobs.runner import JobRunner
from omnichannel_core.plugins.registry import Registry

log = structlog.get_logger("omnichannel.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def runner_of(registry: Registry, **options: Any) -> JobRunner:
    """The job runner of ``registry``'s jobs and subscribers, with the lease time its
    configuration sets; ``options`` are further :class:`JobRunner` arguments."""
    return JobRunner(
        registry.jobs,
        registry.subscribers,
        registry.job_store,
        registry.event_log,
        registry.news,
        lease_ttl=timedelta(seconds=registry.config.job_lease_seconds),
        **options,
    )


async def run_worker(registry: Registry, runner: JobRunner | None = None) -> None:
    """Open what the registry needs, run its jobs until a stop signal (or ``runner.stop()``),
    then close it all."""
    runner = runner or runner_of(registry)
    loop = asyncio.get_running_loop()
    for number in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(number, runner.stop)
    await registry.open_stores()
    try:
        await registry.bus.start()
        for callback in registry.startup_callbacks:
            await callback()
        await runner.run()
    finally:
        for callback in registry.shutdown_callbacks:
            with contextlib.suppress(Exception):
                await callback()
        await registry.news.close()
        await registry.bus.close()
        registry.channels.shutdown()
        await registry.close_stores()
        for number in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(number)


def main(config: Config) -> int:
    """``omnichannel worker``: run until stopped; 0 after a clean stop."""
    registry = build_registry(config)
    asyncio.run(run_worker(registry))
    return 0

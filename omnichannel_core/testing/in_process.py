"""The real app (``create_app`` with a real SQLite store) driven in-process through
``falcon.testing.ASGIConductor``, with channels and modules registered without packaging,
and, when asked, the job runner beside it on the same event loop.

Quicker than the real server (:mod:`omnichannel_core.testing.server`) and able to take a
channel object that was never installed, such as a stub built in the test; what only the
server does (gunicorn, several workers, entry point discovery) needs the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
from falcon import testing

from omnichannel_core.app import assemble
from omnichannel_core.config import Config
from omnichannel_core.plugins.loading import load_plugins
from omnichannel_core.store import open_database
from omnichannel_core.worker import runner_of

API_KEY = "in-process-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
"""Headers that authenticate a request to the in-process app with :data:`API_KEY`."""

Scenario = Callable[[testing.ASGIConductor], Awaitable[None]]


# Like the real server of omnichannel_core.testing.server: tests that want limits pass them.
NO_RATE_LIMITS = {
    "rate_limit_per_minute": 0,
    "credential_rate_limit_per_minute": 0,
    "login_rate_limit_per_minute": 0,
    "send_rates": {"*": 0.0},
    "send_backoff_ms": 50,
}


def run_app(
    data_dir: Path,
    channels: Mapping[str, object],
    scenario: Scenario,
    environ: Mapping[str, str] | None = None,
    *,
    modules: Mapping[str, object] | None = None,
    jobs: bool = False,
    **settings: Any,
) -> None:
    """Build the app with ``channels`` and ``modules`` (name -> plugin) on a store in
    ``data_dir`` and run ``scenario`` against it (an installed plugin of the same name is left
    out: the object given is the one tested); with ``jobs``, the job runner runs the
    registered jobs and event subscribers meanwhile (stopped, cleanly, after the scenario).
    Two runs on one ``data_dir`` share the store. ``settings`` are further :class:`Config`
    fields (e.g. ``public_url``)."""
    config = Config(
        data_dir=data_dir,
        store_url=f"sqlite:///{data_dir / 'store.db'}",
        api_keys=(API_KEY,),
        plugins_dir=data_dir / "no-plugins",
        environ=dict(environ or {}),
        **{**NO_RATE_LIMITS, **settings},
    )
    plugins = load_plugins(
        None, extra=list(channels.items()), extra_modules=list((modules or {}).items())
    )
    app, registry = assemble(config, plugins, open_database(config.store_url))

    async def conducted() -> None:
        async with testing.ASGIConductor(app) as conductor:
            runner = runner_of(registry, restart_seconds=0.2)
            running = asyncio.create_task(runner.run()) if jobs else None
            try:
                await scenario(conductor)
            finally:
                if running is not None:
                    runner.stop()
                    await running

    asyncio.run(conducted())


@attrs.frozen
class InProcessApp:
    """The app of :func:`run_app` with its channels, settings and store folder fixed: each
    :meth:`run` builds it afresh on the same store, as a restarted server would be."""

    data_dir: Path
    channels: Mapping[str, object]
    environ: Mapping[str, str] = attrs.field(factory=dict)
    settings: Mapping[str, Any] = attrs.field(factory=dict)
    modules: Mapping[str, object] = attrs.field(factory=dict)
    jobs: bool = False
    """Run the job runner beside the app."""
    headers: Mapping[str, str] = attrs.field(factory=lambda: dict(AUTH))
    """What authenticates a request (``conductor.simulate_get(path, headers=app.headers)``)."""

    def run(self, scenario: Scenario) -> None:
        """Run ``scenario(conductor)`` against the app, started and stopped around it."""
        run_app(
            self.data_dir,
            self.channels,
            scenario,
            self.environ,
            modules=self.modules,
            jobs=self.jobs,
            **self.settings,
        )

"""The real app (``create_app`` with a real SQLite store) driven in-process through
``falcon.testing.ASGIConductor``, with channels registered without packaging."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from falcon import testing

from omnichannel_core.app import create_app
from omnichannel_core.config import Config
from omnichannel_core.plugins import load_plugins
from omnichannel_core.store import open_store

API_KEY = "in-process-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

Scenario = Callable[[testing.ASGIConductor], Awaitable[None]]


# Like tests/support/server.py: tests that want limits pass them.
NO_RATE_LIMITS = {
    "rate_limit_per_minute": 0,
    "credential_rate_limit_per_minute": 0,
    "login_rate_limit_per_minute": 0,
}


def run_app(
    data_dir: Path,
    channels: Mapping[str, object],
    scenario: Scenario,
    environ: Mapping[str, str] | None = None,
    **settings: Any,
) -> None:
    """Build the app with ``channels`` (name -> plugin) on a store in ``data_dir`` and run
    ``scenario`` against it. Two runs on one ``data_dir`` share the store. ``settings`` are
    further :class:`Config` fields (e.g. ``public_url``)."""
    config = Config(
        data_dir=data_dir,
        store_url=f"sqlite:///{data_dir / 'store.db'}",
        api_keys=(API_KEY,),
        plugins_dir=data_dir / "no-plugins",
        environ=dict(environ or {}),
        **{**NO_RATE_LIMITS, **settings},
    )
    plugins = load_plugins(None, extra=list(channels.items()))
    app = create_app(config, plugins, open_store(config.store_url))

    async def conducted() -> None:
        async with testing.ASGIConductor(app) as conductor:
            await scenario(conductor)

    asyncio.run(conducted())

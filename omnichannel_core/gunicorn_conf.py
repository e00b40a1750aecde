"""gunicorn settings for ``omnichannel serve`` (and ``gunicorn -c gunicorn.conf.py``).

Uvicorn workers run the ASGI app; the master prepares the data folder, the schema and the
API key once, before any worker starts.
"""

from __future__ import annotations

import asyncio
import sys

from omnichannel_core.auth import ensure_api_key, key_file
from omnichannel_core.config import Config
from omnichannel_core.errors import ConfigError
from omnichannel_core.store import open_store

try:
    _config = Config.from_environ()
except ConfigError as _error:
    sys.stderr.write(f"omnichannel: {_error.message}\n")
    raise SystemExit(2) from None

bind = [f"{_config.host}:{_config.port}"]
workers = _config.workers
worker_class = "uvicorn_worker.UvicornWorker"
graceful_timeout = 10
timeout = 60
keepalive = 5
accesslog = None
loglevel = _config.log_level


def on_starting(server) -> None:  # gunicorn hook: in the master, once
    store = open_store(_config.store_url)

    async def migrate() -> None:
        await store.open()
        await store.close()

    asyncio.run(migrate())
    created = ensure_api_key(_config)
    if created:
        sys.stderr.write(
            "\nomnichannel: no OMNICHANNEL_API_KEY was set, so one was generated.\n"
            f"  API key: {created}\n"
            f"  (kept in {key_file(_config)}; shown only this once)\n\n"
        )

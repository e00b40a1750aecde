"""gunicorn settings for ``omnichannel serve`` (and ``gunicorn -c gunicorn.conf.py``).

Uvicorn workers run the ASGI app; the master prepares the data folder, every store's schema
and the API key once, before any worker starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gunicorn.glogging import Logger

from omnichannel_core.bus.bus import create_bus
from omnichannel_core.config import Config
from omnichannel_core.errors import ConfigError
from omnichannel_core.logs import configure_logging
from omnichannel_core.server_secrets import ensure_api_key, key_file
from omnichannel_core.store import open_database
from omnichannel_core.supervisor import tell_ready

try:
    _config = Config.from_environ()
    open_database(_config.store_url)  # a store URL it cannot open stops here, in one line
    create_bus(_config)  # so does an event bus without credentials (each worker makes its own)
except ConfigError as _error:
    sys.stderr.write(f"omnichannel: {_error.message}\n")
    raise SystemExit(2) from None


class StructlogGunicornLogger(Logger):
    """gunicorn's own lines (start-up, workers) in the same format as the app's."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        configure_logging(_config)
        for logger in (self.error_log, self.access_log):
            logger.handlers.clear()
            logger.propagate = True
        self.access_log.disabled = True  # the app writes one summary line per request


CONTROL_SOCKET_FILE = "gunicorn.ctl"
UNIX_SOCKET_PATH_MAX = 107
"""The longest path a Unix socket can have on Linux, in bytes (``sun_path`` holds 108 with
the closing NUL)."""


def control_socket_path(config: Config) -> Path:
    """Where gunicorn's control socket goes (``gunicornc -s <path>`` talks to it): in the
    server's own data folder. gunicorn's default, ``$XDG_RUNTIME_DIR/gunicorn.ctl`` or
    ``~/.gunicorn/gunicorn.ctl``, is one path for every server a user runs: a second server
    would replace the first one's socket, and stopping either would delete it."""
    return (config.data_dir / CONTROL_SOCKET_FILE).absolute()


def fits_a_unix_socket(path: Path) -> bool:
    """Whether a Unix socket can be bound at ``path`` (it is not too long)."""
    return len(bytes(path)) <= UNIX_SOCKET_PATH_MAX


bind = [f"{_config.host}:{_config.port}"]
workers = _config.workers
worker_class = "omnichannel_core.gunicorn_worker.UvicornWorker"
graceful_timeout = 10
timeout = 60
keepalive = 5
accesslog = None
loglevel = _config.log_level
logger_class = StructlogGunicornLogger
control_socket = str(control_socket_path(_config))  # --no-control-socket: none at all


def on_starting(server) -> None:  # gunicorn hook: in the master, once
    from omnichannel_core.app import FAILURES_REPORTED_VARIABLE, PREPARE_STORES_COMMAND

    # In a process of its own: the master forks the workers, and must hold no store client
    # (a gRPC one left behind hangs a forked worker now and then).
    prepared = subprocess.run([sys.executable, *PREPARE_STORES_COMMAND], check=False)  # noqa: S603
    if prepared.returncode != 0:
        raise SystemExit(2)
    os.environ[FAILURES_REPORTED_VARIABLE] = "1"  # the workers, forked from here, say it not again
    announce_generated_key(ensure_api_key(_config))
    give_up_an_unusable_control_socket(server)


def give_up_an_unusable_control_socket(server) -> None:
    """Go without a control socket whose path is too long to bind, saying why in one
    warning: gunicorn would log an error at every start instead."""
    path = Path(server.cfg.control_socket)
    if server.cfg.control_socket_disable or fits_a_unix_socket(path):
        return
    server.cfg.set("control_socket_disable", True)
    server.log.warning(
        "No control socket: its path, %s, is longer than the %d bytes a Unix socket's path"
        " may have; a shorter OMNICHANNEL_DATA_DIR gets one",
        path,
        UNIX_SOCKET_PATH_MAX,
    )


def when_ready(server) -> None:  # gunicorn hook: in the master, listening, before workers
    tell_ready()


def announce_generated_key(created: str | None) -> None:
    """Show a newly generated key once, on a terminal only: logs (journald, a log service)
    must never hold it, so elsewhere only the file that holds it is named."""
    if not created:
        return
    path = key_file(_config)
    if sys.stderr.isatty():
        sys.stderr.write(
            "\nomnichannel: no OMNICHANNEL_API_KEY was set, so one was generated.\n"
            f"  API key: {created}\n"
            f"  (kept in {path}; shown only this once)\n\n"
        )
    else:
        sys.stderr.write(
            "omnichannel: no OMNICHANNEL_API_KEY was set, so one was generated;"
            f" read it from {path}\n"
        )

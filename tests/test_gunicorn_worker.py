"""The worker class the real server runs: a stop is clean, as a user reads it in the log."""

from __future__ import annotations

import json
import socket

from omnichannel_core.gunicorn_worker import unwrapped
from omnichannel_core.testing.server import API_KEY, ServerProcess
from tests.conftest import WEBHOOK_SECRET
from tests.support.sse import open_stream

ERROR_LEVELS = {"error", "critical", "exception"}


def log_lines(log: str) -> list[dict]:
    """The server's log, one JSON object a line (the servers of the tests log JSON)."""
    return [json.loads(line) for line in log.splitlines() if line.strip()]


def test_a_stopped_server_logs_no_error(tmp_path):
    """SIGTERM to the master of a server with two workers, a request served and an event
    stream open: the server exits 0 and its log holds no error-level line, no traceback,
    and not gunicorn's "Error while closing socket" (uvloop closes the listening socket
    itself; gunicorn's wrapper closed it a second time, once per worker, on every stop)."""
    server = ServerProcess(tmp_path, {"WEBHOOK_SECRET": WEBHOOK_SECRET}, workers=2).start()
    try:
        with server.client() as client:
            assert client.get("/api/conversations").status_code == 200
        with open_stream(server.base_url, API_KEY) as (_, stream):
            assert stream.next().event == "ready"
            server.stop()
    finally:
        server.stop()
    log = server.log()
    assert server.process is not None and server.process.returncode == 0
    assert "Error while closing socket" not in log
    assert "Traceback" not in log
    assert [line for line in log_lines(log) if line["level"] in ERROR_LEVELS] == []
    assert "Shutting down: Master" in log  # the log was read after the stop


def test_unwrapped_is_the_socket_inside_gunicorns_listener():
    """The worker hands uvicorn the ``socket.socket`` a gunicorn listener wraps, and a bare
    socket unchanged."""

    class Listener:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

    with socket.socket() as sock:
        assert unwrapped(Listener(sock)) is sock
        assert unwrapped(sock) is sock

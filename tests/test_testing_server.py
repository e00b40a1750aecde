"""The test kit's real server (``omnichannel_core.testing.server``) cleans up after itself:
stopping it leaves no process of it running, even when ``omnichannel serve`` had already
exited and left gunicorn and its job runner behind, and a started server holds no file open
in the test's process."""

from __future__ import annotations

import contextlib
import os
import signal
import warnings
from pathlib import Path

from omnichannel_core.testing.server import ServerProcess
from tests.support.processes import (
    WORKER_MARKER,
    child_running,
    is_alive,
    processes_with,
    wait_for,
)


def server_processes(server: ServerProcess) -> set[int]:
    """Every live process of ``server``: those with its data folder in their environment."""
    return processes_with("OMNICHANNEL_DATA_DIR", server.env["OMNICHANNEL_DATA_DIR"])


def descriptors_on(path: Path) -> list[str]:
    """This process's file descriptors open on ``path``."""
    found = []
    for descriptor in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(descriptor) == str(path):
                found.append(descriptor.name)
    return found


def whole(server: ServerProcess) -> set[int]:
    """The server's processes once all are up: serve, gunicorn's master and worker, and
    the job runner (running: it stops cleanly on SIGTERM from then on)."""
    assert server.process is not None
    wait_for(lambda: child_running(server.process.pid, WORKER_MARKER), "the job runner")
    wait_for(lambda: '"job_runner_started"' in server.log(), "the job runner to run")

    def all_up() -> set[int] | None:
        found = server_processes(server)
        return found if len(found) >= 4 else None

    return wait_for(all_up, "serve, gunicorn's master and worker, and the job runner")


def test_stop_leaves_no_process_and_no_open_log(tmp_path, monkeypatch):
    """A started server writes its log through its own descriptor: the test's process
    closed its own at once (it once left it to the garbage collector, one per server, with
    a ResourceWarning); stopping the server ends every process it started, and stopping it
    again signals nothing (the group's number may be another server's by then)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        server = ServerProcess(tmp_path, {}).start()
    try:
        assert server.process is not None
        started = whole(server)
        assert server.process.pid in started
        assert descriptors_on(server.log_path) == []
        logged = server.log_path.stat().st_size
        with server.client() as client:
            assert client.get("/health").status_code == 200
        wait_for(lambda: server.log_path.stat().st_size > logged, "the request's log line")
        assert [w for w in caught if str(server.log_path) in str(w.message)] == []
    finally:
        status = server.stop()
    assert server_processes(server) == set()
    assert not any(is_alive(pid) for pid in started)

    def never(group: int, number: int) -> None:
        raise AssertionError(f"signal {number} to group {group}, another's now")

    # The group's number is another process group's now (pids are reused).
    monkeypatch.setattr("omnichannel_core.testing.server._group_running", lambda group: True)
    monkeypatch.setattr("omnichannel_core.testing.server.os.killpg", never)
    assert status == server.process.returncode == server.stop()


def test_stop_ends_what_serve_left_running_when_it_died(tmp_path):
    """SIGKILL to ``omnichannel serve`` alone leaves gunicorn and the job runner running,
    orphaned; stopping the server still ends them (its process group), with SIGTERM first."""
    server = ServerProcess(tmp_path, {}).start()
    assert server.process is not None
    try:
        started = whole(server)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        left = server_processes(server)
        assert len(left) >= 3, "gunicorn and the job runner outlive serve"
        server.stop()
        assert server_processes(server) == set()
        assert not any(is_alive(pid) for pid in started)
        assert '"job_runner_stopped"' in server.log()  # it was told to stop, not killed
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)

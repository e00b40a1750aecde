"""``omnichannel serve`` as a user runs it: the port and worker count it honours, the job
runner it starts beside the web server, the ``.env`` file it reads, a clean SIGTERM stop of
everything it started, and one line on stderr for a bad setting."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from omnichannel_core.testing.server import API_KEY, free_port
from tests.support.processes import WORKER_MARKER, child_running, children, is_alive

OMNICHANNEL = str(Path(sys.executable).parent / "omnichannel")
START_TIMEOUT_SECONDS = 20
STOP_TIMEOUT_SECONDS = 20


def serve_env(workdir: Path, **overrides: str | None) -> dict[str, str]:
    """The environment of a test run: loopback, a data folder in ``workdir``, JSON logs."""
    env = {
        **os.environ,
        "OMNICHANNEL_HOST": "127.0.0.1",
        "OMNICHANNEL_DATA_DIR": str(workdir / "data"),
        "OMNICHANNEL_PLUGINS_DIR": str(workdir / "plugins"),
        "OMNICHANNEL_LOG_FORMAT": "json",
        "OMNICHANNEL_API_KEY": API_KEY,
    }
    for name in ("PORT", "OMNICHANNEL_WORKERS", "OMNICHANNEL_STORE", "OMNICHANNEL_LOG_LEVEL"):
        env.pop(name, None)
    env.update(overrides)
    return {name: value for name, value in env.items() if value is not None}


def worker_pids(serve_pid: int) -> set[int]:
    """The web worker processes: the children of the gunicorn master ``serve`` started."""
    master = child_running(serve_pid, "gunicorn")
    return children(master) if master is not None else set()


def wait_until_answering(process: subprocess.Popen[bytes], base_url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"omnichannel serve exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(base_url + "/health", timeout=1).status_code in (200, 503):
                return
        time.sleep(0.05)
    raise AssertionError(f"omnichannel serve did not answer on {base_url}")


def wait_for_workers(master_pid: int, count: int) -> set[int]:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        workers = worker_pids(master_pid)
        if len(workers) >= count:
            return workers
        time.sleep(0.05)
    return worker_pids(master_pid)


@contextlib.contextmanager
def serving(
    workdir: Path, env: dict[str, str], args: tuple[str, ...] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """``omnichannel serve --no-control-socket`` in ``workdir``; stopped by PID afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / "serve.log").open("ab") as log:
        process = subprocess.Popen(
            [OMNICHANNEL, "serve", "--no-control-socket", *args],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def stop_and_check(process: subprocess.Popen[bytes], base_url: str, workers: set[int]) -> None:
    """SIGTERM to the ``serve`` PID: it exits 0, the gunicorn master, its workers and the
    job runner are gone, the port is closed."""
    started = children(process.pid)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=STOP_TIMEOUT_SECONDS) == 0
    assert not any(is_alive(pid) for pid in workers | started)
    with pytest.raises(httpx.ConnectError):
        httpx.get(base_url + "/health", timeout=2)


def test_serve_honours_port_and_worker_count(tmp_path):
    """PORT and OMNICHANNEL_WORKERS decide where it listens and how many worker processes the
    gunicorn master runs; SIGTERM to its PID stops it cleanly."""
    port = free_port()
    env = serve_env(tmp_path, PORT=str(port), OMNICHANNEL_WORKERS="3")
    base_url = f"http://127.0.0.1:{port}"
    with serving(tmp_path, env) as process:
        wait_until_answering(process, base_url)
        workers = wait_for_workers(process.pid, 3)
        assert len(workers) == 3
        assert child_running(process.pid, WORKER_MARKER) is not None
        assert httpx.get(base_url + "/").json()["name"] == "omnichannel"
        stop_and_check(process, base_url, workers)


def test_serve_flags_override_the_environment(tmp_path):
    """--port and --workers win over PORT and OMNICHANNEL_WORKERS."""
    port = free_port()
    env = serve_env(tmp_path, PORT=str(free_port()), OMNICHANNEL_WORKERS="3")
    base_url = f"http://127.0.0.1:{port}"
    with serving(tmp_path, env, ("--port", str(port), "--workers", "1")) as process:
        wait_until_answering(process, base_url)
        workers = wait_for_workers(process.pid, 1)
        time.sleep(0.5)  # a second worker, if wrongly started, would show up by now
        assert len(worker_pids(process.pid)) == 1
        stop_and_check(process, base_url, workers)


def test_serve_reads_dotenv_and_environment_wins(tmp_path):
    """A .env file in the working directory is read (here: the API key and the worker count),
    and a variable set in the real environment (PORT) wins over the one in .env."""
    port = free_port()
    (tmp_path / ".env").write_text(
        f"PORT={free_port()}\nOMNICHANNEL_WORKERS=2\nOMNICHANNEL_API_KEY=key-from-dotenv\n"
    )
    env = serve_env(tmp_path, PORT=str(port), OMNICHANNEL_API_KEY=None)
    base_url = f"http://127.0.0.1:{port}"
    with serving(tmp_path, env) as process:
        wait_until_answering(process, base_url)
        workers = wait_for_workers(process.pid, 2)
        assert len(workers) == 2
        headers = {"Authorization": "Bearer key-from-dotenv"}
        assert httpx.get(base_url + "/api/contacts", headers=headers).status_code == 200
        assert httpx.get(base_url + "/api/contacts").status_code == 401
        stop_and_check(process, base_url, workers)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "abc"),
        ("OMNICHANNEL_WORKERS", "0"),
        ("OMNICHANNEL_LOG_LEVEL", "loud"),
        ("OMNICHANNEL_STORE", "mysql://x"),
        ("OMNICHANNEL_MAX_BODY_BYTES", "lots"),
    ],
)
def test_bad_value_stops_serve_with_one_line(tmp_path, variable, value):
    """A malformed setting stops `omnichannel serve` before it listens: non-zero exit and
    exactly one line on stderr, naming the variable, with no traceback."""
    env = serve_env(tmp_path, **{"PORT": str(free_port()), variable: value})
    result = subprocess.run(
        [OMNICHANNEL, "serve", "--no-control-socket"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()  # nothing was created


def test_bad_value_in_dotenv_stops_serve_with_one_line(tmp_path):
    """A malformed value in .env is reported the same way as one in the environment."""
    (tmp_path / ".env").write_text("OMNICHANNEL_WORKERS=many\n")
    result = subprocess.run(
        [OMNICHANNEL, "serve", "--no-control-socket"],
        cwd=tmp_path,
        env=serve_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert "OMNICHANNEL_WORKERS" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_pubsub_bus_without_credentials_stops_serve_with_one_line(tmp_path):
    """OMNICHANNEL_EVENT_BUS=pubsub://... on a machine with no credentials for it (no
    emulator, no service account, no Application Default Credentials) stops `omnichannel
    serve` before it listens, in one line that says which variables to set."""
    env = serve_env(
        tmp_path,
        PORT=str(free_port()),
        OMNICHANNEL_EVENT_BUS="pubsub://omni-prod-1/events",
        CLOUDSDK_CONFIG=str(tmp_path / "gcloud"),  # no gcloud login found
        NO_GCE_CHECK="true",  # never ask a metadata server
    )
    for name in (
        "PUBSUB_EMULATOR_HOST",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "FIREBASE_PROJECT_ID",
        "FIREBASE_PRIVATE_KEY",
        "FIREBASE_CLIENT_EMAIL",
    ):
        env.pop(name, None)
    result = subprocess.run(
        [OMNICHANNEL, "serve", "--no-control-socket"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert "OMNICHANNEL_EVENT_BUS" in result.stderr
    assert "GOOGLE_APPLICATION_CREDENTIALS" in result.stderr
    assert "Traceback" not in result.stderr

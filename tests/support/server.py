"""Runs the real server (gunicorn + uvicorn workers) on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path

import httpx

from omnichannel_core.cli import gunicorn_command

API_KEY = "test-key-0123456789"


def other_installed_channels() -> str:
    """Channel distributions installed beside the core (e.g. omnichannel-twilio in the dev
    environment): the core's tests disable them, so they see the same server whatever else
    is installed. A test may still enable one by setting OMNICHANNEL_DISABLE_PLUGINS."""
    names = {
        entry_point.name
        for entry_point in entry_points(group="omnichannel.channels")
        if entry_point.dist is None or entry_point.dist.metadata["Name"] != "omnichannel-core"
    }
    return ",".join(sorted(names))


START_TIMEOUT_SECONDS = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """One gunicorn server: its URL, its log file and an authenticated client."""

    def __init__(self, workdir: Path, env: Mapping[str, str], workers: int = 1) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        self.env = {
            **os.environ,
            "PORT": str(self.port),
            "OMNICHANNEL_HOST": "127.0.0.1",
            "OMNICHANNEL_WORKERS": str(workers),
            "OMNICHANNEL_DATA_DIR": str(workdir / "data"),
            "OMNICHANNEL_API_KEY": API_KEY,
            "OMNICHANNEL_LOG_FORMAT": "json",
            "OMNICHANNEL_PLUGINS_DIR": str(workdir / "plugins"),
            "OMNICHANNEL_DISABLE_PLUGINS": other_installed_channels(),
            # Tests make many requests from one address; a test about limits sets its own.
            "OMNICHANNEL_RATE_LIMIT": "0",
            "OMNICHANNEL_CREDENTIAL_RATE_LIMIT": "0",
            "OMNICHANNEL_LOGIN_RATE_LIMIT": "0",
            **env,
        }
        self.env = {k: v for k, v in self.env.items() if v is not None}
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return gunicorn_command(control_socket=False)

    def start(self) -> ServerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code in (200, 503):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not answer in {START_TIMEOUT_SECONDS}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, api_key: str | None = API_KEY) -> httpx.Client:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=10)


@contextlib.contextmanager
def running_server(
    workdir: Path, env: Mapping[str, str] | None = None, workers: int = 1
) -> Iterator[ServerProcess]:
    server = ServerProcess(workdir, env or {}, workers=workers).start()
    try:
        yield server
    finally:
        server.stop()

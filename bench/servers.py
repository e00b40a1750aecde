"""Starting and stopping the gunicorn servers under test, each in its own working folder."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from omnichannel_core.cli import gunicorn_command

REPO_ROOT = Path(__file__).resolve().parent.parent
OMNICHANNEL_APP = "omnichannel_core.app:get_app()"
BARE_APP = "bench.bare_app:app"
START_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 20
IDLE_POLL_SECONDS = 0.25
IDLE_WAIT_SECONDS = 15.0
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def server_environment(
    workdir: Path, port: int, workers: int, secret: str, api_key: str, log_level: str = "warning"
) -> dict:
    """The environment both servers get: inherited variables of ours are dropped, so a
    developer's own settings (or a ``.env``) cannot change what is measured."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("OMNICHANNEL_") and name not in ("PORT", "WEBHOOK_SECRET")
    }
    return {
        **inherited,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "PORT": str(port),
        "OMNICHANNEL_HOST": HOST,
        "OMNICHANNEL_WORKERS": str(workers),
        "OMNICHANNEL_DATA_DIR": str(workdir / "data"),
        "OMNICHANNEL_API_KEY": api_key,
        "OMNICHANNEL_PLUGINS_DIR": str(workdir / "plugins"),
        "OMNICHANNEL_LOG_LEVEL": log_level,
        "OMNICHANNEL_LOG_FORMAT": "json",
        "WEBHOOK_SECRET": secret,
    }


class ServerFailed(RuntimeError):
    """A server under test did not come up."""


class GunicornServer:
    """One gunicorn master (and its workers) serving ``app`` on a free loopback port."""

    def __init__(
        self,
        name: str,
        app: str,
        workdir: Path,
        env: dict[str, str],
        extra_args: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.app = app
        self.extra_args = tuple(extra_args)  # gunicorn options that override the settings module
        self.workdir = workdir
        self.env = env
        self.port = int(env["PORT"])
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        command = gunicorn_command(self.app, control_socket=False)
        return [*command[:-1], *self.extra_args, command[-1]]

    def start(self) -> GunicornServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches the bench, which stops us by PID
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerFailed(
                    f"{self.name} server exited with {self.process.returncode} (log above)"
                )
            if self._answers():
                return self
            time.sleep(0.1)
        raise ServerFailed(f"{self.name} server did not answer in {START_TIMEOUT_SECONDS}s")

    def _answers(self) -> bool:
        """True once a worker answers HTTP at all (any status: the bare app has no /health)."""
        connection = http.client.HTTPConnection(HOST, self.port, timeout=2)
        try:
            connection.request("GET", "/health")
            connection.getresponse().read()
            return True
        except OSError:
            return False
        finally:
            connection.close()

    def stop(self) -> None:
        """SIGTERM the master and wait; SIGKILL its process group only if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def worker_cpu_seconds(self) -> float | None:
        """User + system CPU so far of the master's children (the workers, all their
        threads), from /proc; None where there is no /proc."""
        if self.process is None:
            return None
        tick = os.sysconf("SC_CLK_TCK")
        try:
            children = set()
            for task in Path(f"/proc/{self.process.pid}/task").iterdir():
                children.update((task / "children").read_text().split())
            total = 0
            for pid in children:
                with contextlib.suppress(FileNotFoundError):  # a worker that just exited
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except OSError:
            return None
        return total / tick

    def idle_worker_cpu_seconds(self) -> float | None:
        """:meth:`worker_cpu_seconds` once every worker is up and idle (it stops growing),
        so that what is measured after it leaves the workers' start-up out."""
        deadline = time.monotonic() + IDLE_WAIT_SECONDS
        previous = self.worker_cpu_seconds()
        while previous is not None and time.monotonic() < deadline:
            time.sleep(IDLE_POLL_SECONDS)
            current = self.worker_cpu_seconds()
            if current == previous:
                return current
            previous = current
        return previous

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

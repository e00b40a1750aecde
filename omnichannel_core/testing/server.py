"""Runs the real server (``omnichannel serve``: gunicorn with uvicorn workers, and its job
runner) on a free loopback port, and ``omnichannel worker`` beside it.

What a test of a channel or a module needs when the server itself is the point: the plugin
loaded from its installed entry point, its routes served by gunicorn, webhooks over real
HTTP, its jobs and event subscribers run by the job runner. Every server gets its own working
folder (its SQLite store, its log) and the API key :data:`API_KEY`;
:meth:`ServerProcess.client` is an ``httpx.Client`` that sends it. A server started with
``job_runner=False`` (``omnichannel serve --no-worker``) runs no jobs; :func:`running_worker`
runs them in a separate ``omnichannel worker`` process on the same store.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import socket
import subprocess
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path

import httpx

from omnichannel_core.cli import serve_command
from omnichannel_core.supervisor import worker_command

API_KEY = "test-key-0123456789"
"""The server's API key (``OMNICHANNEL_API_KEY``); :meth:`ServerProcess.client` sends it."""

CHANNEL_GROUP = "omnichannel.channels"  # as omnichannel_core.plugins, without importing it


def other_installed_channels() -> str:
    """Channel distributions installed beside the core (e.g. omnichannel-twilio in the dev
    environment): the core's tests disable them, so they see the same server whatever else
    is installed. A test may still enable one by setting OMNICHANNEL_DISABLE_PLUGINS."""
    names = {
        entry_point.name
        for entry_point in entry_points(group=CHANNEL_GROUP)
        if entry_point.dist is None or entry_point.dist.metadata["Name"] != "omnichannel-core"
    }
    return ",".join(sorted(names))


def installed_channels() -> list[str]:
    """The names of every channel entry point installed (what the server would load)."""
    return sorted({entry_point.name for entry_point in entry_points(group=CHANNEL_GROUP)})


def channels_except(keep: Iterable[str]) -> str:
    """An ``OMNICHANNEL_DISABLE_PLUGINS`` value that leaves only the channels ``keep`` loaded
    (cross-cutting plugins are not affected)."""
    kept = set(keep)
    return ",".join(name for name in installed_channels() if name not in kept)


STOP_SECONDS = 15
"""How long stopping a server or worker waits after SIGTERM before it sends SIGKILL."""

START_TIMEOUT_SECONDS = 60
"""Generous: a healthy server answers in a second or two, but one on the Firestore and
Pub/Sub emulators, on a busy 2-core CI machine, once took over 20 s (each worker creates its
Pub/Sub subscription at start). Waiting longer costs nothing when it starts."""


_ENDED: weakref.WeakSet[subprocess.Popen[bytes]] = weakref.WeakSet()
"""The processes :func:`stop_process_group` saw the whole group of end."""


def _group_running(group: int) -> bool:
    """Whether a process of the process group ``group`` still runs. Read from /proc where
    there is one, where an exited process its parent has not reaped yet (a zombie) does not
    count; elsewhere the kernel is asked (``killpg(group, 0)``)."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it exited meanwhile
        state, _parent, its_group = stat.rsplit(")", 1)[1].split()[:3]
        if int(its_group) == group and state != "Z":
            return True
    return False


def _signal_group(group: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, number)


def _group_ended(group: int, seconds: float) -> bool:
    """Wait up to ``seconds`` for every process of ``group`` to exit; whether they did."""
    deadline = time.monotonic() + seconds
    while _group_running(group):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop_process_group(process: subprocess.Popen[bytes]) -> int | None:
    """Stop ``process``, started with ``start_new_session=True``, and every process of its
    group: SIGTERM to it, so it stops its children its own way (``omnichannel serve``
    forwards the signal to gunicorn and the job runner and waits for them), then SIGTERM to
    whatever of its group is left once it exited, or at once if it had exited already (a
    supervisor that died leaves gunicorn and the runner running); SIGKILL to the whole
    group when anything still runs :data:`STOP_SECONDS` after a SIGTERM. Returns its exit
    status. Harmless to call again: once its group ended, it is never signalled again (its
    number may be another process group's by then)."""
    group = process.pid
    if process in _ENDED:
        return process.returncode
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(group, signal.SIGKILL)
            process.wait(timeout=5)
    ended = not _group_running(group)
    if not ended:
        _signal_group(group, signal.SIGTERM)
        ended = _group_ended(group, STOP_SECONDS)
        if not ended:
            _signal_group(group, signal.SIGKILL)
            ended = _group_ended(group, 5)
    if ended:
        _ENDED.add(process)
    return process.returncode


WORKER_PORTS = range(20000, 32768)
"""Where a worker of a parallel run (pytest-xdist) takes its ports: below Linux's ephemeral
range (32768-60999), so no ``bind(0)`` or outgoing connection is ever handed one."""


def free_port() -> int:
    """A loopback port nobody listens on now (for a server, or for an unreachable URL).

    The port is bound only later, by the server it is for, and until then the kernel may hand
    it to anyone asking for any port (``bind(0)``). In a parallel run, where other workers ask
    all the time, worker ``i`` of ``n`` takes its ports from :data:`WORKER_PORTS` instead, only
    those equal to ``i`` modulo ``n``: no other worker, and no ``bind(0)``, is given one.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1...: set by xdist in its workers
    if worker is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    index, count = int(worker.removeprefix("gw")), int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    ports = WORKER_PORTS[index::count]
    for _ in range(len(ports)):
        port = ports[next(_worker_tries) % len(ports)]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use, or in TIME_WAIT
            return port
    raise RuntimeError(f"no free port left for xdist worker {worker} of {count}")


_worker_tries = itertools.count(random.randrange(len(WORKER_PORTS)))  # noqa: S311 - no secret
"""Which of its ports a worker tries next: from a random one on, so runs that follow each
other do not take the same ports again."""


class ServerProcess:
    """One gunicorn server: its URL, its log file and an authenticated client.

    The server inherits this process's environment, then the test settings below, then
    ``env`` (a value of None removes a variable). By default only the channels of
    omnichannel-core load, so the core's tests see the same server whatever else is
    installed; set ``OMNICHANNEL_DISABLE_PLUGINS`` in ``env`` (e.g. to
    :func:`channels_except`) to load others. :meth:`start` waits until it answers.

    :param job_runner: False: ``omnichannel serve --no-worker``, which runs no job and no
        event subscriber (run them with :func:`running_worker`).
    """

    def __init__(
        self,
        workdir: Path,
        env: Mapping[str, str | None],
        workers: int = 1,
        *,
        job_runner: bool = True,
    ) -> None:
        self.workdir = workdir
        self.job_runner = job_runner
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        settings: dict[str, str | None] = {
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
            # Sends go out unpaced, and retries come quickly; a test about them sets its own.
            "OMNICHANNEL_SEND_RATES": "*=0",
            "OMNICHANNEL_SEND_BACKOFF_MS": "50",
            # The job runner learns of a queued message, and a caller who waits of its
            # outcome, within a poll of the event log: a short one keeps each send quick.
            "OMNICHANNEL_EVENT_POLL_MS": "50",
            **env,
        }
        self.env = {k: v for k, v in settings.items() if v is not None}
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """``omnichannel serve``: the web server and (unless ``job_runner`` is False) its job
        runner, as users run them."""
        return serve_command(control_socket=False, worker=self.job_runner)

    def start(self) -> ServerProcess:
        """Start gunicorn and wait for ``/health`` to answer; RuntimeError with the server's
        log when it exits or does not answer in time."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the server has its own descriptor of it
            self.process = subprocess.Popen(  # noqa: S603 - our own gunicorn command line
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
                self.stop()  # what it started may still run
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code in (200, 503):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not answer in {START_TIMEOUT_SECONDS}s:\n{self.log()}")

    def stop(self) -> int | None:
        """Stop ``omnichannel serve`` and everything it started, even when it exited
        already (:func:`stop_process_group`); its exit status, None if never started."""
        return None if self.process is None else stop_process_group(self.process)

    def log(self) -> str:
        """What the server wrote so far (JSON log lines, one per request and event)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, api_key: str | None = API_KEY) -> httpx.Client:
        """A client of the server sending ``api_key`` (None: no credentials)."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=10)


@contextlib.contextmanager
def running_server(
    workdir: Path,
    env: Mapping[str, str | None] | None = None,
    workers: int = 1,
    *,
    job_runner: bool = True,
) -> Iterator[ServerProcess]:
    """``with running_server(workdir, env) as server:`` a started server, stopped at the end;
    ``job_runner=False``: without its job runner (``omnichannel serve --no-worker``)."""
    server = ServerProcess(workdir, env or {}, workers=workers, job_runner=job_runner).start()
    try:
        yield server
    finally:
        server.stop()


RUNNER_STARTED = b'"job_runner_started"'
"""What the worker's JSON log holds once its runner runs every job and subscriber."""


@contextlib.contextmanager
def serving(workdir: Path, env: Mapping[str, str | None]) -> Iterator[ServerProcess]:
    """``running_server``, once its job runner runs: the outbox sends from the runner."""
    with running_server(workdir, env) as server:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while RUNNER_STARTED.decode() not in server.log():
            if time.monotonic() >= deadline:
                raise RuntimeError(f"the server's job runner did not start:\n{server.log()}")
            time.sleep(0.05)
        yield server


class WorkerProcess:
    """``omnichannel worker`` for a :class:`ServerProcess`: the same environment and working
    folder, so the same store and plugins; its log in ``worker.log`` there.
    :meth:`start` waits until its job runner has started."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.log_path = server.workdir / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        """Start the worker and wait for its runner; RuntimeError with its log when it exits
        or does not start in time."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own worker command line
                worker_command(),
                cwd=self.server.workdir,
                env=self.server.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.log()}")
            if RUNNER_STARTED in self.log_path.read_bytes()[offset:]:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"worker did not start in {START_TIMEOUT_SECONDS}s:\n{self.log()}")

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def stop(self) -> int | None:
        """SIGTERM to its PID (it stops its jobs and hands back their leases), then to
        anything left of its process group, SIGKILL if it does not stop
        (:func:`stop_process_group`); its exit status, None if never started."""
        return None if self.process is None else stop_process_group(self.process)

    def log(self) -> str:
        """What the worker wrote so far (JSON log lines)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def running_worker(server: ServerProcess) -> Iterator[WorkerProcess]:
    """``with running_worker(server) as worker:`` ``omnichannel worker`` on the server's
    store, started (its runner running) and stopped at the end."""
    worker = WorkerProcess(server).start()
    try:
        yield worker
    finally:
        worker.stop()


def kill_process_group(process: subprocess.Popen[bytes]) -> None:
    """``kill -9`` a process started with ``start_new_session=True`` and everything of its
    group, as a crash would: nothing of it gets to clean up."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


class Deployment:
    """A server without its own job runner (``serve --no-worker``) and ``runners`` separate
    ``omnichannel worker`` processes, on one store: the pieces a crash test kills one at a
    time (:meth:`crash_server`, :meth:`crash_runner`) and starts again. The server's URL
    changes when it is started again: ask :meth:`client` after a crash."""

    def __init__(
        self, workdir: Path, env: Mapping[str, str | None], *, workers: int = 2, runners: int = 2
    ) -> None:
        self.workdir = workdir
        self.env = env
        self.workers = workers
        self.server = ServerProcess(workdir, env, workers, job_runner=False).start()
        self.runners = [WorkerProcess(self.server).start() for _ in range(runners)]

    def crash_server(self) -> None:
        """``kill -9`` the web server (its master and workers), then start it again."""
        assert self.server.process is not None
        kill_process_group(self.server.process)
        self.server = ServerProcess(self.workdir, self.env, self.workers, job_runner=False).start()

    def crash_runner(self, index: int) -> None:
        """``kill -9`` one job runner, whatever it was doing, then start another."""
        process = self.runners[index].process
        assert process is not None
        kill_process_group(process)
        self.runners[index] = WorkerProcess(self.server).start()

    def client(self, api_key: str | None = API_KEY) -> httpx.Client:
        return self.server.client(api_key)

    def stop(self) -> None:
        for runner in self.runners:
            runner.stop()
        self.server.stop()

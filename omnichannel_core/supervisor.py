"""``omnichannel serve``: the web server (gunicorn with uvicorn workers) and, unless told
not to, one job runner beside it (``omnichannel worker``), each a child process of this one.

The runner starts once the web server is ready (its master has checked the configuration and
brought every store's schema up to date), which the master tells through a pipe whose
descriptor it finds in :data:`READY_FD_VARIABLE`; a server that fails to start leaves no runner
behind. When the web server exits, the runner is stopped and ``serve`` exits with the
server's status. When the runner exits on its own (it crashed), it is started again after a
pause that doubles up to :data:`LONGEST_RESTART_SECONDS`, and the web server goes on
meanwhile.

Signals, as gunicorn takes them when it is run alone: SIGTERM, SIGINT and SIGQUIT stop both
children; SIGHUP reloads (gunicorn starts new workers, the runner is restarted);
:data:`WEB_ONLY_SIGNALS` go to gunicorn alone (SIGTTIN/SIGTTOU: one worker more or fewer,
SIGUSR1: reopen its log files...). Both children are told to stop (SIGTERM) if this process
dies without a word (SIGKILL), rather than be left running on their own.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from types import FrameType

import structlog

from omnichannel_core.app import FAILURES_REPORTED_VARIABLE

log = structlog.get_logger("omnichannel.serve")

FIRST_RESTART_SECONDS = 1.0
LONGEST_RESTART_SECONDS = 60.0
STOP_SECONDS = 30.0
"""How long stopping waits for a child to exit after SIGTERM before killing it."""
READY_FD_VARIABLE = "OMNICHANNEL_READY_FD"
"""Where the web server's master finds the pipe to say it is ready on."""


def tell_ready() -> None:
    """In the web server's master, once it is ready: tell ``serve`` (when it started us)."""
    fd = os.environ.pop(READY_FD_VARIABLE, None)
    if fd is None or not fd.isdigit():
        return
    try:
        os.write(int(fd), b"ready")
        os.close(int(fd))  # before the workers are forked: they must not hold it
    except OSError:
        pass  # serve is gone; the server itself goes on


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
WEB_ONLY_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU, signal.SIGWINCH)
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _stop_with_parent() -> None:
    """In a child, before it runs: be sent SIGTERM when ``serve`` dies (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: children outlive a killed serve, as they did before


def worker_command() -> list[str]:
    return [sys.executable, "-m", "omnichannel_core.cli", "worker"]


class Supervisor:
    """Runs the web server and the job runner as children until the server exits.

    :param web: the web server's command line.
    :param worker: the job runner's, or None to run none.
    """

    def __init__(
        self, web: Sequence[str], worker: Sequence[str] | None, env: Mapping[str, str]
    ) -> None:
        self.web_command = list(web)
        self.worker_command = list(worker) if worker is not None else None
        self.env = dict(env)
        self.web: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self._restart_pause = FIRST_RESTART_SECONDS
        self._started_at = 0.0
        self._next_start: float | None = None
        self._restart_now = False

    def _start(self, command: Sequence[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - our own command lines
            command, env=self.env, preexec_fn=_stop_with_parent
        )

    def _start_web(self) -> tuple[subprocess.Popen[bytes], int]:
        """The web server, and the pipe end it says it is ready on."""
        ready, ready_writer = os.pipe()
        env = {**self.env, READY_FD_VARIABLE: str(ready_writer)}
        try:
            web = subprocess.Popen(  # noqa: S603 - our own command line
                self.web_command, env=env, pass_fds=(ready_writer,), preexec_fn=_stop_with_parent
            )
        finally:
            os.close(ready_writer)
        return web, ready

    def _forward(self, number: int, frame: FrameType | None) -> None:
        self.stopping = True
        for child in (self.web, self.worker):
            if child is not None and child.poll() is None:
                child.send_signal(number)

    def _to_web(self, number: int, frame: FrameType | None) -> None:
        if self.web is not None and self.web.poll() is None:
            self.web.send_signal(number)

    def _reload(self, number: int, frame: FrameType | None) -> None:
        """SIGHUP: gunicorn reloads its workers; the runner is stopped and started again at
        once (new code, new settings), with no pause and no error logged."""
        self._to_web(number, frame)
        if self.worker is not None and self.worker.poll() is None:
            self._restart_now = True
            self.worker.send_signal(signal.SIGTERM)

    def run(self) -> int:
        for number in STOP_SIGNALS:
            signal.signal(number, self._forward)
        for number in WEB_ONLY_SIGNALS:
            signal.signal(number, self._to_web)
        signal.signal(signal.SIGHUP, self._reload)
        self.web, ready = self._start_web()
        try:
            while True:
                status = self.web.poll()
                if status is not None:
                    self._stop_worker()
                    return status
                if ready >= 0:
                    said = self._read_ready(ready)
                    if said is not None:
                        os.close(ready)
                        ready = -1
                        if said:
                            self._start_worker()
                else:
                    self._watch_worker()
                    time.sleep(0.2)
        finally:
            if ready >= 0:
                os.close(ready)

    def _read_ready(self, ready: int) -> bool | None:
        """True once the web server said it is ready, False if it closed the pipe without
        saying so, None while it has said nothing yet (after waiting a moment)."""
        readable, _, _ = select.select([ready], [], [], 0.2)
        if not readable:
            return None
        return os.read(ready, 16) == b"ready"

    def _start_worker(self) -> None:
        if self.worker_command is not None and not self.stopping:
            # The master, ready, has logged what failed to load: the runner need not again.
            self.env[FAILURES_REPORTED_VARIABLE] = "1"
            self.worker = self._start(self.worker_command)
            self._started_at = time.monotonic()

    def _watch_worker(self) -> None:
        """Start the runner again: at once after a reload, once its pause is over if it
        exited on its own."""
        if self.worker is None or self.worker_command is None or self.stopping:
            return
        now = time.monotonic()
        status = self.worker.poll()
        if status is None:
            if now - self._started_at > LONGEST_RESTART_SECONDS:
                self._restart_pause = FIRST_RESTART_SECONDS  # it ran a while: forgive
            return
        if self._restart_now:  # SIGHUP: it was told to stop, to be started again
            self._restart_now = False
            log.info("worker_reloaded")
            self._start_worker()
            return
        if self._next_start is None:
            log.error("worker_exited", exit_status=status, restart_in=self._restart_pause)
            self._next_start = now + self._restart_pause
        elif now >= self._next_start:
            self.worker = self._start(self.worker_command)
            self._started_at = now
            self._next_start = None
            self._restart_pause = min(self._restart_pause * 2, LONGEST_RESTART_SECONDS)

    def _stop_worker(self) -> None:
        worker = self.worker
        if worker is None or worker.poll() is not None:
            return
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()

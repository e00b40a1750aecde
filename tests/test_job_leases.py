"""Singleton jobs across servers: two ``omnichannel serve`` on one Firestore (the official
emulator), each with its own job runner, run the periodic job ``ticker.tick`` (a local
plugin that writes down each run with its process id) once per period between them; when
the runner holding its lease is killed, the lease expires and the other server's runner
takes the job over."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnichannel_core.testing.emulators import Emulator
from omnichannel_core.testing.server import ServerProcess, running_server
from tests.fixtures.distributions import add_local_plugin
from tests.support.job_logs import job_runs, log_events
from tests.support.processes import WORKER_MARKER, child_running, is_alive, wait_for

LEASE_SECONDS = 6
EVERY_SECONDS = 1.0


@pytest.fixture(scope="module")
def ticks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file both servers' ``ticker.tick`` write their runs to."""
    return tmp_path_factory.mktemp("ticks") / "ticks.jsonl"


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, firestore_emulator: Emulator, ticks: Path
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = {
        "OMNICHANNEL_STORE": f"firestore://demo-jobs-{uuid.uuid4().hex[:10]}",
        "FIRESTORE_EMULATOR_HOST": firestore_emulator.host_port,
        "OMNICHANNEL_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "TICKER_LOG": str(ticks),
        "TICKER_EVERY": str(EVERY_SECONDS),
    }
    with contextlib.ExitStack() as stack:
        started = []
        for name in ("a", "b"):
            workdir = tmp_path_factory.mktemp(f"server-{name}")
            add_local_plugin(workdir, "ticker")
            started.append(stack.enter_context(running_server(workdir, env)))
        yield started[0], started[1]


def runner_of(server: ServerProcess) -> int:
    """The pid of the job runner ``omnichannel serve`` started, once it runs the job."""
    assert server.process is not None
    pid = wait_for(
        lambda: child_running(server.process.pid, WORKER_MARKER), "the server's job runner"
    )
    wait_for(
        lambda: any(
            "ticker.tick" in r["jobs"] for r in log_events(server.log(), "job_runner_started")
        ),
        "its runner to start ticker.tick",
    )
    return pid


def test_a_singleton_job_runs_once_per_period_between_two_servers(servers, ticks):
    """With both servers' runners up, ``ticker.tick`` runs in one of them only, and never
    sooner than its period after the last run: not once per server."""
    runners = {runner_of(server) for server in servers}
    assert len(runners) == 2
    since = time.time()
    wait_for(lambda: len(job_runs(ticks, since=since)) >= 6, "six runs of ticker.tick")
    runs = job_runs(ticks, since=since)
    assert {run["pid"] for run in runs} < runners  # one of the two, the same one each time
    assert len({run["pid"] for run in runs}) == 1
    starts = [run["at"] for run in runs]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) >= EVERY_SECONDS - 0.05, gaps


def test_a_killed_runners_lease_expires_and_the_other_server_takes_over(servers, ticks):
    """SIGKILL to the runner holding the lease, as a run ends (when it writes the run down
    in the lease): it never hands the lease back, so the job stops until the lease expires,
    then the other server's runner runs it, and nothing the dead runner was writing keeps
    the lease from it. The killed runner's server is stopped at once (before its
    supervisor would start a new runner, which would race the other server for the
    lease)."""
    by_runner = {runner_of(server): server for server in servers}
    # Kill it as a run ends: as it writes down that run, in the lease's document.
    finished = len(job_runs(ticks, phase="end"))
    holder = wait_for(
        lambda: job_runs(ticks, phase="end")[finished:], "a run of ticker.tick", every=0.001
    )[0]["pid"]
    assert holder in by_runner
    [other_runner] = set(by_runner) - {holder}
    stopped = by_runner[holder]
    assert stopped.process is not None

    os.kill(holder, signal.SIGKILL)
    killed_at = time.time()
    stopped.process.send_signal(signal.SIGTERM)
    assert stopped.process.wait(timeout=30) == 0
    assert not is_alive(holder)

    resumed = wait_for(
        lambda: job_runs(ticks, since=killed_at),
        "a run after the kill",
        timeout=LEASE_SECONDS + 30,
    )[0]
    assert resumed["pid"] == other_runner
    # The dead runner renewed its lease at most a third of its time before the kill.
    assert resumed["at"] >= killed_at + LEASE_SECONDS * 2 / 3 - 0.5

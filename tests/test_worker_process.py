"""The job runner as a process, on SQLite: ``omnichannel worker`` beside ``omnichannel serve
--no-worker`` stops cleanly on SIGTERM and hands its leases back at once; the runner
``omnichannel serve`` starts is started again when it crashes, and stopped with the rest.

The jobs are the local plugin ``ticker`` (tests/fixtures/local_plugins/ticker.py), which
writes down each run with its process id."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from omnichannel_core.testing.server import WorkerProcess, running_server
from tests.fixtures.distributions import add_local_plugin
from tests.support.job_logs import job_runs, log_events, problems, read_records
from tests.support.processes import (
    WORKER_MARKER,
    child_running,
    children,
    is_alive,
    processes_with,
    wait_for,
)


def test_sigterm_lets_the_running_job_finish_and_hands_the_leases_back(tmp_path):
    """SIGTERM to ``omnichannel worker`` while ``ticker.tick`` is in a run (one that does not
    look at ``control.stopping``): the run finishes, the continuous ``ticker.loop`` stops
    when told, the worker exits 0 without logging an error, and a second worker, waiting
    for the leases, takes both at once: they last an hour, so it could not have waited for
    them to expire."""
    ticks = tmp_path / "ticks.jsonl"
    add_local_plugin(tmp_path, "ticker")
    env = {
        "OMNICHANNEL_JOB_LEASE_SECONDS": "3600",
        "TICKER_LOG": str(ticks),
        "TICKER_EVERY": "1",
        "TICKER_RUN_SECONDS": "3",
        "TICKER_LOOP": "1",
    }
    with running_server(tmp_path, env, job_runner=False) as server:
        first = WorkerProcess(server).start()
        second = WorkerProcess(server)  # both log to worker.log
        try:
            wait_for(lambda: job_runs(ticks, "ticker.loop"), "ticker.loop to start")
            wait_for(lambda: job_runs(ticks), "ticker.tick to start")
            second.start()

            in_a_run = wait_for(lambda: _in_a_run(ticks), "a run of ticker.tick under way")
            assert in_a_run["pid"] == first.pid
            assert first.stop() == 0
            stopped_at = time.time()

            # The run under way finished, no new one began, and the loop stopped.
            by_first = [r for r in read_records(ticks) if r["pid"] == first.pid]
            assert [r["phase"] for r in by_first if r["job"] == "ticker.tick"][-2:] == [
                "start",
                "end",
            ]
            assert [r["phase"] for r in by_first if r["job"] == "ticker.loop"] == ["start", "end"]
            [stopped] = log_events(first.log(), "job_runner_stopped")  # the second runs on
            assert stopped["holder"].split(":")[1] == str(first.pid)
            assert stopped["cancelled"] == 0
            assert problems(first.log()) == []

            for job in ("ticker.tick", "ticker.loop"):
                taken = wait_for(lambda job=job: job_runs(ticks, job, since=stopped_at), job)
                assert taken[0]["pid"] == second.pid
            assert all(r["at"] < stopped_at for r in read_records(ticks) if r["pid"] == first.pid)
        finally:
            first.stop()
            second.stop()


def _in_a_run(ticks: Path) -> dict | None:
    """The start of a run of ticker.tick that has not ended yet."""
    runs = [r for r in read_records(ticks) if r["job"] == "ticker.tick"]
    return runs[-1] if runs and runs[-1]["phase"] == "start" else None


def test_serve_restarts_a_crashed_runner_and_stops_everything_on_sigterm(tmp_path):
    """SIGKILL to the job runner ``omnichannel serve`` started: serve logs that it exited and
    starts a new one, which runs the job again once the dead one's lease expires. SIGTERM
    to serve then stops it all: serve exits 0, and no process of the server is left, by
    pid nor by anything still running with its data folder."""
    ticks = tmp_path / "ticks.jsonl"
    add_local_plugin(tmp_path, "ticker")
    env = {"OMNICHANNEL_JOB_LEASE_SECONDS": "3", "TICKER_LOG": str(ticks), "TICKER_EVERY": "1"}
    with running_server(tmp_path, env) as server:
        serve = server.process
        assert serve is not None
        crashed = wait_for(lambda: child_running(serve.pid, WORKER_MARKER), "the job runner")
        wait_for(lambda: [r for r in job_runs(ticks) if r["pid"] == crashed], "its first run")

        os.kill(crashed, signal.SIGKILL)
        killed_at = time.time()
        restarted = wait_for(
            lambda: (pid := child_running(serve.pid, WORKER_MARKER)) != crashed and pid,
            "a new job runner",
        )
        ran = wait_for(lambda: job_runs(ticks, since=killed_at), "a run by the new runner")
        assert {r["pid"] for r in ran} == {restarted}
        [exited] = log_events(server.log(), "worker_exited")
        assert exited["exit_status"] == -signal.SIGKILL

        web_master = child_running(serve.pid, "gunicorn")
        assert web_master is not None
        started = {restarted, web_master, *children(web_master)}
        assert all(is_alive(pid) for pid in started)
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
        assert not any(is_alive(pid) for pid in started | {crashed})
        assert processes_with("OMNICHANNEL_DATA_DIR", server.env["OMNICHANNEL_DATA_DIR"]) == set()


def test_sighup_reloads_the_web_workers_and_restarts_the_runner(tmp_path):
    """SIGHUP to ``omnichannel serve`` reloads as gunicorn alone does: new web workers, and
    a new job runner started at once (no error logged, no pause); serve and gunicorn's
    master go on, and the server keeps answering."""
    with running_server(tmp_path, {"OMNICHANNEL_WORKERS": "1"}) as server:
        serve = server.process
        assert serve is not None
        runner = wait_for(lambda: child_running(serve.pid, WORKER_MARKER), "the job runner")
        web_master = child_running(serve.pid, "gunicorn")
        assert web_master is not None
        web_workers = wait_for(lambda: children(web_master), "gunicorn's workers")

        serve.send_signal(signal.SIGHUP)
        wait_for(lambda: (now := children(web_master)) and not now & web_workers, "new web workers")
        wait_for(
            lambda: child_running(serve.pid, WORKER_MARKER) not in (None, runner),
            "a new job runner",
        )
        assert serve.poll() is None and is_alive(web_master)
        assert wait_for(lambda: server.client().get("/health").status_code == 200, "answers")
        assert log_events(server.log(), "worker_exited") == []
        assert len(log_events(server.log(), "worker_reloaded")) == 1


def test_a_killed_serve_takes_its_children_with_it(tmp_path):
    """SIGKILL to ``omnichannel serve``, which cannot forward it: gunicorn and the job
    runner are told to stop (SIGTERM) as their parent dies, rather than be left running."""
    with running_server(tmp_path, {}) as server:
        serve = server.process
        assert serve is not None
        runner = wait_for(lambda: child_running(serve.pid, WORKER_MARKER), "the job runner")
        web_master = child_running(serve.pid, "gunicorn")
        assert web_master is not None
        left = {runner, web_master, *children(web_master)}
        serve.kill()
        serve.wait(timeout=10)
        wait_for(lambda: not any(is_alive(pid) for pid in left), "the children to stop")
        assert processes_with("OMNICHANNEL_DATA_DIR", server.env["OMNICHANNEL_DATA_DIR"]) == set()

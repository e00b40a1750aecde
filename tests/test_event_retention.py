"""Retention of the event log (the job ``events.prune``) end to end, on SQLite: run by the job
runner, never by the web processes; it prunes events older than
``OMNICHANNEL_EVENT_RETENTION_HOURS`` that every subscriber has handled, and keeps those a
subscriber has yet to handle (up to ``OMNICHANNEL_EVENT_RETENTION_MAX_HOURS``: past that,
see tests/test_job_subscribers.py).

The events are the local plugin ``listener``'s pings, dated in the past when asked; its
flaky subscriber is held up by a file. The log is read with plain sqlite3."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from pathlib import Path

import httpx

from omnichannel_core.testing.server import WorkerProcess, running_server
from omnichannel_core.timestamps import utcnow
from tests.fixtures.distributions import add_local_plugin
from tests.support.job_logs import log_events, read_records
from tests.support.processes import wait_for

PRUNE_SECONDS = 1
OLD = 90 * 60
"""An age past the retention (an hour here) and within its bound (two)."""


def pings_kept(database: Path) -> list[int]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT record_id FROM events WHERE type = 'listener.ping' ORDER BY seq"
        ).fetchall()
    return [int(row[0]) for row in rows]


def handled(folder: Path, subscriber: str) -> list[int]:
    return [record["n"] for record in read_records(folder / f"{subscriber}.log")]


def test_retention_keeps_what_a_subscriber_has_yet_to_handle_and_prunes_the_rest(tmp_path):
    """Old pings stay while no job runner runs (the web processes never prune). With a
    worker, they stay while the flaky subscriber has not handled them, however often the
    log is pruned, although the steady one has; once it has, they go, and a recent ping
    stays. Only the worker logs the pruning."""
    folder = tmp_path / "listened"
    folder.mkdir()
    (folder / "block").touch()
    add_local_plugin(tmp_path, "listener")
    env = {
        "LISTENER_DIR": str(folder),
        "OMNICHANNEL_EVENT_RETENTION_HOURS": "1",
        "OMNICHANNEL_EVENT_RETENTION_MAX_HOURS": "2",
        "OMNICHANNEL_EVENT_PRUNE_SECONDS": str(PRUNE_SECONDS),
    }
    with running_server(tmp_path, env, job_runner=False) as server:
        database = Path(server.env["OMNICHANNEL_DATA_DIR"]) / "omnichannel.db"
        with server.client() as client:
            for n in (0, 1):
                ping = {"n": n, "age_seconds": OLD}
                assert client.post("/api/test-pings", json=ping).status_code == 204

        time.sleep(2 * PRUNE_SECONDS + 0.5)  # long enough for a prune, had anything run one
        assert pings_kept(database) == [0, 1]
        assert _prune(server.base_url) == {"running": False, "last_run_at": None, "report": None}

        worker = WorkerProcess(server).start()
        try:
            wait_for(lambda: handled(folder, "steady") == [0, 1], "the steady subscriber")
            handled_at = utcnow()
            wait_for(lambda: _pruned_since(server.base_url, handled_at), "a prune", every=0.2)
            assert pings_kept(database) == [0, 1]
            flaky = httpx.get(server.base_url + "/health").json()["subscribers"]["listener.flaky"]
            assert (flaky["behind"], flaky["lag_seconds"] >= OLD) == (False, True)

            with server.client() as client:
                assert client.post("/api/test-pings", json={"n": 2}).status_code == 204
            (folder / "block").unlink()
            wait_for(lambda: handled(folder, "flaky") == [0, 1, 2], "the flaky subscriber")
            wait_for(lambda: pings_kept(database) == [2], "the handled old pings to go")
        finally:
            worker.stop()
    assert sum(r["count"] for r in log_events(worker.log(), "events_pruned")) >= 2
    assert log_events(server.log(), "events_pruned") == []


def _prune(base_url: str) -> dict:
    return httpx.get(base_url + "/health", timeout=10).json()["jobs"]["events.prune"]


def _pruned_since(base_url: str, moment: datetime) -> bool:
    last = _prune(base_url)["last_run_at"]
    return last is not None and datetime.fromisoformat(last) > moment

"""Event subscribers end to end, on SQLite: ``omnichannel serve --no-worker`` logs the events
(the local plugin ``listener``'s pings) and standalone ``omnichannel worker`` processes run
its two subscribers, which write down what they are handed.

Each event is handed to a subscriber in log order, at least once, from a cursor kept in the
store (a worker's restart loses nothing); a handler that raises is retried with a pause that
doubles and holds up no other subscriber; ``/health`` shows each subscriber's lag, failures
and whether retention overtook it; and one that fell behind retention's bound resyncs."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from omnichannel_core.jobs.subscribers import FIRST_RETRY_SECONDS
from omnichannel_core.testing.server import ServerProcess, WorkerProcess, running_server
from tests.fixtures.distributions import add_local_plugin
from tests.support.job_logs import read_records
from tests.support.processes import wait_for

HOUR = 3600
BOUND = 2 * HOUR
"""OMNICHANNEL_EVENT_RETENTION_MAX_HOURS, in seconds."""
SOON = 5
"""Seconds: a ping logged BOUND - SOON ago passes the bound that much later, once both
subscribers had it (an older one could be pruned before they read it)."""
STEADY = "listener.steady"
FLAKY = "listener.flaky"


class Listener:
    """The server, the folder the listener plugin writes to, and workers to run it."""

    def __init__(self, server: ServerProcess, folder: Path) -> None:
        self.server = server
        self.folder = folder

    def worker(self) -> WorkerProcess:
        """``omnichannel worker`` on the server's store, its runner started."""
        return WorkerProcess(self.server).start()

    def ping(self, *numbers: int, age_seconds: int = 0) -> None:
        with self.server.client() as client:
            for n in numbers:
                body = {"n": n, "age_seconds": age_seconds}
                assert client.post("/api/test-pings", json=body).status_code == 204

    def handled(self, subscriber: str) -> list[int]:
        """The pings ``subscriber`` handled, in order (with any handed over twice)."""
        name = subscriber.removeprefix("listener.")
        return [record["n"] for record in read_records(self.folder / f"{name}.log")]

    def has_handled(self, subscriber: str, numbers: list[int]) -> bool:
        return set(numbers) <= set(self.handled(subscriber))

    def attempts(self, n: int) -> list[dict[str, Any]]:
        """The flaky subscriber's attempts at ping ``n``."""
        return [r for r in read_records(self.folder / "attempts.log") if r["n"] == n]

    def resyncs(self) -> list[str]:
        return [record["outcome"] for record in read_records(self.folder / "resync.log")]

    def block(self) -> None:
        """Make the flaky subscriber's handler (and its resync) raise."""
        (self.folder / "block").touch()

    def unblock(self) -> None:
        (self.folder / "block").unlink(missing_ok=True)

    def health(self) -> dict[str, Any]:
        return httpx.get(self.server.base_url + "/health", timeout=10).json()


@pytest.fixture(scope="module")
def listener(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    workdir = tmp_path_factory.mktemp("listener")
    folder = workdir / "listened"
    folder.mkdir()
    add_local_plugin(workdir, "listener")
    env = {
        "LISTENER_DIR": str(folder),
        "OMNICHANNEL_EVENT_RETENTION_HOURS": "1",
        "OMNICHANNEL_EVENT_RETENTION_MAX_HOURS": str(BOUND // HOUR),
        "OMNICHANNEL_EVENT_PRUNE_SECONDS": "1",
    }
    with running_server(workdir, env, job_runner=False) as server:
        yield Listener(server, folder)


@pytest.fixture
def unblocked(listener: Listener) -> Iterator[Listener]:
    listener.unblock()
    yield listener
    listener.unblock()


def lagging(listener: Listener, *names: str) -> dict[str, Any] | None:
    """The subscribers in /health, once each of ``names`` shows a lag."""
    subscribers = listener.health()["subscribers"]
    return subscribers if all(subscribers[name]["lag_seconds"] > 0 for name in names) else None


def in_order(handled: list[int], expected: list[int]) -> bool:
    """Every expected ping, each first handed over in the order expected (a ping handed over
    again after a restart may repeat)."""
    firsts = list(dict.fromkeys(n for n in handled if n in expected))
    return firsts == expected


def test_every_event_in_order_across_a_worker_restart(unblocked):
    """Pings logged while a worker runs reach both subscribers in order; pings logged while
    no worker runs wait for the next one, which goes on from each subscriber's stored
    cursor: none lost, in order. Meanwhile /health shows them waiting."""
    listener = unblocked
    first = listener.worker()
    try:
        listener.ping(100, 101, 102)
        for name in (STEADY, FLAKY):
            wait_for(lambda name=name: listener.has_handled(name, [100, 101, 102]), name)
        assert first.stop() == 0
    finally:
        first.stop()

    listener.ping(103, 104, 105)  # no worker runs
    waiting = wait_for(lambda: lagging(listener, STEADY, FLAKY), "the lag to show in /health")
    for name in (STEADY, FLAKY):
        assert waiting[name]["started"] is True
        assert 103 not in listener.handled(name)

    second = listener.worker()
    try:
        expected = list(range(100, 106))
        for name in (STEADY, FLAKY):
            wait_for(lambda name=name: listener.has_handled(name, expected), name)
            assert in_order(listener.handled(name), expected), listener.handled(name)
        caught_up = wait_for(
            lambda: (
                (s := listener.health()["subscribers"])[STEADY]["lag_seconds"] == 0
                and s[FLAKY]["lag_seconds"] == 0
                and s
            ),
            "no lag",
        )
        assert caught_up[STEADY]["ok"] and caught_up[FLAKY]["ok"]
    finally:
        second.stop()


def test_a_failing_handler_is_retried_with_backoff_and_holds_up_no_other(unblocked):
    """While the flaky subscriber's handler raises on a ping, it gets that same ping again,
    each pause twice the last (1 s, 2 s...), and nothing after it; the steady subscriber
    goes on meanwhile. /health shows the flaky one failing and lagging, the other well, and
    the jobs. Once the handler works, the flaky one gets both pings, in order."""
    listener = unblocked
    worker = listener.worker()
    try:
        listener.block()
        listener.ping(200, 201)
        wait_for(lambda: listener.has_handled(STEADY, [200, 201]), "the steady subscriber")
        wait_for(lambda: len(listener.attempts(200)) >= 3, "three attempts at ping 200")
        assert listener.attempts(201) == []
        assert not {200, 201} & set(listener.handled(FLAKY))

        health = wait_for(lambda: lagging(listener, FLAKY) and listener.health(), "a lag")
        flaky, steady = health["subscribers"][FLAKY], health["subscribers"][STEADY]
        assert (flaky["ok"], flaky["behind"]) == (False, False)
        assert flaky["failures"] >= 2
        assert (steady["ok"], steady["lag_seconds"], steady["failures"]) == (True, 0.0, 0)
        assert health["status"] == "degraded"
        assert health["jobs"]["events.prune"]["running"] is True

        times = [attempt["at"] for attempt in listener.attempts(200)[:3]]
        pauses = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert pauses[0] >= FIRST_RETRY_SECONDS - 0.05, pauses
        assert pauses[1] >= 2 * FIRST_RETRY_SECONDS - 0.05, pauses

        listener.unblock()
        wait_for(lambda: listener.has_handled(FLAKY, [200, 201]), "the flaky subscriber")
        assert in_order(listener.handled(FLAKY), [200, 201])
        well = wait_for(
            lambda: (s := listener.health()["subscribers"][FLAKY])["failures"] == 0 and s, "ok"
        )
        assert well["ok"] is True
    finally:
        worker.stop()


def test_a_subscriber_behind_the_retention_bound_is_marked_and_resyncs(unblocked):
    """The flaky subscriber stuck on a ping that grows older than retention's bound (two
    hours here) while its handler fails: retention no longer keeps the log for it, prunes the
    ping, and marks it behind, which /health shows. It resyncs rather than retry the pruned
    ping (its resync is called; while that raises it stays behind), then goes on with what
    is logged next."""
    listener = unblocked
    worker = listener.worker()
    try:
        listener.block()
        listener.ping(300, age_seconds=BOUND - SOON)
        wait_for(lambda: listener.has_handled(STEADY, [300]), "the steady subscriber")
        wait_for(lambda: listener.attempts(300), "an attempt at ping 300")
        behind = wait_for(
            lambda: (h := listener.health())["subscribers"][FLAKY]["behind"] and h,
            "/health to show the flaky subscriber behind",
        )
        assert behind["subscribers"][FLAKY]["ok"] is False
        assert behind["subscribers"][STEADY]["behind"] is False
        assert behind["status"] == "degraded"
        wait_for(lambda: "raised" in listener.resyncs(), "a resync")

        listener.unblock()
        wait_for(lambda: "done" in listener.resyncs(), "the resync to finish")
        wait_for(lambda: not listener.health()["subscribers"][FLAKY]["behind"], "no longer behind")
        listener.ping(301)
        wait_for(lambda: listener.has_handled(FLAKY, [301]), "the next ping")
        assert 300 not in listener.handled(FLAKY)
    finally:
        worker.stop()

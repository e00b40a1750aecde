"""What lets the suite run on several pytest-xdist workers: the workers of a run share one
emulator of each kind, each worker takes ports no other worker is given, and a test marked
``alone`` runs while no other test does (`omnichannel_core.testing.plugin`)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from omnichannel_core.testing.emulators import (
    Emulator,
    shared_emulator,
    start_pubsub,
    stop_shared_emulators,
)
from omnichannel_core.testing.server import WORKER_PORTS, free_port


def test_workers_share_one_emulator_until_the_controller_stops_it(tmp_path: Path) -> None:
    """The first call starts the emulator and records it; a second call (another worker)
    gets the same one without starting another; stop_shared_emulators ends its process
    group and forgets it."""
    started: list[Emulator] = []

    def start(workdir: Path) -> Emulator:
        started.append(start_pubsub(workdir))
        return started[-1]

    first = shared_emulator("pubsub", start, tmp_path)
    try:
        second = shared_emulator("pubsub", start, tmp_path)
        assert len(started) == 1
        assert (second.host_port, second.pgid, second.process) == (
            first.host_port,
            first.pgid,
            None,
        )
        assert httpx.get(second.base_url + "/", timeout=5).text.strip() == "Ok"
    finally:
        stop_shared_emulators(tmp_path)

    assert not first.group_alive()
    assert list(tmp_path.glob("*.emulator.json")) == []


def test_a_worker_takes_ports_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker 1 of 4 is given only ports of WORKER_PORTS equal to 1 modulo 4 (counted from
    the range's start), below the kernel's ephemeral range, each free, none twice in a row."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "4")
    ports = [free_port() for _ in range(20)]

    mine = set(WORKER_PORTS[1::4])
    assert all(port in mine for port in ports)
    assert len(set(ports)) == len(ports)


ALONE_TESTS = """
import time
import pytest

def record(name):
    started = time.monotonic()
    time.sleep(0.3)
    with open("times.txt", "a") as times:
        times.write(f"{name} {started} {time.monotonic()}\\n")

@pytest.mark.parametrize("number", range(8))
def test_other(number):
    record(f"other{number}")

@pytest.mark.alone
@pytest.mark.parametrize("number", range(2))
def test_alone(number):
    record(f"alone{number}")
"""


def test_a_test_marked_alone_runs_while_no_other_does(tmp_path: Path) -> None:
    """In a run of three workers, neither test marked alone overlaps any other test, while
    the other tests do run at the same time as each other."""
    (tmp_path / "test_timed.py").write_text(textwrap.dedent(ALONE_TESTS))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "3", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]

    spans = {}
    for line in (tmp_path / "times.txt").read_text().splitlines():
        name, started, ended = line.split()
        spans[name] = (float(started), float(ended))

    def overlapping(name: str) -> list[str]:
        start, end = spans[name]
        return [other for other, (s, e) in spans.items() if other != name and s < end and e > start]

    assert overlapping("alone0") == []
    assert overlapping("alone1") == []
    assert any(overlapping(f"other{number}") for number in range(8))

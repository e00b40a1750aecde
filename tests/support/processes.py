"""Processes as the tests of ``omnichannel serve`` and ``omnichannel worker`` see them: the
children of a pid and what is left of a server (read from /proc), whether a pid still runs,
and waiting for a condition with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

WORKER_MARKER = "omnichannel_core.cli worker"
"""In the command line of the job runner ``omnichannel serve`` starts."""


def children(parent_pid: int) -> set[int]:
    """The pids of the processes whose parent is ``parent_pid``, read from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == parent_pid:
            found.add(int(entry.name))
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def child_running(parent_pid: int, marker: str) -> int | None:
    """The live child of ``parent_pid`` whose command line holds ``marker``."""
    for pid in children(parent_pid):
        if marker in command_line(pid) and is_alive(pid):
            return pid
    return None


def is_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(check: Callable[[], T], what: str, timeout: float = 30, every: float = 0.1) -> T:
    """Call ``check`` until it answers something true, and return that; AssertionError
    saying ``what`` was awaited if the deadline passes first."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout}s for {what}")
        time.sleep(every)


def processes_with(variable: str, value: str) -> set[int]:
    """The live processes (of this user) whose environment sets ``variable`` to ``value``:
    what is left of a server, whatever became of its parent."""
    wanted = f"{variable}={value}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in environ and is_alive(int(entry.name)):
            found.add(int(entry.name))
    return found

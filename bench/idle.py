"""What an idle server costs: the CPU time of each of its processes while nothing happens.

    .venv/bin/python -m bench.idle [--settle S] [--seconds S] [--json]

The real server (``omnichannel serve`` through ``omnichannel_core.testing.server``: the
gunicorn master, one worker, the job runner) is started on a fresh SQLite folder twice, with
every installed plugin and the server's own defaults (not the test kit's quicker poll), and
left alone: once as configured by default, then beside it the baseline, the same server
with ``OMNICHANNEL_EVENT_POLL_MS=60000`` (the polling bus as good as off: its readers wake
only every 5 s, what they do when nothing rings). After ``--settle`` seconds (start-up
done), each process's CPU time (user and system, from ``/proc/<pid>/stat``) is read, and
read again ``--seconds`` later: CPU seconds per minute of idling, and as a share of one
core. Checked: both servers answered ``/health`` with 200 at the end. See
docs/benchmarks.md ("An idle server").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from omnichannel_core.testing.server import running_server

TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue += children.get(current, [])
    return found


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU seconds of ``pid`` so far; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


def role(pid: int) -> str:
    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    if "cli worker" in command:
        return "job runner"
    if "gunicorn" in command:
        return "gunicorn"
    return "omnichannel serve"


DEFAULTS: dict[str, str | None] = {
    "OMNICHANNEL_EVENT_POLL_MS": None,  # the test kit's 50 ms: the server's default instead
    "OMNICHANNEL_DISABLE_PLUGINS": "",  # the test kit's: every installed plugin instead
}


def idle_cost(env: dict[str, str | None], settle: float, seconds: float) -> dict[str, Any]:
    env = {**DEFAULTS, **env}
    with (
        tempfile.TemporaryDirectory(prefix="bench-idle-") as folder,
        running_server(Path(folder), env) as server,
    ):
        assert server.process is not None
        time.sleep(settle)
        pids = descendants(server.process.pid)
        roles = {pid: role(pid) for pid in pids}
        before = {pid: cpu_seconds(pid) for pid in pids}
        time.sleep(seconds)
        after = {pid: cpu_seconds(pid) for pid in pids if pid in before}
        with server.client() as client:
            healthy = client.get("/health").status_code == 200
    per_role: dict[str, float] = {}
    for pid in pids:  # gunicorn: its master and its worker together
        if before.get(pid) is not None and after.get(pid) is not None:
            per_role[roles[pid]] = per_role.get(roles[pid], 0.0) + after[pid] - before[pid]
    total = sum(per_role.values())
    return {
        "healthy": healthy,
        "cpu_seconds_per_minute": {
            name: round(used * 60 / seconds, 3) for name, used in sorted(per_role.items())
        },
        "total_per_minute": round(total * 60 / seconds, 3),
        "share_of_a_core": round(total / seconds, 4),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    report = {
        "seconds": args.seconds,
        "default": idle_cost({}, args.settle, args.seconds),
        "baseline (OMNICHANNEL_EVENT_POLL_MS=60000)": idle_cost(
            {"OMNICHANNEL_EVENT_POLL_MS": "60000"}, args.settle, args.seconds
        ),
    }
    report["problems"] = [
        f"{name}: /health did not answer 200"
        for name, figures in report.items()
        if isinstance(figures, dict) and not figures["healthy"]
    ]
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=8.0, help="seconds before measuring")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"An idle server, {args.seconds:g} s measured after {args.settle:g} s:")
        for name, figures in report.items():
            if not isinstance(figures, dict):
                continue
            print(f"  {name}: {figures['share_of_a_core']:.2%} of a core")
            for process, used in figures["cpu_seconds_per_minute"].items():
                print(f"    {process:<18} {used:.3f} CPU s per minute")
        for problem in report["problems"]:
            print(f"FAILED: {problem}")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""Inbound webhook throughput on each store backend: SQLite beside Firestore, in one run.

    .venv/bin/python -m bench.store_backends [--requests N] [--concurrency C]
        [--workers W] [--duration S] [--warmup N] [--senders N] [--log-level L] [--json]

The same signed webhooks as ``bench.inbound_webhooks`` (same load generator, same gunicorn
settings, same checks), sent to omnichannel twice, each time in a fresh temporary folder:
first on its default SQLite store, then on ``OMNICHANNEL_STORE=firestore://demo-...`` with
``FIRESTORE_EMULATOR_HOST`` pointing at the official Firestore emulator, which the bench
starts in its temporary folder after the SQLite run and stops at the end, failed run and
Ctrl-C included. Prints throughput, latency p50/p99, CPU per webhook of the server's workers
and of the emulator, and the ratio firestore/sqlite; then checks each store holds exactly one
message per 200 answered (SQLite read directly, Firestore counted through the emulator's REST
API). Any non-200, connection error or missing message makes the exit status non-zero.

The emulator is an in-memory Java process on the same cores, not Firestore: its figures say
what the code costs per webhook (round trips, CPU), not what production latency would be.
See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs

from bench.command import (
    BenchmarkFailed,
    add_load_arguments,
    check_load_arguments,
    durability,
    firestore_stored_messages,
    load_settings,
    run_command,
    run_load_generator,
    stored_messages,
    target_problems,
)
from bench.servers import OMNICHANNEL_APP, GunicornServer, free_port, server_environment
from bench.twilio_webhooks import cpu_per_request
from omnichannel_core.testing.emulators import Emulator, EmulatorError, start_firestore

CHANNEL = "http"
"""The channel the load generator's webhooks arrive on."""


def tree_cpu_seconds(root: int) -> float | None:
    """User + system CPU so far of process ``root`` and every process below it (all their
    threads), from /proc; None where there is no /proc. For the emulator: gcloud starts a
    shell wrapper that starts the Java server, which does the work."""
    tick = os.sysconf("SC_CLK_TCK")
    total, pending = 0, [root]
    try:
        while pending:
            pid = pending.pop()
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pending.extend(int(child) for child in (task / "children").read_text().split())
    except OSError:
        return None
    return total / tick


@attrs.frozen
class SqliteBackend:
    """The default store: ``<workdir>/data/omnichannel.db``, inside the server's processes."""

    name: str = "sqlite"

    def environment(self) -> dict[str, str]:
        return {}  # the bench's environment already puts OMNICHANNEL_DATA_DIR in the workdir

    def stored_messages(self, workdir: Path) -> int:
        return stored_messages(workdir / "data" / "omnichannel.db", CHANNEL)

    def cpu_seconds(self) -> float | None:
        return None  # SQLite runs in the workers: its CPU is the server's


@attrs.frozen
class FirestoreBackend:
    """The Firestore store on a running emulator, in a project of its own."""

    emulator: Emulator
    project: str = attrs.field(factory=lambda: f"demo-bench-{secrets.token_hex(6)}")
    name: str = "firestore"

    def environment(self) -> dict[str, str]:
        return {
            "OMNICHANNEL_STORE": f"firestore://{self.project}",
            "FIRESTORE_EMULATOR_HOST": self.emulator.host_port,
        }

    def stored_messages(self, workdir: Path) -> int:
        return firestore_stored_messages(self.emulator.host_port, self.project, CHANNEL)

    def cpu_seconds(self) -> float | None:
        return tree_cpu_seconds(self.emulator.process.pid)


Backend = SqliteBackend | FirestoreBackend


def measure(backend: Backend, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Start omnichannel on ``backend``, load it, count what it stored, stop it."""
    workdir = root / backend.name
    secret = secrets.token_hex(16)
    port = free_port()
    env = server_environment(
        workdir, port, args.workers, secret, secrets.token_hex(16), args.log_level
    )
    env.update(backend.environment())
    server = GunicornServer(backend.name, OMNICHANNEL_APP, workdir, env)
    try:
        server.start()
        server_cpu = server.idle_worker_cpu_seconds()
        store_cpu = backend.cpu_seconds()
        report = run_load_generator(
            port, args, f"--secret={secret}", f"--run-id={secrets.token_hex(4)}"
        )
        report["server_cpu_us_per_request"] = cpu_per_request(
            server_cpu, server.worker_cpu_seconds(), report
        )
        report["store_cpu_us_per_request"] = cpu_per_request(
            store_cpu, backend.cpu_seconds(), report
        )
        report["durability"] = durability(report, backend.stored_messages(workdir))
    except BaseException:
        server.stop()
        sys.stderr.write(f"--- {backend.name} server log ---\n{server.log()[-4000:]}\n")
        raise
    server.stop()
    report["target"] = backend.name
    report["server_log_tail"] = server.log()[-2000:]
    return report


def measure_on_emulator(args: argparse.Namespace, root: Path) -> tuple[dict[str, Any], int]:
    """:func:`measure` on Firestore, on an emulator started for it and stopped after it
    whatever happens; also returns the emulator's process group, to check it is gone."""
    try:
        emulator = start_firestore(root / "firestore-emulator")
    except EmulatorError as error:
        raise BenchmarkFailed(str(error)) from None
    try:
        report = measure(FirestoreBackend(emulator), args, root)
    except BaseException:
        sys.stderr.write(f"--- firestore emulator log ---\n{emulator.log_tail()}\n")
        raise
    finally:
        emulator.stop()
    return report, emulator.pgid


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="omnichannel-stores-bench-") as folder:
        root = Path(folder)
        sqlite = measure(SqliteBackend(), args, root)
        firestore, emulator_group = measure_on_emulator(args, root)
    ratio = (
        firestore["requests_per_second"] / sqlite["requests_per_second"]
        if sqlite["requests_per_second"]
        else 0.0
    )
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": load_settings(args),
        "targets": [sqlite, firestore],
        "ratio": ratio,
        "emulator_process_group": emulator_group,
        "problems": target_problems([sqlite, firestore]),
    }


def _microseconds(value: float | None) -> str:
    return f"{value:.0f} us" if value is not None else "-"


def render(results: dict[str, Any]) -> str:
    settings = results["settings"]
    lines = [
        f"inbound webhooks per store: {settings['requests']} requests,"
        f" {settings['concurrency']} connections, {settings['workers']} gunicorn worker(s)"
        f" (uvicorn), loopback, log level {settings['log_level']}",
        "(firestore: the official emulator, an in-memory Java process on the same cores)",
        "",
        f"{'store':<10} {'200s':>7} {'seconds':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'client cpu':>10} {'server cpu/req':>14} {'emulator cpu/req':>16}",
    ]
    for report in results["targets"]:
        latency = report["latency_ms"]
        cpu = report.get("generator_cpu_share")
        lines.append(
            f"{report['target']:<10} {report['ok']:>7} {report['elapsed_seconds']:>8.2f}"
            f" {report['requests_per_second']:>8.0f} {latency['p50']:>8.2f}"
            f" {latency['p99']:>8.2f} {(f'{cpu:.0%}' if cpu is not None else '-'):>10}"
            f" {_microseconds(report['server_cpu_us_per_request']):>14}"
            f" {_microseconds(report['store_cpu_us_per_request']):>16}"
        )
    lines.append("")
    lines.append(f"ratio firestore/sqlite: {results['ratio']:.3f}")
    for report in results["targets"]:
        durability = report["durability"]
        verdict = "OK" if durability["ok"] else "MISMATCH"
        lines.append(
            f"durability {report['target']}: {durability['stored']} messages stored for"
            f" {durability['answered_200']} answered 200 (warm-up included): {verdict}"
        )
    for problem in results["problems"]:
        lines.append(f"FAILED: {problem}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.store_backends",
        description="Signed inbound webhooks through omnichannel on SQLite, then on Firestore"
        " (its emulator).",
    )
    add_load_arguments(parser, default_requests=20_000)
    args = parser.parse_args(argv)
    check_load_arguments(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    return run_command(parse_args(argv), run, render)


if __name__ == "__main__":
    raise SystemExit(main())

"""What every benchmark command shares: the load options, their checks, and running the
command so that servers are stopped on Ctrl-C or SIGTERM and failures exit non-zero."""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.servers import HOST, REPO_ROOT, ServerFailed

MAX_REQUESTS = 1_000_000
GENERATOR_GRACE_SECONDS = 120
COUNT_TIMEOUT_SECONDS = 120


class BenchmarkFailed(Exception):
    """The load generator failed, or a target answered something other than 200."""


def add_load_arguments(parser: argparse.ArgumentParser, default_requests: int) -> None:
    parser.add_argument(
        "--requests", type=int, default=default_requests, help="timed requests per target"
    )
    parser.add_argument("--warmup", type=int, default=1_000, help="untimed requests first")
    parser.add_argument("--concurrency", type=int, default=64, help="keep-alive connections")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server")
    parser.add_argument(
        "--duration", type=float, default=120.0, help="stop sending after this many seconds"
    )
    parser.add_argument(
        "--senders", type=int, default=1000, help="distinct customer addresses in the bodies"
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="OMNICHANNEL_LOG_LEVEL of every server (info adds one line per request)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")


def check_load_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 1 <= args.requests <= MAX_REQUESTS:
        parser.error(f"--requests must be between 1 and {MAX_REQUESTS}")
    if not 0 <= args.warmup <= MAX_REQUESTS:
        parser.error(f"--warmup must be between 0 and {MAX_REQUESTS}")
    if not 1 <= args.concurrency <= 1000:
        parser.error("--concurrency must be between 1 and 1000")
    if not 1 <= args.workers <= 64:
        parser.error("--workers must be between 1 and 64")
    if not 0 < args.duration <= 600:
        parser.error("--duration must be above 0 and at most 600 seconds")
    if args.senders < 1:
        parser.error("--senders must be at least 1")


def run_load_generator(port: int, args: argparse.Namespace, *options: str) -> dict[str, Any]:
    """Run ``bench.load_generator`` in its own process against ``port`` with the load options
    of ``args`` and the target's own ``options``; returns its JSON report."""
    command = [
        sys.executable,
        "-m",
        "bench.load_generator",
        f"--host={HOST}",
        f"--port={port}",
        f"--requests={args.requests}",
        f"--warmup={args.warmup}",
        f"--concurrency={args.concurrency}",
        f"--duration={args.duration}",
        f"--senders={args.senders}",
        *options,
    ]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = process.communicate(timeout=args.duration * 2 + GENERATOR_GRACE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
    if process.returncode != 0:
        raise BenchmarkFailed(f"load generator exited {process.returncode}: {err.decode()}")
    return json.loads(out)


def load_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The load options of a run (:func:`add_load_arguments`), for its report."""
    return {
        "requests": args.requests,
        "warmup": args.warmup,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "duration_limit_seconds": args.duration,
        "senders": args.senders,
        "log_level": args.log_level,
        "python": sys.version.split()[0],
    }


def phase_problems(report: dict[str, Any], phase: str) -> list[str]:
    """What went wrong in one phase of a load generator's report: non-200 answers,
    connection errors, requests sent but not answered 200."""
    found = []
    bad = {status: n for status, n in report["statuses"].items() if status != "200"}
    if bad:
        found.append(f"{phase}: non-200 answers {bad}; first: {report['failures'][:2]}")
    if report["error_count"]:
        found.append(f"{phase}: {report['error_count']} connection errors: {report['errors']}")
    if report["ok"] != report["sent"]:
        found.append(f"{phase}: {report['sent']} sent but {report['ok']} answered 200")
    return found


def target_problems(reports: list[dict[str, Any]]) -> list[str]:
    """The problems of every target's timed and warm-up phases, and of its durability check
    when it has one."""
    found = []
    for report in reports:
        found += phase_problems(report, f"{report['target']} timed")
        if report["warmup"]:
            found += phase_problems(report["warmup"], f"{report['target']} warm-up")
        durability = report.get("durability")
        if durability is not None and not durability["ok"]:
            found.append(f"{report['target']} durability: {durability}")
    return found


def durability(report: dict[str, Any], stored: int) -> dict[str, Any]:
    """Whether every webhook answered 200 (warm-up included) was stored: ``stored`` counted
    in the store after the run."""
    answered = report["ok"] + (report["warmup"] or {}).get("ok", 0)
    return {"answered_200": answered, "stored": stored, "ok": stored == answered}


def stored_messages(database: Path, channel: str) -> int:
    """How many messages of ``channel`` the store holds, read through a connection of our
    own (read-only, so the count cannot disturb the server)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        query = "SELECT count(*) FROM messages WHERE channel = ?"
        return connection.execute(query, (channel,)).fetchone()[0]
    finally:
        connection.close()


def firestore_stored_messages(emulator_host: str, project: str, channel: str) -> int:
    """How many messages of ``channel`` a Firestore store on the emulator at ``emulator_host``
    holds: one count aggregation through the emulator's REST API, around the server, as the
    emulator's owner (``Bearer owner``, which no security rule can refuse)."""
    url = (
        f"http://{emulator_host}/v1/projects/{project}/databases/(default)/documents"
        ":runAggregationQuery"
    )
    query = {
        "from": [{"collectionId": "messages"}],
        "where": {
            "fieldFilter": {
                "field": {"fieldPath": "channel"},
                "op": "EQUAL",
                "value": {"stringValue": channel},
            }
        },
    }
    body = {
        "structuredAggregationQuery": {
            "structuredQuery": query,
            "aggregations": [{"alias": "stored", "count": {}}],
        }
    }
    try:
        response = httpx.post(
            url,
            json=body,
            headers={"Authorization": "Bearer owner"},
            timeout=COUNT_TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as error:
        raise BenchmarkFailed(f"counting Firestore messages: {error!r}") from error
    if response.status_code != 200:
        raise BenchmarkFailed(
            f"counting Firestore messages: {response.status_code} {response.text[:300]}"
        )
    [answer] = [part for part in response.json() if "result" in part]
    return int(answer["result"]["aggregateFields"]["stored"]["integerValue"])


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # so the servers are stopped by the finally blocks


def run_command(
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
) -> int:
    """Run a benchmark and print its results; the exit status says whether it held."""
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        results = run(args)
    except (BenchmarkFailed, ServerFailed) as error:
        sys.stderr.write(f"benchmark failed: {error}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("benchmark interrupted; servers stopped\n")
        return 130
    if args.json:
        for report in results["targets"]:
            report.pop("server_log_tail", None)
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
    else:
        sys.stdout.write(render(results) + "\n")
    return 1 if results["problems"] else 0

"""Inbound webhook throughput: omnichannel beside a bare Falcon responder, in one run.

    .venv/bin/python -m bench.inbound_webhooks [--requests N] [--concurrency C]
        [--workers W] [--duration S] [--warmup N] [--senders N] [--log-level L] [--json]

For each target in turn (omnichannel first, then the bare app) it starts gunicorn with the
same settings (``omnichannel_core.gunicorn_conf``: uvicorn workers, W of them, loopback) in a
fresh temporary folder, drives it with the same signed webhooks from a separate load-generator
process, and stops it by PID. Then it prints throughput, latency p50/p99 and the ratio, and
checks that omnichannel stored exactly one message per 200 it answered. Any non-200, any
connection error or a missing message makes the exit status non-zero. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.command import (
    add_load_arguments,
    check_load_arguments,
    durability,
    load_settings,
    run_command,
    run_load_generator,
    stored_messages,
    target_problems,
)
from bench.servers import (
    BARE_APP,
    OMNICHANNEL_APP,
    GunicornServer,
    free_port,
    server_environment,
)


def measure(name: str, app: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Start one server, load it, check it, stop it."""
    workdir = root / name
    secret = secrets.token_hex(16)
    run_id = secrets.token_hex(4)
    port = free_port()
    env = server_environment(
        workdir, port, args.workers, secret, secrets.token_hex(16), args.log_level
    )
    server = GunicornServer(name, app, workdir, env)
    try:
        server.start()
        report = run_load_generator(port, args, f"--secret={secret}", f"--run-id={run_id}")
        if name == "omnichannel":
            stored = stored_messages(workdir / "data" / "omnichannel.db", "http")
            report["durability"] = durability(report, stored)
    except BaseException:
        server.stop()
        sys.stderr.write(f"--- {name} server log ---\n{server.log()[-4000:]}\n")
        raise
    server.stop()
    report["target"] = name
    report["server_log_tail"] = server.log()[-2000:]
    return report


def render(results: dict[str, Any]) -> str:
    lines = [
        f"inbound webhooks: {results['settings']['requests']} requests,"
        f" {results['settings']['concurrency']} connections,"
        f" {results['settings']['workers']} gunicorn worker(s) (uvicorn), loopback,"
        f" log level {results['settings']['log_level']}",
        "",
        f"{'target':<12} {'200s':>8} {'seconds':>8} {'req/s':>9}"
        f" {'p50 ms':>8} {'p99 ms':>8} {'client cpu':>10}",
    ]
    for report in results["targets"]:
        latency = report["latency_ms"]
        cpu = report.get("generator_cpu_share")
        lines.append(
            f"{report['target']:<12} {report['ok']:>8} {report['elapsed_seconds']:>8.2f}"
            f" {report['requests_per_second']:>9.0f} {latency['p50']:>8.2f}"
            f" {latency['p99']:>8.2f} {(f'{cpu:.0%}' if cpu is not None else '-'):>10}"
        )
    lines.append("")
    lines.append(f"ratio omnichannel/bare: {results['ratio']:.3f}")
    durability = results["targets"][0].get("durability")
    if durability:
        verdict = "OK" if durability["ok"] else "MISMATCH"
        lines.append(
            f"durability: {durability['stored']} messages stored for"
            f" {durability['answered_200']} answered 200 (warm-up included): {verdict}"
        )
    for problem in results["problems"]:
        lines.append(f"FAILED: {problem}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="omnichannel-bench-") as folder:
        root = Path(folder)
        omnichannel = measure("omnichannel", OMNICHANNEL_APP, args, root)
        bare = measure("bare", BARE_APP, args, root)
    ratio = (
        omnichannel["requests_per_second"] / bare["requests_per_second"]
        if bare["requests_per_second"]
        else 0.0
    )
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": load_settings(args),
        "targets": [omnichannel, bare],
        "ratio": ratio,
        "problems": target_problems([omnichannel, bare]),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.inbound_webhooks",
        description="Signed inbound webhooks through omnichannel vs a bare Falcon app.",
    )
    add_load_arguments(parser, default_requests=50_000)
    args = parser.parse_args(argv)
    check_load_arguments(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    return run_command(parse_args(argv), run, render)


if __name__ == "__main__":
    raise SystemExit(main())

"""Signed Twilio SMS webhooks: omnichannel beside a bare Falcon app and Twilio's Flask quickstart.

    .venv/bin/python -m bench.twilio_webhooks [--requests N] [--concurrency C] [--workers W]
        [--flask-workers sync,gthread] [--flask-threads T] [--duration S] [--warmup N]
        [--senders N] [--log-level L] [--json]

One after the other, each in a fresh temporary folder, with the same environment, the same
gunicorn settings module (``omnichannel_core.gunicorn_conf``: W workers, loopback bind) and
the identical pre-signed requests from a separate load-generator process:

1. omnichannel with the ``twilio`` channel configured (uvicorn workers),
   ``POST /api/channels/twilio/webhook``; afterwards the SQLite file must hold one
   ``channel='twilio'`` message per 200 answered;
2. the bare Falcon ASGI responder (``bench/bare_app.py``, uvicorn workers);
3. the Flask quickstart (``bench/flask_quickstart.py``) under gunicorn's default ``sync``
   worker, the natural WSGI set-up (no keep-alive: one connection per request), and
   ``gthread`` (keep-alive, ``--flask-threads`` threads per worker).

Prints throughput, latency p50/p99 and the ratios omnichannel/flask and omnichannel/bare
against the targets of issue 3 (>= 2x Flask, >= 0.5x bare). Any non-200 (a 403 means the
signing is wrong), connection error or missing message fails the run (exit status 1); a
missed target is reported, not a failure. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
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

FLASK_APP = "bench.flask_quickstart:app"
# Requests are signed for this URL and every server is told it is its public URL; the
# reserved .invalid domain never resolves, so nothing can reach it.
PUBLIC_URL = "https://omnichannel-bench.invalid"
TWILIO_PHONE_NUMBER = "+15005550006"
# The channel never calls Twilio on the inbound path; should it try, it reaches nothing.
UNREACHABLE_API_BASE_URL = "http://127.0.0.1:9"
FLASK_WORKER_CLASSES = ("sync", "gthread")
TARGET_VS_FLASK = 2.0
TARGET_VS_BARE = 0.5


@attrs.frozen
class Target:
    """One server under test and how it is served and loaded."""

    name: str
    app: str
    worker_class: str
    gunicorn_args: tuple[str, ...] = ()
    connection_per_request: bool = False


def targets(args: argparse.Namespace) -> list[Target]:
    chosen = [
        Target("omnichannel", OMNICHANNEL_APP, "uvicorn"),
        Target("bare", BARE_APP, "uvicorn"),
    ]
    if "sync" in args.flask_workers:
        chosen.append(
            Target(
                "flask-sync",
                FLASK_APP,
                "sync",
                ("--worker-class", "sync"),
                connection_per_request=True,  # the sync worker closes after every answer
            )
        )
    if "gthread" in args.flask_workers:
        threads = str(args.flask_threads)
        chosen.append(
            Target(
                "flask-gthread",
                FLASK_APP,
                f"gthread x{threads}",
                ("--worker-class", "gthread", "--threads", threads),
            )
        )
    return chosen


@attrs.frozen
class TwilioAccount:
    """The made-up credentials every server gets and the generator signs with."""

    account_sid: str = attrs.field(factory=lambda: "AC" + secrets.token_hex(16))
    auth_token: str = attrs.field(factory=lambda: secrets.token_hex(16), repr=False)


def twilio_environment(
    workdir: Path, port: int, account: TwilioAccount, args: argparse.Namespace
) -> dict[str, str]:
    """The bench's server environment plus a configured Twilio channel; TWILIO_* variables of
    the caller's shell are dropped like its OMNICHANNEL_* ones."""
    base = server_environment(
        workdir, port, args.workers, secrets.token_hex(16), secrets.token_hex(16), args.log_level
    )
    env = {name: value for name, value in base.items() if not name.startswith("TWILIO_")}
    env.update(
        {
            "OMNICHANNEL_DISABLE_PLUGINS": "",  # load the installed twilio channel
            "OMNICHANNEL_PUBLIC_URL": PUBLIC_URL,
            "TWILIO_ACCOUNT_SID": account.account_sid,
            "TWILIO_AUTH_TOKEN": account.auth_token,
            "TWILIO_PHONE_NUMBER": TWILIO_PHONE_NUMBER,
            "TWILIO_API_BASE_URL": UNREACHABLE_API_BASE_URL,
        }
    )
    return env


def twilio_signing(account: TwilioAccount) -> list[str]:
    """The load generator's options that make it send webhooks signed for ``account``."""
    return [
        "--kind=twilio",
        f"--auth-token={account.auth_token}",
        f"--account-sid={account.account_sid}",
        f"--to-number={TWILIO_PHONE_NUMBER}",
        f"--public-url={PUBLIC_URL}",
    ]


def run_generator(
    port: int, account: TwilioAccount, target: Target, args: argparse.Namespace
) -> dict[str, Any]:
    """The load generator's report for ``target``: signed Twilio SMS webhooks."""
    return run_load_generator(
        port,
        args,
        *twilio_signing(account),
        f"--run-id={secrets.token_hex(4)}",
        *(["--connection-per-request"] if target.connection_per_request else []),
    )


def check_signing(report: dict[str, Any], target: Target) -> None:
    """A 403 means the requests are not signed the way the server checks: stop right there."""
    for phase in (report.get("warmup") or {}, report):
        if phase.get("statuses", {}).get("403"):
            raise BenchmarkFailed(
                f"{target.name} answered 403 to {phase['statuses']['403']} webhooks: the"
                f" X-Twilio-Signature does not match (public URL {PUBLIC_URL}); first answers:"
                f" {phase['failures'][:2]}"
            )


def measure(
    target: Target, account: TwilioAccount, args: argparse.Namespace, root: Path
) -> dict[str, Any]:
    """Start one server, load it, check it, stop it."""
    workdir = root / target.name
    port = free_port()
    env = twilio_environment(workdir, port, account, args)
    server = GunicornServer(target.name, target.app, workdir, env, target.gunicorn_args)
    try:
        server.start()
        cpu_before = server.idle_worker_cpu_seconds()
        report = run_generator(port, account, target, args)
        cpu_after = server.worker_cpu_seconds()
        check_signing(report, target)
        report["server_cpu_us_per_request"] = cpu_per_request(cpu_before, cpu_after, report)
        if target.name == "omnichannel":
            stored = stored_messages(workdir / "data" / "omnichannel.db", "twilio")
            report["durability"] = durability(report, stored)
    except BaseException:
        server.stop()
        sys.stderr.write(f"--- {target.name} server log ---\n{server.log()[-4000:]}\n")
        raise
    server.stop()
    report["target"] = target.name
    report["worker_class"] = target.worker_class
    report["connection_per_request"] = target.connection_per_request
    report["server_log_tail"] = server.log()[-2000:]
    return report


def cpu_per_request(
    before: float | None, after: float | None, report: dict[str, Any]
) -> float | None:
    """Server CPU microseconds per answered request, warm-up included: unlike req/s, barely
    moved by other processes taking the cores."""
    answered = report["ok"] + (report["warmup"] or {}).get("ok", 0)
    if before is None or after is None or not answered:
        return None
    return (after - before) / answered * 1e6


def ratio(numerator: dict[str, Any], denominator: dict[str, Any]) -> float:
    rate = denominator["requests_per_second"]
    return numerator["requests_per_second"] / rate if rate else 0.0


def verdicts(reports: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """omnichannel over each baseline, with the issue's target for it."""
    omnichannel = reports["omnichannel"]
    found = []
    for name, report in reports.items():
        if name == "omnichannel":
            continue
        target = TARGET_VS_BARE if name == "bare" else TARGET_VS_FLASK
        value = ratio(omnichannel, report)
        ours, theirs = (
            omnichannel["server_cpu_us_per_request"],
            report["server_cpu_us_per_request"],
        )
        found.append(
            {
                "baseline": name,
                "ratio": value,
                "target": target,
                "met": value >= target,
                # how many of omnichannel's requests fit in the CPU one of the baseline's takes
                "cpu_ratio": theirs / ours if ours and theirs else None,
            }
        )
    return found


def run(args: argparse.Namespace) -> dict[str, Any]:
    account = TwilioAccount()
    reports: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="omnichannel-twilio-bench-") as folder:
        for target in targets(args):
            reports[target.name] = measure(target, account, args, Path(folder))
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {
            **load_settings(args),
            "flask_workers": list(args.flask_workers),
            "flask_threads": args.flask_threads,
            "public_url": PUBLIC_URL,
        },
        "targets": list(reports.values()),
        "ratios": verdicts(reports),
        "problems": target_problems(list(reports.values())),
    }


def render(results: dict[str, Any]) -> str:
    settings = results["settings"]
    lines = [
        f"twilio inbound webhooks: {settings['requests']} requests,"
        f" {settings['concurrency']} connections, {settings['workers']} gunicorn worker(s)"
        f" each, loopback, log level {settings['log_level']}",
        "(sync: gunicorn's default WSGI worker, no keep-alive, so one connection per request)",
        "",
        f"{'target':<14} {'worker':<11} {'200s':>7} {'seconds':>8} {'req/s':>8}"
        f" {'p50 ms':>8} {'p99 ms':>8} {'client cpu':>10} {'server cpu/req':>14}",
    ]
    for report in results["targets"]:
        latency = report["latency_ms"]
        cpu = report.get("generator_cpu_share")
        server_cpu = report.get("server_cpu_us_per_request")
        lines.append(
            f"{report['target']:<14} {report['worker_class']:<11} {report['ok']:>7}"
            f" {report['elapsed_seconds']:>8.2f} {report['requests_per_second']:>8.0f}"
            f" {latency['p50']:>8.2f} {latency['p99']:>8.2f}"
            f" {(f'{cpu:.0%}' if cpu is not None else '-'):>10}"
            f" {(f'{server_cpu:.0f} us' if server_cpu is not None else '-'):>14}"
        )
    lines.append("")
    for verdict in results["ratios"]:
        cpu_ratio = verdict.get("cpu_ratio")
        lines.append(
            f"omnichannel/{verdict['baseline']:<14} {verdict['ratio']:>6.2f}x"
            f"  target >= {verdict['target']:g}x: {'met' if verdict['met'] else 'NOT met':<8}"
            f"  (by server CPU per request: "
            f"{f'{cpu_ratio:.2f}x' if cpu_ratio is not None else '-'})"
        )
    durability = results["targets"][0].get("durability")
    if durability:
        verdict = "OK" if durability["ok"] else "MISMATCH"
        lines.append(
            f"durability: {durability['stored']} twilio messages stored for"
            f" {durability['answered_200']} answered 200 (warm-up included): {verdict}"
        )
    for problem in results["problems"]:
        lines.append(f"FAILED: {problem}")
    return "\n".join(lines)


def parse_flask_workers(raw: str) -> tuple[str, ...]:
    chosen = tuple(item.strip() for item in raw.split(",") if item.strip())
    unknown = [item for item in chosen if item not in FLASK_WORKER_CLASSES]
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(
            f"a comma-separated list of {', '.join(FLASK_WORKER_CLASSES)}"
        )
    return chosen


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.twilio_webhooks",
        description="Signed Twilio webhooks through omnichannel vs bare Falcon and Flask.",
    )
    add_load_arguments(parser, default_requests=20_000)
    parser.add_argument(
        "--flask-workers",
        type=parse_flask_workers,
        default=FLASK_WORKER_CLASSES,
        help="gunicorn worker classes to serve Flask with (default: sync,gthread)",
    )
    parser.add_argument("--flask-threads", type=int, default=4, help="threads per gthread worker")
    args = parser.parse_args(argv)
    check_load_arguments(parser, args)
    if not 1 <= args.flask_threads <= 64:
        parser.error("--flask-threads must be between 1 and 64")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_command(parse_args(argv), run, render)


if __name__ == "__main__":
    raise SystemExit(main())

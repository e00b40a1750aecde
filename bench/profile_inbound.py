"""Profile omnichannel's inbound webhook path in one process (not part of the benchmark).

    .venv/bin/python -m bench.profile_inbound [--kind http|twilio] [--requests N]
        [--concurrency C] [--top K]

Runs the app under uvicorn (uvloop, httptools: what a gunicorn UvicornWorker runs) in this
process with cProfile on the event-loop thread (where the SQLite statements run too), drives
it with the benchmark's load generator from another process, and prints the top functions by
own time and by cumulative time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import secrets
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench.servers import HOST, REPO_ROOT, free_port, server_environment
from bench.twilio_webhooks import TwilioAccount, twilio_environment, twilio_signing


def report(profiler: cProfile.Profile, title: str, top: int) -> str:
    out = io.StringIO()
    out.write(f"===== {title} =====\n")
    for order in ("tottime", "cumulative"):
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(top)
    return out.getvalue()


async def serve_and_load(args: argparse.Namespace, port: int, signing: list[str]) -> dict[str, str]:
    import uvicorn

    from omnichannel_core.app import get_app

    config = uvicorn.Config(
        get_app(), host=HOST, port=port, loop="none", http="httptools", log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn exposes only a flag)
        await asyncio.sleep(0.05)
    generator = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.load_generator",
        f"--port={port}",
        *signing,
        f"--run-id={secrets.token_hex(4)}",
        f"--requests={args.requests}",
        f"--warmup={args.warmup}",
        f"--concurrency={args.concurrency}",
        "--duration=120",
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        out, _ = await asyncio.wait_for(generator.communicate(), timeout=300)
    finally:
        if generator.returncode is None:
            generator.kill()
            await generator.wait()
        server.should_exit = True
        await serving
    return {"generator": out.decode()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_inbound")
    parser.add_argument("--kind", choices=("http", "twilio"), default="http")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)

    import uvloop

    with tempfile.TemporaryDirectory(prefix="omnichannel-profile-") as folder:
        workdir = Path(folder)
        port, secret = free_port(), secrets.token_hex(16)
        if args.kind == "twilio":
            account = TwilioAccount()
            args.workers, args.log_level = 1, "warning"
            os.environ.update(twilio_environment(workdir, port, account, args))
            signing = twilio_signing(account)
        else:
            os.environ.update(server_environment(workdir, port, 1, secret, secrets.token_hex(16)))
            signing = [f"--secret={secret}"]
        os.chdir(workdir)
        loop_profiler = cProfile.Profile()
        result = loop_profiler.runcall(uvloop.run, serve_and_load(args, port, signing))
        os.chdir(REPO_ROOT)
    sys.stdout.write(f"generator: {result['generator']}\n")
    sys.stdout.write(report(loop_profiler, "event loop thread", args.top))
    sys.stdout.write(f"threads alive: {[t.name for t in threading.enumerate()]}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

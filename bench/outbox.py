"""Outbound sends through the durable outbox, beside a bare loop of the channel's client, and
the outbox's pacing accuracy, in one run.

    .venv/bin/python -m bench.outbox [--messages N] [--warmup N] [--pace-rate R]
        [--pace-seconds S] [--workers W] [--queue-concurrency C] [--recipients N] [--json]

1. Outbox: the real server (``omnichannel serve``: gunicorn with uvicorn workers, and its job
   runner, the ``omnichannel worker`` child) on SQLite in a temporary folder, its generic
   ``http`` channel sending to a local receiver that answers ``200 {"id": ...}`` at once and
   counts requests per ``Idempotency-Key``; unpaced (``OMNICHANNEL_SEND_RATES=http=0``). The
   messages are queued with ``POST /api/channels/http/messages`` over C keep-alive
   connections (202 each), a warm-up first. Timed from the first timed POST to the last
   arrival at the receiver: messages per second, and the job runner's CPU per message (its
   ``/proc/PID/stat`` before and after). Checks: every message answered 202, received exactly
   once, and ``sent`` in the store with an empty outbox.
2. Bare loop: the same messages sent by ``omnichannel_core.channels.http.send`` called
   directly, OMNICHANNEL_SEND_CONCURRENCY (32) at a time, in one process of its own on plain
   asyncio (as the runner), to a fresh receiver: the same figures, and the ratios.
3. Pacing: a fresh server with ``OMNICHANNEL_SEND_RATES=http=R``, enough messages queued to
   last more than S seconds; from the receiver's arrival times, the rate achieved over the
   S seconds from the first arrival, its deviation from R, and the fewest and most arrivals
   in one second of that window. The same checks.

Every process is stopped by PID. Any failed check prints ``FAILED: ...`` and exits 1.
See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import itertools
import json
import math
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httptools
import uvloop

from bench.command import BenchmarkFailed
from bench.load_generator import FAILURE_SAMPLES, ClientConnection, Phase, run_phase
from bench.servers import (
    HOST,
    REPO_ROOT,
    START_TIMEOUT_SECONDS,
    STOP_TIMEOUT_SECONDS,
    ServerFailed,
    free_port,
    server_environment,
)
from omnichannel_core.cli import serve_command

SEND_CONCURRENCY = 32
"""OMNICHANNEL_SEND_CONCURRENCY's default: the runner's sends in flight, and the bare loop's."""
MESSAGES_PATH = "/api/channels/http/messages"
RECEIVER_PATH = "/outbound"
ARRIVAL_TIMEOUT_SECONDS = 300.0
SETTLE_TIMEOUT_SECONDS = 60.0
WORKER_START_SECONDS = 30.0
IDLE_POLL_SECONDS = 0.25
IDLE_WAIT_SECONDS = 15.0
POLL_SECONDS = 0.05
PACE_MARGIN = 1.1
"""Messages queued for the pacing run: the rate times the window, and a tenth more."""


# /proc ------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (every thread), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().rstrip("\0").split("\0")
    except OSError:
        return []


def total_cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):  # a process that just exited
            total += cpu_seconds(pid)
    return total


# the receiver: a fake provider, in a process of its own --------------------------------


class ReceiverState:
    def __init__(self) -> None:
        self.keys: Counter[str] = Counter()
        self.arrivals: list[float] = []
        self.missing_key = 0
        self.connections = 0
        """Connections on which messages came."""


class ReceiverConnection(asyncio.Protocol):
    """One keep-alive connection: each POST is counted and answered 200 ``{"id": ...}`` at
    once; ``GET /count`` and ``GET /stats`` answer what was counted."""

    def __init__(self, state: ReceiverState) -> None:
        self.state = state
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.key: bytes | None = None
        self.posted = False  # connections that sent a message are counted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"idempotency-key":
            self.key = value

    def on_message_complete(self) -> None:
        now = time.monotonic()
        state = self.state
        if self.parser.get_method() == b"POST":
            state.arrivals.append(now)
            if not self.posted:
                self.posted = True
                state.connections += 1
            if self.key is None:
                state.missing_key += 1
                body = b'{"id":"r-none-%d"}' % state.missing_key
            else:
                state.keys[self.key.decode()] += 1
                body = b'{"id":"r-' + self.key + b'"}'
        elif self.url.startswith(b"/count"):
            last = state.arrivals[-1] if state.arrivals else None
            body = json.dumps(
                {"received": len(state.arrivals), "last": last, "connections": state.connections}
            ).encode()
        else:
            body = json.dumps(
                {
                    "received": len(state.arrivals),
                    "missing_key": state.missing_key,
                    "connections": state.connections,
                    "keys": state.keys,
                    "arrivals": state.arrivals,
                }
            ).encode()
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(body)
            + body
        )
        self.url, self.key = b"", None
        if not self.parser.should_keep_alive():
            self.transport.close()


async def serve_receiver() -> None:
    state = ReceiverState()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ReceiverConnection(state), HOST, 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    stopped = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stopped.set_result, None)
    await stopped
    server.close()


class Receiver:
    """``python -m bench.outbox receiver`` as a child process, stopped by PID."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> Receiver:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.outbox", "receiver"],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise BenchmarkFailed("the receiver did not start")
        self.port = int(line)
        return self

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{RECEIVER_PATH}"

    def get(self, path: str) -> dict[str, Any]:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            connection.request("GET", path)
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()

    def wait_for(self, count: int, timeout: float) -> dict[str, Any]:
        """Wait until ``count`` requests arrived in all; the last count read."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.get("/count")
            if seen["received"] >= count or time.monotonic() >= deadline:
                return seen
            time.sleep(POLL_SECONDS)

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver.start()
    finally:
        receiver.stop()


# the real server ---------------------------------------------------------------------


class ServeProcess:
    """``omnichannel serve`` (gunicorn, its uvicorn workers, and the job runner), on a free
    loopback port in its own folder; :attr:`runner` is the job runner's PID."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.port = int(env["PORT"])
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.runner = 0
        self.gunicorn = 0

    def start(self) -> ServeProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                serve_command(control_socket=False),
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches the bench, which stops us by PID
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._answers():
            if self.process.poll() is not None:
                raise ServerFailed(f"omnichannel serve exited with {self.process.returncode}")
            if time.monotonic() >= deadline:
                raise ServerFailed(f"omnichannel serve did not answer in {START_TIMEOUT_SECONDS}s")
            time.sleep(0.1)
        deadline = time.monotonic() + WORKER_START_SECONDS
        while not (self.runner and self.gunicorn):
            for pid in children(self.process.pid):
                line = command_line(pid)
                if line[-2:] == ["omnichannel_core.cli", "worker"]:
                    self.runner = pid
                elif "gunicorn" in line:
                    self.gunicorn = pid
            if time.monotonic() >= deadline:
                raise ServerFailed("omnichannel serve started no job runner")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=2)
        try:
            connection.request("GET", "/health")
            connection.getresponse().read()
            return True
        except OSError:
            return False
        finally:
            connection.close()

    def runner_cpu(self) -> float:
        return cpu_seconds(self.runner)

    def web_cpu(self) -> float:
        """The gunicorn workers' CPU (the master's children)."""
        return total_cpu_seconds(children(self.gunicorn))

    def idle_runner_cpu(self) -> float:
        """The runner's CPU once it stops growing (its start-up or last work done)."""
        deadline = time.monotonic() + IDLE_WAIT_SECONDS
        previous = self.runner_cpu()
        while time.monotonic() < deadline:
            time.sleep(IDLE_POLL_SECONDS)
            current = self.runner_cpu()
            if current == previous:
                break
            previous = current
        return previous

    def stop(self) -> None:
        """SIGTERM ``serve`` (it stops gunicorn and the runner and waits for them); SIGKILL
        its process group only if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS + 30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def database(self) -> Path:
        return self.workdir / "data" / "omnichannel.db"


@contextlib.contextmanager
def running_server(
    workdir: Path, receiver: Receiver, rate: float, workers: int
) -> Iterator[tuple[ServeProcess, str]]:
    """The server sending to ``receiver`` at ``rate`` (0: unpaced); yields it and its API key."""
    api_key = secrets.token_hex(16)
    port = free_port()
    env = server_environment(workdir, port, workers, secrets.token_hex(16), api_key)
    env.update(
        {
            "HTTP_CHANNEL_SEND_URL": receiver.url,
            "OMNICHANNEL_SEND_RATES": f"http={rate:g}",
            # one client queues every message: not a flood to refuse
            "OMNICHANNEL_RATE_LIMIT": "0",
            "OMNICHANNEL_CREDENTIAL_RATE_LIMIT": "0",
        }
    )
    server = ServeProcess(workdir, env)
    try:
        server.start()
        yield server, api_key
    except BaseException:
        server.stop()
        sys.stderr.write(f"--- server log ({workdir.name}) ---\n{server.log()[-4000:]}\n")
        raise
    server.stop()


# queueing through the API ----------------------------------------------------------------


class QueuePhase(Phase):
    """A load generator phase whose good answer is 202 (queued)."""

    def record(self, status: int, latency: float, body: bytes) -> None:
        self.statuses[status] += 1
        self.latencies.append(latency)
        self.finished = time.perf_counter()
        if status != 202 and len(self.failures) < FAILURE_SAMPLES:
            self.failures.append({"status": status, "body": body[:300].decode(errors="replace")})


def queue_requests(
    port: int, api_key: str, run_id: str, phase: str, count: int, recipients: int
) -> list[bytes]:
    """Whole HTTP requests, each a channel send to one of ``recipients`` addresses with an
    Idempotency-Key of its own."""
    requests = []
    for number in range(count):
        body = json.dumps(
            {"to": f"+1666{number % recipients:07d}", "text": f"outbox bench {phase} {number}"},
            separators=(",", ":"),
        ).encode()
        head = (
            f"POST {MESSAGES_PATH} HTTP/1.1\r\n"
            f"Host: {HOST}:{port}\r\n"
            f"Authorization: Bearer {api_key}\r\n"
            "Content-Type: application/json\r\n"
            f"Idempotency-Key: bench-{run_id}-{phase}-{number}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "\r\n"
        ).encode()
        requests.append(head + body)
    return requests


async def _queue(port: int, requests: list[bytes], concurrency: int) -> tuple[Phase, float]:
    loop = asyncio.get_running_loop()
    connections: list[ClientConnection] = []
    for _ in range(concurrency):
        _, protocol = await loop.create_connection(
            lambda: ClientConnection(loop.create_future()), HOST, port
        )
        connections.append(protocol)
    phase = QueuePhase(requests, ARRIVAL_TIMEOUT_SECONDS)
    started = time.monotonic()
    await run_phase(connections, phase)
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()
    return phase, started


def queue(port: int, requests: list[bytes], concurrency: int) -> dict[str, Any]:
    """POST every request over ``concurrency`` keep-alive connections; when the first was
    sent (monotonic clock), how long it took, and what came back."""
    phase, started = uvloop.run(_queue(port, requests, concurrency))
    problems = []
    bad = {status: n for status, n in phase.statuses.items() if status != 202}
    if bad:
        problems.append(f"queueing: non-202 answers {bad}; first: {phase.failures[:2]}")
    if phase.errors:
        problems.append(f"queueing: {len(phase.errors)} connection errors: {phase.errors[:3]}")
    if phase.taken != len(requests):
        problems.append(f"queueing: {phase.taken} of {len(requests)} requests sent")
    seconds = phase.finished - phase.started
    return {
        "started": started,
        "seconds": seconds,
        "per_second": phase.statuses.get(202, 0) / seconds if seconds > 0 else 0.0,
        "statuses": {str(status): n for status, n in sorted(phase.statuses.items())},
        "problems": problems,
    }


# checks ----------------------------------------------------------------------------------


def received_problems(stats: dict[str, Any], expected: set[str] | int, what: str) -> list[str]:
    """Whether the receiver got each expected key exactly once (``expected``: the keys, or
    only how many there should be), and nothing else."""
    keys: dict[str, int] = stats["keys"]
    problems = []
    duplicated = {key: n for key, n in keys.items() if n != 1}
    if duplicated:
        sample = dict(list(duplicated.items())[:3])
        problems.append(f"{what}: {len(duplicated)} keys received more than once, e.g. {sample}")
    if stats["missing_key"]:
        problems.append(f"{what}: {stats['missing_key']} requests without an Idempotency-Key")
    if isinstance(expected, int):
        if len(keys) != expected:
            problems.append(f"{what}: {len(keys)} distinct keys received, {expected} expected")
    else:
        missing, extra = expected - keys.keys(), keys.keys() - expected
        if missing:
            problems.append(f"{what}: {len(missing)} messages never received")
        if extra:
            problems.append(f"{what}: {len(extra)} unexpected keys received")
    return problems


def stored_outbound(database: Path) -> tuple[dict[str, str], int, int]:
    """Every outbound message's status by id, the outbox's entries, and the attempts made
    beyond one per message; read through a read-only connection of our own."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        rows = connection.execute(
            "SELECT id, status, attempts FROM messages WHERE direction = 'outbound'"
        ).fetchall()
        (entries,) = connection.execute("SELECT count(*) FROM outbox").fetchone()
    finally:
        connection.close()
    return {row[0]: row[1] for row in rows}, entries, sum(max(0, row[2] - 1) for row in rows)


def settled(database: Path, count: int) -> dict[str, Any]:
    """Wait until ``count`` outbound messages are stored, all sent, the outbox empty (or the
    deadline); what the store then holds."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while True:
        statuses, entries, retries = stored_outbound(database)
        done = len(statuses) == count and entries == 0
        done = done and all(status == "sent" for status in statuses.values())
        if done or time.monotonic() >= deadline:
            return {
                "statuses": statuses,
                "by_status": dict(Counter(statuses.values())),
                "outbox_entries": entries,
                "extra_attempts": retries,
            }
        time.sleep(0.2)


def store_problems(store: dict[str, Any], count: int, what: str) -> list[str]:
    problems = []
    if store["by_status"] != {"sent": count}:
        problems.append(f"{what}: stored statuses {store['by_status']}, expected {count} sent")
    if store["outbox_entries"]:
        problems.append(f"{what}: {store['outbox_entries']} entries left in the outbox")
    return problems


# 1. the outbox ---------------------------------------------------------------------------


def measure_outbox(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    run_id = secrets.token_hex(4)
    total = args.warmup + args.messages
    with (
        running_receiver() as receiver,
        running_server(root / "outbox", receiver, 0, args.workers) as (server, api_key),
    ):
        problems: list[str] = []
        warmup: dict[str, Any] | None = None
        if args.warmup:
            requests = queue_requests(
                server.port, api_key, run_id, "warmup", args.warmup, args.recipients
            )
            warmup = queue(server.port, requests, args.queue_concurrency)
            problems += [f"warm-up {problem}" for problem in warmup["problems"]]
            receiver.wait_for(args.warmup, ARRIVAL_TIMEOUT_SECONDS)
            settled(server.database, args.warmup)
        requests = queue_requests(
            server.port, api_key, run_id, "timed", args.messages, args.recipients
        )
        runner_before = server.idle_runner_cpu()
        web_before = server.web_cpu()
        receiver_before = receiver.cpu_seconds()
        connections_before = receiver.get("/count")["connections"]
        timed = queue(server.port, requests, args.queue_concurrency)
        seen = receiver.wait_for(total, ARRIVAL_TIMEOUT_SECONDS)
        runner_after = server.runner_cpu()
        web_after = server.web_cpu()
        receiver_after = receiver.cpu_seconds()
        problems += timed["problems"]
        store = settled(server.database, total)
        stats = receiver.get("/stats")
    problems += received_problems(stats, set(store["statuses"]), "outbox")
    problems += store_problems(store, total, "outbox")
    seconds = seen["last"] - timed["started"] if seen["last"] else 0.0
    if seen["received"] < total:
        problems.append(f"outbox: {seen['received']} of {total} messages arrived in time")
    return {
        "path": "outbox",
        "messages": args.messages,
        "warmup": args.warmup,
        "seconds": seconds,
        "per_second": args.messages / seconds if seconds > 0 else 0.0,
        "sender_cpu_us_per_message": (runner_after - runner_before) / args.messages * 1e6,
        "sender_cpu_share": (runner_after - runner_before) / seconds if seconds > 0 else 0.0,
        "web_cpu_us_per_message": (web_after - web_before) / args.messages * 1e6,
        "receiver_cpu_us_per_message": (receiver_after - receiver_before) / args.messages * 1e6,
        "connections_opened": seen["connections"] - connections_before,
        "queueing": {k: timed[k] for k in ("seconds", "per_second", "statuses")},
        "received": stats["received"],
        "stored": store["by_status"],
        "extra_attempts": store["extra_attempts"],
        "problems": problems,
    }


# 2. the bare loop ------------------------------------------------------------------------


async def bare_loop(args: argparse.Namespace) -> None:
    """In the child: warm up, say ready, wait for go, send, report, wait to be let go."""
    from omnichannel_core.channel import OutboundMessage
    from omnichannel_core.channels import http as channel
    from omnichannel_core.config import Config
    from omnichannel_core.ids import new_id

    config = Config.from_environ(
        {"HTTP_CHANNEL_SEND_URL": args.url, "WEBHOOK_SECRET": args.secret}, dotenv=None
    )

    def messages(phase: str, count: int) -> list[OutboundMessage]:
        conversations = [new_id("cnv") for _ in range(min(count, args.recipients))]
        return [
            OutboundMessage(
                id=new_id("msg"),
                conversation_id=conversations[number % len(conversations)],
                to=f"+1666{number % args.recipients:07d}",
                text=f"outbox bench {phase} {number}",
            )
            for number in range(count)
        ]

    errors: list[str] = []

    async def send_all(batch: list[OutboundMessage]) -> None:
        pending = iter(batch)

        async def sender() -> None:
            for message in pending:
                try:
                    await channel.send(message=message, config=config)
                except Exception as error:
                    errors.append(f"{type(error).__name__}: {error}")

        await asyncio.gather(*(sender() for _ in range(args.concurrency)))

    warmup, timed = messages("warmup", args.warmup), messages("timed", args.messages)
    await send_all(warmup)
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    started = time.monotonic()
    await send_all(timed)
    finished = time.monotonic()
    print(json.dumps({"started": started, "finished": finished, "errors": errors}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)


def _line(stream: IO[bytes] | None, what: str) -> str:
    assert stream is not None
    line = stream.readline().decode()
    if not line:
        raise BenchmarkFailed(f"the bare loop exited before {what}")
    return line


def measure_bare(args: argparse.Namespace) -> dict[str, Any]:
    total = args.warmup + args.messages
    with running_receiver() as receiver:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.outbox",
                "bare-loop",
                f"--url={receiver.url}",
                f"--secret={secrets.token_hex(16)}",
                f"--messages={args.messages}",
                f"--warmup={args.warmup}",
                f"--recipients={args.recipients}",
                f"--concurrency={SEND_CONCURRENCY}",
            ],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _line(process.stdout, "it was ready")
            receiver.wait_for(args.warmup, ARRIVAL_TIMEOUT_SECONDS)
            cpu_before = cpu_seconds(process.pid)
            receiver_before = receiver.cpu_seconds()
            connections_before = receiver.get("/count")["connections"]
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            process.stdin.flush()
            report = json.loads(_line(process.stdout, "it reported"))
            seen = receiver.wait_for(total, ARRIVAL_TIMEOUT_SECONDS)
            cpu_after = cpu_seconds(process.pid)
            receiver_after = receiver.cpu_seconds()
            stats = receiver.get("/stats")
            process.stdin.write(b"done\n")
            process.stdin.close()
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)
            for stream in (process.stdin, process.stdout):
                if stream is not None and not stream.closed:
                    stream.close()
    problems = received_problems(stats, total, "bare loop")
    if report["errors"]:
        problems.append(f"bare loop: {len(report['errors'])} sends failed: {report['errors'][:3]}")
    seconds = seen["last"] - report["started"] if seen["last"] else 0.0
    return {
        "path": "bare",
        "messages": args.messages,
        "warmup": args.warmup,
        "seconds": seconds,
        "per_second": args.messages / seconds if seconds > 0 else 0.0,
        "sender_cpu_us_per_message": (cpu_after - cpu_before) / args.messages * 1e6,
        "sender_cpu_share": (cpu_after - cpu_before) / seconds if seconds > 0 else 0.0,
        "receiver_cpu_us_per_message": (receiver_after - receiver_before) / args.messages * 1e6,
        "connections_opened": seen["connections"] - connections_before,
        "received": stats["received"],
        "problems": problems,
    }


# 3. pacing -------------------------------------------------------------------------------


def most_within(times: list[float], span: float) -> int:
    """The most of the sorted ``times`` within any ``span`` seconds (a sliding window)."""
    most, start = 0, 0
    for end, time_ in enumerate(times):
        while time_ - times[start] >= span:
            start += 1
        most = max(most, end - start + 1)
    return most


def measure_pace(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    rate, window = args.pace_rate, args.pace_seconds
    count = math.ceil(round(rate * window * PACE_MARGIN, 6))
    run_id = secrets.token_hex(4)
    with (
        running_receiver() as receiver,
        running_server(root / "pace", receiver, rate, args.workers) as (server, api_key),
    ):
        requests = queue_requests(server.port, api_key, run_id, "paced", count, args.recipients)
        queued = queue(server.port, requests, args.queue_concurrency)
        seen = receiver.wait_for(count, count / rate * 2 + 30)
        store = settled(server.database, count)
        stats = receiver.get("/stats")
    problems = list(queued["problems"])
    problems += received_problems(stats, set(store["statuses"]), "pacing")
    problems += store_problems(store, count, "pacing")
    arrivals = sorted(stats["arrivals"])
    if not arrivals:
        return {"rate": rate, "window_seconds": window, "queued": count, "problems": problems}
    first = arrivals[0]
    in_window = [t - first for t in arrivals if t - first < window]
    per_second = Counter(int(t) for t in in_window)
    counts = [per_second.get(second, 0) for second in range(int(window))]
    achieved = len(in_window) / window
    if seen["received"] < count:
        problems.append(f"pacing: {seen['received']} of {count} messages arrived in time")
    if arrivals[-1] - first < window:
        problems.append(f"pacing: the arrivals lasted less than the {window:g} s window")
    return {
        "rate": rate,
        "window_seconds": window,
        "queued": count,
        "queueing_seconds": queued["seconds"],
        "first_arrival_seconds": first - queued["started"],
        "in_window": len(in_window),
        "achieved_per_second": achieved,
        "deviation_percent": (achieved - rate) / rate * 100,
        "per_second_min": min(counts),
        "per_second_max": max(counts),
        "per_second_counts": counts,
        "most_in_any_second": most_within(in_window, 1.0),
        "longest_gap_ms": max(
            ((b - a) * 1000 for a, b in itertools.pairwise(in_window)), default=0.0
        ),
        "overall_per_second": (len(arrivals) - 1) / (arrivals[-1] - first)
        if len(arrivals) > 1
        else 0.0,
        "received": stats["received"],
        "stored": store["by_status"],
        "problems": problems,
    }


# the command -----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="omnichannel-bench-outbox-") as folder:
        root = Path(folder)
        outbox = measure_outbox(args, root)
        bare = measure_bare(args)
        pace = measure_pace(args, root) if args.pace_seconds else None
    ratios = {
        "throughput": outbox["per_second"] / bare["per_second"] if bare["per_second"] else 0.0,
        "cpu_per_message": outbox["sender_cpu_us_per_message"] / bare["sender_cpu_us_per_message"]
        if bare["sender_cpu_us_per_message"]
        else 0.0,
    }
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {
            "messages": args.messages,
            "warmup": args.warmup,
            "workers": args.workers,
            "queue_concurrency": args.queue_concurrency,
            "send_concurrency": SEND_CONCURRENCY,
            "recipients": args.recipients,
            "pace_rate": args.pace_rate,
            "pace_seconds": args.pace_seconds,
            "python": sys.version.split()[0],
            "load_average": os.getloadavg()[0],
        },
        "sends": [outbox, bare],
        "ratios": ratios,
        "pace": pace,
        "problems": outbox["problems"] + bare["problems"] + (pace["problems"] if pace else []),
    }


def render(results: dict[str, Any]) -> str:
    settings = results["settings"]
    outbox, bare = results["sends"]
    lines = [
        f"outbound sends: {settings['messages']} messages (after {settings['warmup']} of"
        f" warm-up) to a zero-latency receiver on loopback, {settings['send_concurrency']}"
        f" sends in flight; the server with {settings['workers']} web worker(s) and its job"
        f" runner, on SQLite",
        "",
        f"{'path':<16} {'messages':>8} {'seconds':>8} {'msg/s':>8} {'cpu/msg':>10}"
        f" {'sender cpu':>10} {'connections':>11}",
    ]
    for send in (outbox, bare):
        name = "outbox (runner)" if send["path"] == "outbox" else "bare http.send"
        lines.append(
            f"{name:<16} {send['messages']:>8} {send['seconds']:>8.2f} {send['per_second']:>8.0f}"
            f" {send['sender_cpu_us_per_message']:>7.0f} us {send['sender_cpu_share']:>10.0%}"
            f" {send['connections_opened']:>11}"
        )
    ratios = results["ratios"]
    lines += [
        "",
        f"ratio outbox/bare: {ratios['throughput']:.3f} in messages/s,"
        f" {ratios['cpu_per_message']:.1f}x the CPU per message",
        f"outbox: queued in {outbox['queueing']['seconds']:.2f} s"
        f" ({outbox['queueing']['per_second']:.0f}/s, web workers"
        f" {outbox['web_cpu_us_per_message']:.0f} us of CPU per message); receiver"
        f" {outbox['receiver_cpu_us_per_message']:.0f} us per message; attempts beyond one:"
        f" {outbox['extra_attempts']}",
        f"checks: outbox {outbox['received']} received, stored {outbox['stored']};"
        f" bare loop {bare['received']} received",
    ]
    pace = results["pace"]
    if pace is not None and "achieved_per_second" in pace:
        lines += [
            "",
            f"pacing at {pace['rate']:g}/s: {pace['queued']} messages queued in"
            f" {pace['queueing_seconds']:.1f} s; {pace['in_window']} arrived in the"
            f" {pace['window_seconds']:g} s from the first (which came"
            f" {pace['first_arrival_seconds']:.2f} s after the first was queued)",
            f"achieved {pace['achieved_per_second']:.2f}/s, deviation"
            f" {pace['deviation_percent']:+.2f}%; per second min {pace['per_second_min']}"
            f" max {pace['per_second_max']}; first to last {pace['overall_per_second']:.2f}/s",
            f"most in any 1 s: {pace['most_in_any_second']}; longest gap between two:"
            f" {pace['longest_gap_ms']:.0f} ms; stored {pace['stored']}",
        ]
    for problem in results["problems"]:
        lines.append(f"FAILED: {problem}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.outbox",
        description="Sends through the outbox beside a bare loop of the channel's client,"
        " and the outbox's pacing accuracy.",
    )
    parser.add_argument("--messages", type=int, default=10_000, help="timed messages per path")
    parser.add_argument("--warmup", type=int, default=200, help="untimed messages first")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn web workers")
    parser.add_argument(
        "--queue-concurrency", type=int, default=32, help="connections queueing messages"
    )
    parser.add_argument("--recipients", type=int, default=1000, help="distinct addresses")
    parser.add_argument("--pace-rate", type=float, default=50.0, help="messages per second")
    parser.add_argument(
        "--pace-seconds", type=float, default=60.0, help="the pacing window (0: no pacing run)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    if not 1 <= args.messages <= 1_000_000:
        parser.error("--messages must be between 1 and 1000000")
    if not 0 <= args.warmup <= 100_000:
        parser.error("--warmup must be between 0 and 100000")
    if not 1 <= args.workers <= 64:
        parser.error("--workers must be between 1 and 64")
    if not 1 <= args.queue_concurrency <= 1000:
        parser.error("--queue-concurrency must be between 1 and 1000")
    if args.recipients < 1:
        parser.error("--recipients must be at least 1")
    if not 0 < args.pace_rate <= 10_000:
        parser.error("--pace-rate must be above 0 and at most 10000")
    if not (args.pace_seconds == 0 or 1 <= args.pace_seconds <= 3600):
        parser.error("--pace-seconds must be 0 or between 1 and 3600")
    return args


def parse_bare_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.outbox bare-loop")
    parser.add_argument("--url", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--recipients", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    return parser.parse_args(argv)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # so every process is stopped by the finally blocks


def main(argv: list[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["receiver"]:
        uvloop.run(serve_receiver())
        return 0
    if arguments[:1] == ["bare-loop"]:
        asyncio.run(bare_loop(parse_bare_args(arguments[1:])))  # plain asyncio, as the runner
        return 0
    args = parse_args(arguments)
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
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
    else:
        sys.stdout.write(render(results) + "\n")
    return 1 if results["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

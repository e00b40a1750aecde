"""The load generator: signed webhooks over HTTP/1.1 keep-alive, in a process of its own.

``python -m bench.load_generator --port P --secret S ...`` builds every request (unique
message id, HMAC-SHA256 signature) before the clock starts, opens ``--concurrency``
connections, runs a warm-up, then sends ``--requests`` requests (or stops taking new ones after
``--duration`` seconds, whichever comes first), one in flight per connection, and prints one
JSON object on stdout. It counts every answer by status; it never retries.

It is an asyncio Protocol with httptools' C parser on uvloop (both come with
``uvicorn[standard]``), far cheaper per request than an HTTP client library, so that on a
small machine the generator takes as little CPU from the servers as it can.

``--kind twilio`` sends Twilio SMS webhooks instead (form-encoded, a unique ``MessageSid``
each, ``X-Twilio-Signature`` computed with the twilio SDK's ``RequestValidator`` over
``--public-url`` + path and the form), for ``bench.twilio_webhooks``. With
``--connection-per-request`` every request goes on a fresh connection, closed after the answer
(for servers that do not keep connections alive, such as gunicorn's sync worker); its latency
then includes the TCP connect.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import sys
import time
from array import array
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import httptools
import uvloop

from omnichannel_core.channels.http import SIGNATURE_HEADER, sign

WEBHOOK_PATH = "/api/channels/http/webhook"
TWILIO_WEBHOOK_PATH = "/api/channels/twilio/webhook"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
PHASE_CODES = {"warmup": "0", "timed": "1"}  # one hex digit of each MessageSid
STALL_GRACE_SECONDS = 30.0
FAILURE_SAMPLES = 5


def build_requests(
    host: str, port: int, secret: str, run_id: str, phase: str, count: int, senders: int
) -> list[bytes]:
    """Whole HTTP requests, each a webhook with its own message id, signed."""
    requests = []
    for number in range(count):
        sender = number % senders
        body = json.dumps(
            {
                "id": f"bench-{run_id}-{phase}-{number}",
                "from": f"+1555{sender:07d}",
                "name": f"Bench sender {sender}",
                "text": f"benchmark message {number} from the {phase} phase",
            },
            separators=(",", ":"),
        ).encode()
        head = (
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"{SIGNATURE_HEADER}: {sign(secret, body)}\r\n"
            "\r\n"
        ).encode()
        requests.append(head + body)
    return requests


def twilio_message_sid(run_id: str, phase: str, number: int) -> str:
    """``SM`` + 32 hex digits, unique per run, phase and number."""
    return f"SM{run_id}{PHASE_CODES[phase]}{number:023x}"


def twilio_sms_form(
    message_sid: str, account_sid: str, sender: str, to_number: str, text: str
) -> dict[str, str]:
    """The parameters Twilio POSTs for an incoming SMS, in the order it sends them."""
    return {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": message_sid,
        "NumMedia": "0",
        "ToCity": "SAN FRANCISCO",
        "FromZip": "94105",
        "SmsSid": message_sid,
        "FromState": "CA",
        "SmsStatus": "received",
        "FromCity": "SAN FRANCISCO",
        "Body": text,
        "FromCountry": "US",
        "To": to_number,
        "ToZip": "94105",
        "NumSegments": "1",
        "MessageSid": message_sid,
        "AccountSid": account_sid,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }


def build_twilio_requests(
    host: str, port: int, args: argparse.Namespace, phase: str, count: int
) -> list[bytes]:
    """Whole HTTP requests, each a Twilio SMS webhook with its own MessageSid, signed as
    Twilio signs them: for the public URL the server is configured with, not our address."""
    from twilio.request_validator import RequestValidator  # only this kind needs the SDK

    validator = RequestValidator(args.auth_token)
    url = args.public_url.rstrip("/") + TWILIO_WEBHOOK_PATH
    requests = []
    for number in range(count):
        form = twilio_sms_form(
            twilio_message_sid(args.run_id, phase, number),
            args.account_sid,
            f"+1555{number % args.senders:07d}",
            args.to_number,
            f"benchmark message {number} from the {phase} phase",
        )
        body = urlencode(form).encode()
        head = (
            f"POST {TWILIO_WEBHOOK_PATH} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            "Accept: */*\r\n"
            "User-Agent: TwilioProxy/1.1\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"{TWILIO_SIGNATURE_HEADER}: {validator.compute_signature(url, form)}\r\n"
            "\r\n"
        ).encode()
        requests.append(head + body)
    return requests


class Phase:
    """One batch of requests shared by all connections, and what came back."""

    def __init__(self, requests: list[bytes], duration: float) -> None:
        self.requests = requests
        self.duration = duration
        self.taken = 0
        self.statuses: Counter[int] = Counter()
        self.latencies = array("d")
        self.errors: list[str] = []
        self.failures: list[dict[str, Any]] = []
        self.started = 0.0
        self.finished = 0.0
        self.deadline = 0.0

    def start(self) -> None:
        self.started = time.perf_counter()
        self.deadline = self.started + self.duration

    def take(self) -> bytes | None:
        if self.taken >= len(self.requests) or time.perf_counter() >= self.deadline:
            return None
        request = self.requests[self.taken]
        self.taken += 1
        return request

    def record(self, status: int, latency: float, body: bytes) -> None:
        self.statuses[status] += 1
        self.latencies.append(latency)
        self.finished = time.perf_counter()
        if status != 200 and len(self.failures) < FAILURE_SAMPLES:
            self.failures.append({"status": status, "body": body[:300].decode(errors="replace")})

    def error(self, what: str) -> None:
        self.errors.append(what)


class ClientConnection(asyncio.Protocol):
    """One keep-alive connection sending the phase's requests one at a time."""

    def __init__(self, closed: asyncio.Future[None]) -> None:
        self.closed = closed
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.phase: Phase | None = None
        self.idle: asyncio.Future[None] | None = None
        self.in_flight = False
        self.sent_at = 0.0
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def run(self, phase: Phase, idle: asyncio.Future[None]) -> None:
        self.phase = phase
        self.idle = idle
        self.send_next()

    def send_next(self) -> None:
        assert self.phase is not None and self.transport is not None
        request = self.phase.take()
        if request is None:
            self.in_flight = False
            self.signal_idle()
            return
        self.in_flight = True
        self.body.clear()
        self.sent_at = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self.fail(f"unparseable response: {error}")

    def on_body(self, body: bytes) -> None:
        if len(self.body) < 1024:
            self.body += body

    def on_message_complete(self) -> None:
        assert self.phase is not None
        self.phase.record(
            self.parser.get_status_code(), time.perf_counter() - self.sent_at, bytes(self.body)
        )
        self.in_flight = False
        if not self.parser.should_keep_alive():
            self.fail("the server closed the keep-alive connection")
            return
        self.send_next()

    def fail(self, what: str) -> None:
        if self.phase is not None:
            self.phase.error(what)
        self.in_flight = False
        if self.transport is not None:
            self.transport.close()
        self.signal_idle()

    def signal_idle(self) -> None:
        """Tell the phase this connection sends no more."""
        if self.idle is not None and not self.idle.done():
            self.idle.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight and self.phase is not None:
            self.phase.error(f"connection lost mid-request: {exc!r}")
            self.in_flight = False
        self.signal_idle()
        if not self.closed.done():
            self.closed.set_result(None)


class OneShotConnection(asyncio.Protocol):
    """One request on a connection of its own, closed once the answer is in."""

    def __init__(self, request: bytes, answered: asyncio.Future[tuple[int, bytes]]) -> None:
        self.request = request
        self.answered = answered
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self.finish(ConnectionError(f"unparseable response: {error}"))

    def on_body(self, body: bytes) -> None:
        if len(self.body) < 1024:
            self.body += body

    def on_message_complete(self) -> None:
        if not self.answered.done():
            self.answered.set_result((self.parser.get_status_code(), bytes(self.body)))
        self.finish(None)

    def finish(self, error: Exception | None) -> None:
        if error is not None and not self.answered.done():
            self.answered.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answered.done():
            self.answered.set_exception(ConnectionError(f"connection lost mid-request: {exc!r}"))


async def run_client_per_request(host: str, port: int, phase: Phase) -> None:
    """One client: takes the phase's requests one at a time, a new connection for each."""
    loop = asyncio.get_running_loop()
    while (request := phase.take()) is not None:
        answered: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        sent_at = time.perf_counter()
        try:
            await loop.create_connection(
                lambda request=request, answered=answered: OneShotConnection(request, answered),
                host,
                port,
            )
            status, body = await answered
        except OSError as error:
            phase.error(repr(error))
            return
        phase.record(status, time.perf_counter() - sent_at, body)


async def run_phase_per_request(host: str, port: int, concurrency: int, phase: Phase) -> None:
    phase.start()
    clients = [
        asyncio.create_task(run_client_per_request(host, port, phase)) for _ in range(concurrency)
    ]
    _, pending = await asyncio.wait(clients, timeout=phase.duration + STALL_GRACE_SECONDS)
    if pending:
        phase.error(f"{len(pending)} connections stalled past the deadline")
        for client in pending:
            client.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    if not phase.finished:
        phase.finished = time.perf_counter()


async def run_phase(connections: list[ClientConnection], phase: Phase) -> None:
    loop = asyncio.get_running_loop()
    idles = [loop.create_future() for _ in connections]
    phase.start()
    for connection, idle in zip(connections, idles, strict=True):
        if connection.transport is None or connection.transport.is_closing():
            phase.error("connection already closed")
            idle.set_result(None)
            continue
        connection.run(phase, idle)
    _, pending = await asyncio.wait(idles, timeout=phase.duration + STALL_GRACE_SECONDS)
    if pending:
        phase.error(f"{len(pending)} connections stalled past the deadline")
        for connection in connections:
            if connection.transport is not None:
                connection.transport.abort()
    if not phase.finished:
        phase.finished = time.perf_counter()


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def summarize(phase: Phase) -> dict[str, Any]:
    elapsed = phase.finished - phase.started
    latencies = sorted(phase.latencies)
    ok = phase.statuses.get(200, 0)
    return {
        "sent": phase.taken,
        "ok": ok,
        "statuses": {str(status): count for status, count in sorted(phase.statuses.items())},
        "errors": phase.errors[:FAILURE_SAMPLES],
        "error_count": len(phase.errors),
        "failures": phase.failures,
        "elapsed_seconds": elapsed,
        "requests_per_second": ok / elapsed if elapsed > 0 else 0.0,
        "latency_ms": {
            "p50": percentile(latencies, 0.50) * 1000,
            "p99": percentile(latencies, 0.99) * 1000,
            "max": (latencies[-1] * 1000) if latencies else float("nan"),
        },
    }


def build_phase_requests(args: argparse.Namespace, phase: str, count: int) -> list[bytes]:
    if args.kind == "twilio":
        return build_twilio_requests(args.host, args.port, args, phase, count)
    return build_requests(
        args.host, args.port, args.secret, args.run_id, phase, count, args.senders
    )


async def generate_per_request(args: argparse.Namespace) -> dict[str, Any]:
    """The phases with a fresh connection per request (``--connection-per-request``)."""
    build = time.perf_counter()
    warmup = Phase(build_phase_requests(args, "warmup", args.warmup), args.duration)
    timed = Phase(build_phase_requests(args, "timed", args.requests), args.duration)
    build_seconds = time.perf_counter() - build
    if warmup.requests:
        await run_phase_per_request(args.host, args.port, args.concurrency, warmup)
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    await run_phase_per_request(args.host, args.port, args.concurrency, timed)
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    return finish_report(timed, warmup, usage_before, usage_after, build_seconds)


def finish_report(
    timed: Phase,
    warmup: Phase,
    usage_before: resource.struct_rusage,
    usage_after: resource.struct_rusage,
    build_seconds: float,
) -> dict[str, Any]:
    result = summarize(timed)
    cpu = (usage_after.ru_utime - usage_before.ru_utime) + (
        usage_after.ru_stime - usage_before.ru_stime
    )
    result["generator_cpu_share"] = cpu / result["elapsed_seconds"] if timed.finished else None
    result["build_seconds"] = build_seconds
    result["warmup"] = summarize(warmup) if warmup.requests else None
    return result


async def generate(args: argparse.Namespace) -> dict[str, Any]:
    if args.connection_per_request:
        return await generate_per_request(args)
    build = time.perf_counter()
    warmup = Phase(build_phase_requests(args, "warmup", args.warmup), args.duration)
    timed = Phase(build_phase_requests(args, "timed", args.requests), args.duration)
    build_seconds = time.perf_counter() - build

    loop = asyncio.get_running_loop()
    connections: list[ClientConnection] = []
    for _ in range(args.concurrency):
        closed = loop.create_future()
        _, protocol = await loop.create_connection(
            lambda closed=closed: ClientConnection(closed), args.host, args.port
        )
        connections.append(protocol)

    if warmup.requests:
        await run_phase(connections, warmup)
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    await run_phase(connections, timed)
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()
    await asyncio.wait([c.closed for c in connections], timeout=5)
    return finish_report(timed, warmup, usage_before, usage_after, build_seconds)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kind", choices=("http", "twilio"), default="http")
    parser.add_argument("--secret", help="WEBHOOK_SECRET (--kind http)")
    parser.add_argument("--auth-token", help="TWILIO_AUTH_TOKEN (--kind twilio)")
    parser.add_argument("--account-sid", help="TWILIO_ACCOUNT_SID (--kind twilio)")
    parser.add_argument("--to-number", help="TWILIO_PHONE_NUMBER (--kind twilio)")
    parser.add_argument("--public-url", help="OMNICHANNEL_PUBLIC_URL (--kind twilio)")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--senders", type=int, default=1000)
    parser.add_argument("--connection-per-request", action="store_true")
    args = parser.parse_args(argv)
    if args.kind == "http" and not args.secret:
        parser.error("--kind http needs --secret")
    if args.kind == "twilio":
        missing = [
            option
            for option in ("auth_token", "account_sid", "to_number", "public_url")
            if not getattr(args, option)
        ]
        if missing:
            parser.error(
                f"--kind twilio needs --{', --'.join(m.replace('_', '-') for m in missing)}"
            )
        if not re.fullmatch(r"[0-9a-f]{8}", args.run_id):
            parser.error("--kind twilio needs --run-id of 8 hex digits (it goes in MessageSid)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.stderr.write("load_generator: only loopback targets are allowed\n")
        return 2
    result = uvloop.run(generate(args))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

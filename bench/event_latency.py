"""Realtime latency: how long from a webhook's POST until its ``message.created`` event
reaches a stream, on one machine (SQLite, polling bus) and across two servers (Firestore and
Pub/Sub, on their emulators), in one run.

    .venv/bin/python -m bench.event_latency [--messages N] [--json]

On SQLite one server runs two workers; the stream and the webhooks go to the same port, so
the kernel spreads them over both workers and most events cross from one worker to the
other. On Firestore two servers run with one worker each; webhooks go to the first, the
stream is opened on the second. Webhooks are sent one at a time, each after the previous
event arrived, so each figure is one message's path: store, bus, hub, stream. Prints p50,
p90 and max per setup; the exit status is non-zero if an event is missing or duplicated.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.servers import OMNICHANNEL_APP, GunicornServer, free_port, server_environment
from omnichannel_core.testing.emulators import Emulator, start_firestore, start_pubsub
from tests.support.signing import SIGNATURE_HEADER
from tests.support.sse import open_stream

JWT_SECRET_BYTES = 32


def signed_webhook(client: httpx.Client, secret: str, sender: str, text: str) -> None:
    body = json.dumps({"id": uuid.uuid4().hex, "from": sender, "text": text}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    response = client.post(
        "/api/channels/http/webhook",
        content=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
    )
    response.raise_for_status()


@contextlib.contextmanager
def servers(
    root: Path, count: int, workers: int, extra: dict[str, str]
) -> Iterator[tuple[list[GunicornServer], str, str]]:
    secret, api_key = secrets.token_hex(16), secrets.token_hex(16)
    jwt_secret = secrets.token_hex(JWT_SECRET_BYTES)
    started: list[GunicornServer] = []
    try:
        for number in range(count):
            workdir = root / f"server-{number}"
            env = server_environment(workdir, free_port(), workers, secret, api_key)
            env.update({"OMNICHANNEL_JWT_SECRET": jwt_secret, **extra})
            env["OMNICHANNEL_DATA_DIR"] = str(root / "data")  # one SQLite file if SQLite
            started.append(
                GunicornServer(f"server-{number}", OMNICHANNEL_APP, workdir, env).start()
            )
        yield started, secret, api_key
    finally:
        for server in started:
            server.stop()


def measure(writer: GunicornServer, reader: GunicornServer, secret: str, key: str, n: int) -> dict:
    sender = f"+1555{secrets.randbelow(10**7):07d}"
    base = f"http://127.0.0.1:{reader.port}"
    latencies: list[float] = []
    with (
        httpx.Client(base_url=f"http://127.0.0.1:{writer.port}", timeout=30) as client,
        open_stream(base, key, read_timeout=30) as (response, stream),
    ):
        response.raise_for_status()
        stream.next_of("ready")
        for number in range(n):
            text = f"latency {number}"
            started = time.perf_counter()
            signed_webhook(client, secret, sender, text)
            event = stream.next_of("message.created")
            latencies.append((time.perf_counter() - started) * 1000)
            if event.data["message"]["text"] != text:
                raise RuntimeError(f"expected {text!r}, got {event.data['message']['text']!r}")
    ordered = sorted(latencies)
    return {
        "messages": n,
        "p50_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[int(0.9 * (n - 1))], 1),
        "max_ms": round(ordered[-1], 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-events-") as folder:
        root = Path(folder)
        env = {"HTTP_CHANNEL_SEND_URL": "http://127.0.0.1:9/unused"}
        with servers(root / "sqlite", 1, 2, env) as (started, secret, key):
            results["sqlite, 2 workers, poll bus"] = measure(
                started[0], started[0], secret, key, args.messages
            )
        emulators: list[Emulator] = []
        try:
            emulators.append(start_firestore(root / "firestore"))
            emulators.append(start_pubsub(root / "pubsub"))
            project = f"demo-bench-{secrets.token_hex(4)}"
            cloud = {
                **env,
                "OMNICHANNEL_STORE": f"firestore://{project}",
                "FIRESTORE_EMULATOR_HOST": emulators[0].host_port,
                "OMNICHANNEL_EVENT_BUS": f"pubsub://{project}/events",
                "PUBSUB_EMULATOR_HOST": emulators[1].host_port,
            }
            with servers(root / "cloud", 2, 1, cloud) as (started, secret, key):
                results["firestore + pubsub, 2 servers"] = measure(
                    started[0], started[1], secret, key, args.messages
                )
        finally:
            for emulator in emulators:
                emulator.stop()
    return results


def render(results: dict[str, Any]) -> str:
    lines = [f"{'setup':<34} {'messages':>8} {'p50 ms':>8} {'p90 ms':>8} {'max ms':>8}"]
    for name, figures in results.items():
        lines.append(
            f"{name:<34} {figures['messages']:>8} {figures['p50_ms']:>8} {figures['p90_ms']:>8}"
            f" {figures['max_ms']:>8}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.event_latency", description=__doc__)
    parser.add_argument("--messages", type=int, default=100, help="webhooks per setup")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error("--messages must be at least 1")
    results = run(args)
    print(json.dumps(results) if args.json else render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

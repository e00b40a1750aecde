"""An inbound message is on disk before its webhook is acknowledged.

Through the real gunicorn server: each acknowledged (200) signed webhook is followed at once
by SIGKILL of the whole server process group, so nothing can be flushed on the way out; the
SQLite file, opened directly afterwards, must hold every acknowledged message.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
from pathlib import Path

import httpx

from omnichannel_core.channels.http import SIGNATURE_HEADER, sign
from omnichannel_core.testing.server import ServerProcess, running_server

WEBHOOK_SECRET = "durability-secret"
ROUNDS = 4
BURST = 24


def _signed(message_id: str, sender: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"id": message_id, "from": sender, "text": f"text of {message_id}"})
    raw = body.encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(WEBHOOK_SECRET, raw)}
    return raw, headers


def _kill(server: ServerProcess) -> None:
    assert server.process is not None
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)


def _stored(workdir: Path) -> dict[str, str]:
    """provider id -> text of every http-channel message in the server's SQLite file."""
    connection = sqlite3.connect(workdir / "data" / "omnichannel.db")
    try:
        rows = connection.execute(
            "SELECT provider_message_id, text FROM messages WHERE channel = 'http'"
        ).fetchall()
    finally:
        connection.close()
    return dict(rows)


def test_each_acknowledged_webhook_survives_sigkill(tmp_path):
    """After every 200 from the webhook, SIGKILL the server group at once; each message
    that was acknowledged is in the database when it is opened afterwards."""
    acknowledged: list[str] = []
    for round_number in range(ROUNDS):
        with running_server(tmp_path, {"WEBHOOK_SECRET": WEBHOOK_SECRET}) as server:
            message_id = f"durable-{round_number}"
            body, headers = _signed(message_id, f"+1555000{round_number}")
            response = httpx.post(
                server.base_url + "/api/channels/http/webhook",
                content=body,
                headers=headers,
                timeout=10,
            )
            if response.status_code == 200:
                _kill(server)
            assert response.status_code == 200, response.text
            acknowledged.append(message_id)
        stored = _stored(tmp_path)
        for ack in acknowledged:
            assert ack in stored, (ack, sorted(stored))
            assert stored[ack] == f"text of {ack}"


def test_acknowledged_webhooks_of_a_concurrent_burst_survive_sigkill(tmp_path):
    """Many concurrent webhooks (committed in groups by the writer) are cut off by SIGKILL as
    soon as a few have been acknowledged: every one that got its 200 is stored."""
    acknowledged: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()

    with running_server(tmp_path, {"WEBHOOK_SECRET": WEBHOOK_SECRET}) as server:
        url = server.base_url + "/api/channels/http/webhook"

        def post(number: int) -> None:
            body, headers = _signed(f"burst-{number}", f"+1666{number % 3}")
            try:
                response = httpx.post(url, content=body, headers=headers, timeout=10)
            except httpx.HTTPError:
                return  # cut off by the kill: never acknowledged
            if response.status_code == 200:
                with lock:
                    acknowledged.append(f"burst-{number}")
                    if len(acknowledged) >= BURST // 3:
                        enough.set()

        threads = [threading.Thread(target=post, args=(n,)) for n in range(BURST)]
        for thread in threads:
            thread.start()
        assert enough.wait(30), server.log()
        _kill(server)
        for thread in threads:
            thread.join(30)
        with lock:
            acked = list(acknowledged)
    stored = _stored(tmp_path)
    assert len(acked) >= BURST // 3
    missing = [ack for ack in acked if ack not in stored]
    assert missing == [], (missing, sorted(stored))

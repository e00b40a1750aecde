"""Logging through the real server: JSON lines, the request id bound into each line of a
request, one summary line per request, a configurable level, and no secrets or message
bodies at info. Plus the format switch (JSON on a pipe, console on a terminal)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from omnichannel_core.channels.http import SIGNATURE_HEADER, sign
from omnichannel_core.testing.fake_provider import FakeProvider
from omnichannel_core.testing.server import API_KEY, ServerProcess, running_server

SECRET = "log-test-webhook-secret-7f3a9c"
WRONG_TOKEN = "wrong-token-never-logged-51d2"
URL_PASSWORD = "url-password-never-logged-93ab"
URL_TOKEN = "url-token-never-logged-0c4e"
"""Credentials in the send URL, as a webhook service's URL may hold them."""


@pytest.fixture(scope="module")
def logged_server(
    tmp_path_factory: pytest.TempPathFactory, receiver: FakeProvider
) -> Iterator[ServerProcess]:
    """A server with the http channel fully configured, logging JSON at info."""
    workdir = tmp_path_factory.mktemp("logs")
    env = {
        "WEBHOOK_SECRET": SECRET,
        "HTTP_CHANNEL_SEND_URL": receiver.url.replace("http://", f"http://hook:{URL_PASSWORD}@")
        + f"/inbound?token={URL_TOKEN}",
        "OMNICHANNEL_LOG_LEVEL": "info",
    }
    with running_server(workdir, env) as process:
        yield process


def json_lines(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def lines_of(server: ServerProcess, request_id: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(server.log()) if line.get("request_id") == request_id]


def post_signed_webhook(server: ServerProcess, payload: dict, request_id: str) -> None:
    body = json.dumps(payload).encode()
    response = server.client(None).post(
        "/api/channels/http/webhook",
        content=body,
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(SECRET, body),
            "X-Request-ID": request_id,
        },
    )
    assert response.status_code == 200, response.text


def new_request_id() -> str:
    return f"test-{uuid.uuid4().hex}"


def test_every_line_is_json_with_event_level_and_time(logged_server):
    """With OMNICHANNEL_LOG_FORMAT=json each log line, gunicorn's own included, is a JSON
    object with an event, a level and a timestamp."""
    logged_server.client().get("/api/contacts")
    lines = [line for line in logged_server.log().splitlines() if line.strip()]
    assert lines
    for line in lines:
        record = json.loads(line)
        assert {"event", "level", "timestamp"} <= set(record), line


def test_request_id_is_bound_into_every_line_of_the_request(logged_server):
    """The summary line of a webhook carries that request's id, its channel and the ids of
    the messages it stored."""
    request_id = new_request_id()
    post_signed_webhook(
        logged_server, {"id": f"in-{request_id}", "from": "+15550001", "text": "hi"}, request_id
    )
    events = {line["event"]: line for line in lines_of(logged_server, request_id)}
    assert "request_finished" in events
    assert all(line["channel"] == "http" for line in events.values())
    (message_id,) = events["request_finished"]["message_ids"]
    assert message_id.startswith("msg_")


def test_generated_request_id_is_the_one_in_the_log(logged_server):
    """When the client sends no id, the generated one echoed in the header is the one logged."""
    response = logged_server.client().get("/api/conversations")
    request_id = response.headers["X-Request-ID"]
    finished = lines_of(logged_server, request_id)
    assert [line["event"] for line in finished] == ["request_finished"]
    assert finished[0]["path"] == "/api/conversations"
    assert finished[0]["status"] == 200


@pytest.mark.parametrize(
    ("method", "path", "authenticated", "status"),
    [
        ("GET", "/", False, 200),
        ("GET", "/health", False, 200),
        ("GET", "/api/contacts", True, 200),
        ("GET", "/api/contacts", False, 401),
        ("GET", "/nowhere", True, 404),
        ("DELETE", "/", True, 405),
        ("POST", "/api/channels/http/webhook", False, 403),
    ],
)
def test_exactly_one_summary_line_per_request(logged_server, method, path, authenticated, status):
    """Each request, successful or not, writes exactly one request_finished line naming its
    method, path, status and duration."""
    request_id = new_request_id()
    client = logged_server.client(API_KEY if authenticated else None)
    response = client.request(method, path, headers={"X-Request-ID": request_id})
    assert response.status_code == status
    finished = [
        line for line in lines_of(logged_server, request_id) if line["event"] == "request_finished"
    ]
    assert len(finished) == 1
    summary = finished[0]
    assert (summary["method"], summary["path"], summary["status"]) == (method, path, status)
    assert summary["level"] == "info"
    assert summary["duration_ms"] >= 0


def test_secrets_and_message_text_never_reach_the_log(logged_server, receiver):
    """The API key, a wrong bearer token, WEBHOOK_SECRET, the webhook signature, the
    credentials in the send URL and the text of inbound and outbound messages never appear
    in the log at info level, the outbox's lines about the send (from the job runner that
    made it) included."""
    inbound_text = f"inbound-private-{uuid.uuid4().hex}"
    outbound_text = f"outbound-private-{uuid.uuid4().hex}"
    payload = {"id": f"in-{uuid.uuid4().hex}", "from": "+15550002", "text": inbound_text}
    post_signed_webhook(logged_server, payload, new_request_id())
    signature = sign(SECRET, json.dumps(payload).encode())

    client = logged_server.client()
    sent = client.post(
        "/api/channels/http/messages",
        json={"to": "+15550002", "text": outbound_text},
        headers={"Prefer": "wait=10"},  # answered once the outbox sent it
    )
    assert sent.status_code == 201, sent.text
    assert any(outbound_text.encode() in request.body for request in receiver.requests)
    logged_server.client(WRONG_TOKEN).get("/api/contacts")
    logged_server.client(None).get("/api/contacts", headers={"Authorization": f"Basic {SECRET}"})

    deadline = time.monotonic() + 5  # the runner logs the send just after recording it
    while not [
        line
        for line in json_lines(logged_server.log())
        if (line.get("event"), line.get("message_id")) == ("message_sent", sent.json()["id"])
    ]:
        assert time.monotonic() < deadline, "the runner logged no message_sent for the send"
        time.sleep(0.05)
    log = logged_server.log()
    assert '"message_ids": ["msg_' in log  # the webhook was logged, just not its secrets
    secrets = (API_KEY, WRONG_TOKEN, SECRET, signature, URL_PASSWORD, URL_TOKEN)
    for secret in (*secrets, inbound_text, outbound_text):
        assert secret not in log


def test_log_level_is_configurable(tmp_path):
    """With OMNICHANNEL_LOG_LEVEL=warning no info lines are written: no per-request summary,
    while requests are still served."""
    env = {"OMNICHANNEL_LOG_LEVEL": "warning", "WEBHOOK_SECRET": "s"}
    with running_server(tmp_path, env) as server:
        request_id = new_request_id()
        response = server.client().get("/api/contacts", headers={"X-Request-ID": request_id})
        assert response.status_code == 200
        lines = json_lines(server.log())
    assert not [line for line in lines if line.get("request_id") == request_id]
    assert all(line["level"] in ("warning", "error", "critical") for line in lines)


LOG_ONE_EVENT = """
import sys
from omnichannel_core.config import Config
from omnichannel_core.logs import configure_logging
import structlog
stream = open(int(sys.argv[1]), "w", closefd=False) if len(sys.argv) > 1 else sys.stderr
configure_logging(Config(log_format="auto"), stream=stream)
structlog.get_logger().info("format_probe", answer=42)
stream.flush()
"""


def test_json_when_not_on_a_terminal():
    """With the format on "auto", output to a pipe is one JSON object per line."""
    result = subprocess.run(
        [sys.executable, "-c", LOG_ONE_EVENT], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stderr.strip())
    assert record["event"] == "format_probe"
    assert record["answer"] == 42


def test_console_format_on_a_terminal():
    """With the format on "auto", output to a terminal is the readable console format."""
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-c", LOG_ONE_EVENT, str(terminal)],
            pass_fds=(terminal,),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        output = os.read(controller, 65536).decode(errors="replace")
    finally:
        os.close(controller)
        os.close(terminal)
    assert "format_probe" in output
    assert "answer" in output and "42" in output
    assert not output.lstrip().startswith("{")

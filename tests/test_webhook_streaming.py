"""Webhook bodies streamed to a file for a channel that declares ``webhook_body_limit``: a
large body reaches ``receive`` whole without the server holding it in memory, one over the
channel's limit is refused with 413 JSON, and every other channel keeps the plain body and
the ``OMNICHANNEL_MAX_BODY_BYTES`` cap.

The real server runs the spool channel (``tests/fixtures/omnichannel-spool``), whose
``receive`` hashes ``request.body_file`` in chunks and reports the worker's peak memory.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from falcon import testing

from omnichannel_core import hookimpl
from omnichannel_core.channel import InboundMessage, WebhookRequest, WebhookResult
from omnichannel_core.testing.in_process import AUTH, run_app
from omnichannel_core.testing.server import ServerProcess, running_server
from tests.fixtures.distributions import install_distributions

MB = 1024 * 1024
SPOOL_LIMIT = 25 * MB
WEBHOOK = "/api/channels/spool/webhook"
PEAK_GROWTH_LIMIT_KB = 8 * 1024
"""Reading a 20 MB body whole would raise the worker's peak by 20 MB at least (40 when the
chunks are joined); streamed, it grows by the in-memory part (1 MiB) and buffers."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real server, one worker, with the spool channel installed and the http channel."""
    site = install_distributions(tmp_path_factory.mktemp("spool") / "packages", "spool")
    env = {"PYTHONPATH": str(site), "WEBHOOK_SECRET": "streaming-test-secret"}
    with running_server(tmp_path_factory.mktemp("streaming"), env) as server:
        yield server


def _stored(server: ServerProcess, spool_id: str) -> list[dict]:
    """The spool channel's messages with provider id ``spool_id``."""
    with server.client() as client:
        conversations = client.get("/api/conversations", params={"channel": "spool"}).json()
        return [
            message
            for conversation in conversations["items"]
            for message in client.get(f"/api/conversations/{conversation['id']}/messages").json()[
                "items"
            ]
            if message["provider_message_id"] == spool_id
        ]


def _post(server: ServerProcess, body: bytes | Iterator[bytes], spool_id: str) -> httpx.Response:
    with server.client(None) as client:
        return client.post(
            WEBHOOK,
            content=body,
            headers={"X-Spool-Id": spool_id, "Content-Type": "application/octet-stream"},
            timeout=60,
        )


def test_hook_webhook_body_limit(server):
    """A 20 MB body to a channel that declares 25 MB reaches its ``receive`` whole (size
    and SHA-256 match), in ``body_file`` gone to disk, with ``body`` empty; the worker's
    peak memory grows by far less than the body, so it was never held whole; and the file
    is closed once ``receive`` returned."""
    body = os.urandom(20 * MB)
    with server.client(None) as client:
        warm = client.post(WEBHOOK, content=b"warm-up", headers={"X-Spool-Id": "warm-up"})
        assert warm.status_code == 200, warm.text
        reset = client.post("/api/channels/spool/peak").json()
    if not reset["reset"] or reset["rss_kb"] is None:
        pytest.skip("this kernel cannot reset a process's peak memory (/proc/self/clear_refs)")

    spool_id = f"big-{uuid.uuid4().hex}"
    response = _post(server, body, spool_id)
    assert response.status_code == 200, response.text

    [message] = _stored(server, spool_id)
    assert message["text"] == f"{len(body)} {hashlib.sha256(body).hexdigest()}"
    assert message["metadata"]["body"] == 0
    assert message["metadata"]["rolled"] is True
    growth_kb = message["metadata"]["peak_rss_kb"] - reset["rss_kb"]
    assert growth_kb < PEAK_GROWTH_LIMIT_KB, f"peak memory grew by {growth_kb} kB"
    with server.client(None) as client:
        assert client.post("/api/channels/spool/peak").json()["last_closed"] is True


def test_a_small_body_is_streamed_too(server):
    """A body under the in-memory part comes in ``body_file`` as well (never in ``body``),
    not rolled to disk."""
    spool_id = f"small-{uuid.uuid4().hex}"
    assert _post(server, b"hello", spool_id).status_code == 200
    [message] = _stored(server, spool_id)
    assert message["text"] == f"5 {hashlib.sha256(b'hello').hexdigest()}"
    assert (message["metadata"]["body"], message["metadata"]["rolled"]) == (0, False)


def test_a_body_announced_over_the_channel_limit_is_refused_before_it_is_read(server):
    """A 26 MB body whose Content-Length says so is answered 413 with a JSON error naming
    the channel's limit, and nothing is stored."""
    spool_id = f"too-big-{uuid.uuid4().hex}"
    try:
        response = _post(server, b"x" * (26 * MB), spool_id)
    except httpx.TransportError:
        pytest.fail("the server closed the connection before answering 413")
    assert response.status_code == 413
    assert response.json() == {
        "error": "content_too_large",
        "message": f"request body is larger than {SPOOL_LIMIT} bytes",
    }
    assert _stored(server, spool_id) == []


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit(server):
    """A body sent without Content-Length (chunked) is refused with 413 JSON once it passes
    the limit: the server stops reading there, whatever more the sender has."""
    spool_id = f"chunked-{uuid.uuid4().hex}"
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(40):
            sent += MB
            yield b"y" * MB

    response = _post(server, chunks(), spool_id)
    assert response.status_code == 413
    assert response.json()["message"] == f"request body is larger than {SPOOL_LIMIT} bytes"
    assert _stored(server, spool_id) == []


def test_other_channels_are_still_capped_at_max_body_bytes(server):
    """A channel without the hook still gets a body over OMNICHANNEL_MAX_BODY_BYTES (1 MiB)
    refused with 413 naming that limit."""
    with server.client(None) as client:
        response = client.post(
            "/api/channels/http/webhook",
            content=b"z" * (MB + 1),
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["message"] == f"request body is larger than {MB} bytes"


class _Limited:
    """A channel whose ``webhook_body_limit`` answers ``limit``, whose ``receive`` stores
    the body it was handed, from the file or the plain body, and whose ``status`` takes
    any."""

    def __init__(self, limit: object) -> None:
        self.limit = limit

    @hookimpl
    def webhook_body_limit(self) -> object:
        return self.limit

    @hookimpl
    def receive(self, request: WebhookRequest) -> WebhookResult:
        text = (request.body_file.read() if request.body_file else request.body).decode()
        kind = "file" if request.body_file is not None else "body"
        return WebhookResult(messages=(InboundMessage(text, "someone", text=kind),))

    @hookimpl
    def status(self, request: WebhookRequest) -> WebhookResult:
        return WebhookResult()


@pytest.mark.parametrize("limit", [0, -5, "big", 2.5, True])
def test_a_webhook_body_limit_that_is_no_size_fails_the_webhook(tmp_path, limit):
    """A ``webhook_body_limit`` answering anything but a positive whole number is the
    channel's fault: its webhook answers 502 channel_failed naming the hook."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        response = await conductor.simulate_post("/api/channels/limited/webhook", body=b"m-1")
        assert response.status_code == 502
        assert response.json["error"] == "channel_failed"
        assert "webhook_body_limit" in response.json["message"]

    run_app(tmp_path, {"limited": _Limited(limit)}, scenario)


def test_a_webhook_body_limit_of_none_keeps_the_plain_body(tmp_path):
    """A channel whose ``webhook_body_limit`` answers None gets the plain body, capped at
    OMNICHANNEL_MAX_BODY_BYTES, as a channel without the hook."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        response = await conductor.simulate_post("/api/channels/limited/webhook", body=b"m-2")
        assert response.status_code == 200
        messages = await conductor.simulate_get(
            "/api/conversations", params={"channel": "limited"}, headers=AUTH
        )
        [conversation] = messages.json["items"]
        listed = await conductor.simulate_get(
            f"/api/conversations/{conversation['id']}/messages", headers=AUTH
        )
        assert [item["text"] for item in listed.json["items"]] == ["body"]

    run_app(tmp_path, {"limited": _Limited(None)}, scenario)


def test_the_status_route_streams_too(tmp_path: Path):
    """The status callback of a channel that declares the hook is streamed the same way:
    a body over the channel's limit is refused with 413 before its ``status`` runs."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        response = await conductor.simulate_post("/api/channels/limited/status", body=b"s" * 2048)
        assert response.status_code == 413
        assert response.json["message"] == "request body is larger than 1024 bytes"

    run_app(tmp_path, {"limited": _Limited(1024)}, scenario)


def test_a_channel_without_the_routes_hook_answers_501_before_the_body_limit(tmp_path: Path):
    """The status route of a channel that declares ``webhook_body_limit`` but no ``status``
    answers 501 before the hook is asked or the body read."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        response = await conductor.simulate_post("/api/channels/spooled/status", body=b"s" * 2048)
        assert response.status_code == 501
        assert response.json["error"] == "not_implemented"

    run_app(tmp_path, {"spooled": _ReceiveOnly()}, scenario)


class _ReceiveOnly:
    """A channel with ``receive`` and a ``webhook_body_limit`` that must never be asked."""

    @hookimpl
    def webhook_body_limit(self) -> int:
        raise AssertionError("asked for a route the channel has no hook for")

    @hookimpl
    def receive(self, request: WebhookRequest) -> WebhookResult:
        return WebhookResult()

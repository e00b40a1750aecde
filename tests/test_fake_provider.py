"""The test kit's fake provider API: quiet about clients that hang up, loud about bugs."""

from __future__ import annotations

import contextlib
import socket
import struct
import time

import httpx

from omnichannel_core.testing.fake_provider import FakeProvider, RecordedRequest, ScriptedResponse

ANSWER_DELAY = 0.2


def hang_up_before_the_answer(url: str) -> None:
    """Send a request and close the connection at once, with a reset (as a client that
    timed out does), so the provider's answer meets a socket nobody reads."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.sendall(b"POST /hang-up HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")


def wait_for_requests(provider: FakeProvider, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(provider.requests) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(provider.requests) >= count


def test_a_client_that_hangs_up_early_is_not_reported(capfd):
    """Clients that close the connection before reading the answer (the provider then
    writes to a closed socket: BrokenPipeError or ConnectionResetError) leave nothing on
    stderr, and the provider goes on answering others."""
    slow = ScriptedResponse(delay=ANSWER_DELAY)
    for keep_alive in (False, True):
        with FakeProvider(slow, keep_alive=keep_alive) as provider:
            for _ in range(3):
                hang_up_before_the_answer(provider.url)
            wait_for_requests(provider, 3)
            time.sleep(ANSWER_DELAY * 3)  # every answer has met its closed socket
            assert httpx.post(provider.url + "/after", json={}).status_code == 200
    assert capfd.readouterr().err == ""


def test_an_error_of_the_provider_itself_is_still_reported(capfd):
    """An answer function that raises is a bug of the test: its traceback reaches stderr."""

    def broken(request: RecordedRequest) -> ScriptedResponse:
        raise ValueError("the answer function is wrong")

    with (
        FakeProvider(answer=broken) as provider,
        contextlib.suppress(httpx.HTTPError),  # closed without an answer
    ):
        httpx.post(provider.url + "/x", json={}, timeout=5)
    err = capfd.readouterr().err
    assert "ValueError: the answer function is wrong" in err

"""A receiver for the generic HTTP channel's sends that can misbehave as real ones do: answer
with any status and headers (a ``429`` with ``Retry-After``), close the connection after
reading the request without answering, or never answer until the sender gives up (its read
timeout); and hold an answer until the test lets it go, so a test sees the state between
two attempts however quickly the outbox retries. Scripted per recipient (the body's
``to``), so what one test scripts never answers another test's message, and every request
is recorded with when it arrived.

The kit's :class:`omnichannel_core.testing.FakeProvider` answers a status and a body only;
the outbox's retry tests need the rest.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

STALL_SECONDS = 60.0
"""The longest a stalled answer holds its connection when the sender never gives up."""


@attrs.frozen
class Answer:
    """What the receiver does with one request.

    :param hang_up: read the request, then close the connection without a word (the sender
        cannot know whether the message was taken).
    :param stall: never answer: hold the connection until the sender closes it (its read
        timeout), at most :data:`STALL_SECONDS`.
    :param held: answer only once this is set (at most :data:`STALL_SECONDS` later).
    """

    status: int = 200
    body: bytes = b"{}"
    headers: Mapping[str, str] = attrs.field(factory=dict)
    hang_up: bool = False
    stall: bool = False
    held: threading.Event | None = attrs.field(default=None, eq=False)

    @classmethod
    def json(
        cls,
        status: int,
        data: Any,
        headers: Mapping[str, str] | None = None,
        held: threading.Event | None = None,
    ) -> Answer:
        return cls(status, json.dumps(data).encode(), dict(headers or {}), held=held)


HANG_UP = Answer(hang_up=True)
STALL = Answer(stall=True)


@attrs.frozen
class Received:
    """One request as it arrived; ``at`` is ``time.monotonic()`` once its body was read."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def key(self) -> str | None:
        return self.headers.get("idempotency-key")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the sender gave up on an answer: expected here
        super().handle_error(request, client_address)


class Receiver:
    """``with Receiver() as receiver:`` serves on ``receiver.url`` until the block ends.
    A recipient with no script, or past its script, gets ``then`` (by default ``200 {}``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Answer]] = defaultdict(deque)
        self._then: dict[str, Answer] = {}
        self._received: list[Received] = []
        self._closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                received = Received(
                    time.monotonic(),
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                answer = receiver._record(received)
                if answer.hang_up:
                    self.close_connection = True
                    return  # the connection closes with nothing sent back
                if answer.stall:
                    receiver._hold(self.connection)
                    self.close_connection = True
                    return
                if answer.held is not None:
                    answer.held.wait(STALL_SECONDS)
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def script(self, to: str, *answers: Answer, then: Answer | None = None) -> None:
        """Answer the messages to ``to`` with ``answers`` in turn, then with ``then``."""
        with self._lock:
            self._scripts[to].extend(answers)
            if then is not None:
                self._then[to] = then

    def received(self, to: str | None = None) -> list[Received]:
        """The requests so far (those of messages to ``to``), in the order they arrived."""
        with self._lock:
            requests = list(self._received)
        return [r for r in requests if to is None or _recipient(r) == to]

    def _record(self, received: Received) -> Answer:
        to = _recipient(received)
        with self._lock:
            self._received.append(received)
            script = self._scripts.get(to)
            if script:
                return script.popleft()
            return self._then.get(to, Answer())

    def _hold(self, connection: socket.socket) -> None:
        """Wait, answering nothing, until the sender closes the connection."""
        deadline = time.monotonic() + STALL_SECONDS
        connection.settimeout(0.1)
        while not self._closing.is_set() and time.monotonic() < deadline:
            try:
                if connection.recv(1) == b"":
                    return  # the sender closed it: its read timeout
            except TimeoutError:
                continue
            except OSError:
                return

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _recipient(received: Received) -> str | None:
    with contextlib.suppress(ValueError, AttributeError):
        to = received.json().get("to")
        return to if isinstance(to, str) else None
    return None

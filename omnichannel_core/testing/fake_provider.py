"""A fake provider API over real HTTP on loopback: records every request, and answers from
a script (queue of responses), a default, or a function that shapes the answer like the
provider's (``answer``), as the fake Twilio API does."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs


@attrs.frozen
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@attrs.frozen
class ScriptedResponse:
    """One answer; ``delay`` seconds pass before it is sent; ``headers`` are sent besides
    ``Content-Type`` and ``Content-Length`` (a redirect's ``Location``)."""

    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    delay: float = 0.0
    headers: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def json(cls, status: int, data: Any, delay: float = 0.0) -> ScriptedResponse:
        return cls(status, json.dumps(data).encode(), "application/json", delay)


class _ProviderServer(ThreadingHTTPServer):
    """The fake's HTTP server: quiet about a client that went away before its answer (a
    client that timed out, a test that moved on), as a provider's API is; any other error
    of a request is still printed, traceback and all."""

    daemon_threads = True  # kept-alive connections must not block shutdown
    request_queue_size = 1024
    """The listen backlog: a runner's 32 sends at once, several runners, a loaded machine.
    socketserver's default of 5 resets connections a real provider would take (a send cut
    off so goes in doubt, and is never sent again)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipe, ConnectionReset...
            return
        super().handle_error(request, client_address)


class FakeProvider:
    """``with FakeProvider() as provider:`` serves on ``provider.url`` until the block ends."""

    def __init__(
        self,
        default: ScriptedResponse | None = None,
        answer: Callable[[RecordedRequest], ScriptedResponse] | None = None,
        keep_alive: bool = False,
    ) -> None:
        """:param answer: when given, makes every answer (the script and default are unused).
        :param keep_alive: speak HTTP/1.1 and keep connections open, as real APIs do."""
        self.default = default or ScriptedResponse()
        self.answer = answer
        self.requests: list[RecordedRequest] = []
        self.script: deque[ScriptedResponse] = deque()
        self.scripts: list[tuple[Callable[[RecordedRequest], bool], deque[ScriptedResponse]]] = []
        self._lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if len(body) < length:
                    # The sender died mid-body (a kill -9 in a crash test): a real provider
                    # never sees a cut-off request, so neither record nor answer it.
                    self.close_connection = True
                    return
                request = RecordedRequest(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                with provider._lock:
                    provider.requests.append(request)
                answer = (
                    provider.answer(request) if provider.answer else provider._scripted(request)
                )
                if answer.delay:
                    time.sleep(answer.delay)
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _ProviderServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _scripted(self, request: RecordedRequest) -> ScriptedResponse:
        with self._lock:
            for matches, script in self.scripts:
                if script and matches(request):
                    return script.popleft()
            return self.script.popleft() if self.script else self.default

    def queue(self, *responses: ScriptedResponse) -> None:
        """Answer the next requests with ``responses``, in order (then the default)."""
        with self._lock:
            self.script.extend(responses)

    def queue_for(
        self, matches: Callable[[RecordedRequest], bool], *responses: ScriptedResponse
    ) -> None:
        """Answer the next requests ``matches`` accepts with ``responses``, in order, before
        :meth:`queue`'s: sends go out from the outbox when it is their turn, so a script for
        one message must not be taken by another in flight."""
        with self._lock:
            self.scripts.append((matches, deque(responses)))

    def queue_for_text(self, text: str, *responses: ScriptedResponse) -> None:
        """:meth:`queue_for` the requests whose JSON body has this ``text``."""

        def matches(request: RecordedRequest) -> bool:
            try:
                return request.json().get("text") == text
            except (ValueError, AttributeError):
                return False

        self.queue_for(matches, *responses)

    def __enter__(self) -> FakeProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

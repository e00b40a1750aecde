"""A fake provider API over real HTTP on loopback: records every request, answers from a
script (queue of responses), or with a default."""

from __future__ import annotations

import json
import threading
from collections import deque
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
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"

    @classmethod
    def json(cls, status: int, data: Any) -> ScriptedResponse:
        return cls(status, json.dumps(data).encode())


class FakeProvider:
    """``with FakeProvider() as provider:`` serves on ``provider.url`` until the block ends."""

    def __init__(self, default: ScriptedResponse | None = None) -> None:
        self.default = default or ScriptedResponse()
        self.requests: list[RecordedRequest] = []
        self.script: deque[ScriptedResponse] = deque()
        self._lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with provider._lock:
                    provider.requests.append(
                        RecordedRequest(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    answer = provider.script.popleft() if provider.script else provider.default
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def queue(self, *responses: ScriptedResponse) -> None:
        with self._lock:
            self.script.extend(responses)

    def __enter__(self) -> FakeProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

"""A fake Facebook Graph API over real HTTP on loopback.

It serves the three endpoints the channel calls, answering the way the Graph API does:

- ``POST /{version}/me/messages`` (JSON body): 200 with ``{"recipient_id", "message_id"}``
  ("m_" + random), or a scripted answer (a Graph error, a chosen mid, a body that is not
  JSON).
- ``GET /{version}/me``: 200 with the page's ``id`` and ``name``.
- ``GET /{version}/{psid}?fields=...``: the profile set for that PSID (or a scripted Graph
  error for it); an unknown PSID answers Graph's ``#100`` "Unsupported get request".

Beside it, the fake's CDN (:attr:`FakeGraph.cdn_url`) serves the bytes of attachments
(:meth:`FakeGraph.add_attachment`) at signed-looking URLs, to anyone, as Facebook's CDN
does; any other path answers 403, as an expired CDN URL does.

Every call must carry the page token (``Authorization: Bearer`` or ``access_token``) and the
right ``appsecret_proof``; otherwise Graph's 400 ``OAuthException`` (190 for the token, 100
for the proof). Every request is recorded: method, path, query, headers, JSON body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from collections import deque
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

from omnichannel_core.testing.fake_provider import FakeProvider, RecordedRequest, ScriptedResponse

GRAPH_VERSION = "v21.0"
PAGE_NAME = "Omnichannel Test Page"

RATE_LIMITED = 613
PAGE_RATE_LIMITED = 32
INVALID_TOKEN = 190
INVALID_PARAMETER = 100
NO_MATCHING_USER = 2018001
OUTSIDE_WINDOW_CODE = 10
OUTSIDE_WINDOW_SUBCODE = 2018278
TEMPORARY_FAILURE = 1200

ERROR_MESSAGES = {
    RATE_LIMITED: "(#613) Calls to this api have exceeded the rate limit.",
    PAGE_RATE_LIMITED: "(#32) Page request limit reached",
    INVALID_TOKEN: "Error validating access token: Session has expired.",
    INVALID_PARAMETER: "(#100) No matching user found",
    OUTSIDE_WINDOW_CODE: "(#10) This message is sent outside of allowed window.",
    TEMPORARY_FAILURE: "(#1200) Temporary send message failure. Please try again later",
}


def new_mid() -> str:
    """A message id shaped like Messenger's."""
    return "m_" + uuid.uuid4().hex + uuid.uuid4().hex[:12]


def graph_error_body(
    code: int, message: str, subcode: int | None = None, error_type: str = "OAuthException"
) -> dict[str, Any]:
    """Graph's error JSON."""
    error: dict[str, Any] = {
        "message": message,
        "type": error_type,
        "code": code,
        "fbtrace_id": "A" + uuid.uuid4().hex[:22],
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


@attrs.frozen
class GraphRequest:
    """One request the fake received; ``query`` keeps the first value of each parameter."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any

    @property
    def bearer(self) -> str | None:
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" else None


@attrs.frozen
class GraphAnswer:
    """How the fake answers one scripted request.

    ``code`` None means success (with ``mid`` for a send, a fresh one when None); otherwise
    Graph's error JSON with ``status``. ``raw`` replaces the whole body (not JSON).
    """

    code: int | None = None
    status: int = 200
    mid: str | None = None
    subcode: int | None = None
    message: str | None = None
    raw: bytes | None = None

    @classmethod
    def accept(cls, mid: str | None = None) -> GraphAnswer:
        return cls(mid=mid)

    @classmethod
    def error(
        cls, code: int, status: int = 400, subcode: int | None = None, message: str | None = None
    ) -> GraphAnswer:
        return cls(code=code, status=status, subcode=subcode, message=message)

    @classmethod
    def garbage(cls, status: int = 200) -> GraphAnswer:
        return cls(status=status, raw=b"<html>upstream hiccup</html>")


class FakeGraph:
    """``with FakeGraph(token, secret) as graph:`` serves on ``graph.url`` until the block ends."""

    def __init__(self, page_token: str, app_secret: str, page_id: str) -> None:
        self.page_token = page_token
        self.app_secret = app_secret
        self.page_id = page_id
        self.proof = hmac.new(app_secret.encode(), page_token.encode(), hashlib.sha256).hexdigest()
        self.requests: list[GraphRequest] = []
        self.sends: deque[GraphAnswer] = deque()
        self.profiles: dict[str, dict[str, str] | GraphAnswer] = {}
        self._lock = threading.Lock()
        self._http = FakeProvider(answer=self._respond, keep_alive=True)
        self.url = self._http.url
        self.attachments: dict[str, tuple[bytes, str]] = {}
        self._cdn = FakeProvider(answer=self._serve_attachment)
        self.cdn_url = self._cdn.url

    # scripting and inspection ---------------------------------------------------------

    def queue(self, *answers: GraphAnswer) -> None:
        """Answer the next ``me/messages`` requests with these, in order."""
        with self._lock:
            self.sends.extend(answers)

    def set_profile(self, psid: str, profile: dict[str, str] | GraphAnswer) -> None:
        """What ``GET /{psid}`` answers: the profile's fields, or an error."""
        with self._lock:
            self.profiles[psid] = profile

    def add_attachment(self, content: bytes, content_type: str, name: str = "file") -> str:
        """Keep an attachment's bytes on the CDN; its URL, as a webhook names it."""
        key = uuid.uuid4().hex
        with self._lock:
            self.attachments[key] = (content, content_type)
        return f"{self.cdn_url}/v/t39/{key}/{name}?_nc_cat=1&oh=00_{key[:8]}&oe=6700AB12"

    def cdn_requests(self) -> list[RecordedRequest]:
        return list(self._cdn.requests)

    def reset(self) -> None:
        """Forget the script (what a test left unused)."""
        with self._lock:
            self.sends.clear()

    def _matching(self, method: str, suffix: str) -> list[GraphRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    def send_requests(self, psid: str | None = None) -> list[GraphRequest]:
        """The ``me/messages`` POSTs received, only those to ``psid`` when given."""
        sent = self._matching("POST", "/me/messages")
        return [r for r in sent if psid is None or r.body["recipient"]["id"] == psid]

    def me_requests(self) -> list[GraphRequest]:
        return self._matching("GET", "/me")

    def profile_requests(self, psid: str) -> list[GraphRequest]:
        return self._matching("GET", f"/{psid}")

    def all_requests(self) -> list[GraphRequest]:
        with self._lock:
            return list(self.requests)

    # answering -------------------------------------------------------------------------

    def _respond(self, received: RecordedRequest) -> ScriptedResponse:
        parts = urlsplit(received.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            body = json.loads(received.body) if received.body else None
        except ValueError:
            body = received.body
        request = GraphRequest(received.method, parts.path, query, received.headers, body)
        with self._lock:
            self.requests.append(request)
        status, answer = self._answer(request)
        if isinstance(answer, bytes):
            return ScriptedResponse(status, answer, "text/html")
        return ScriptedResponse(status, json.dumps(answer).encode(), "application/json")

    def _answer(self, request: GraphRequest) -> tuple[int, dict[str, Any] | bytes]:
        token = request.bearer or request.query.get("access_token")
        if token != self.page_token:
            message = "Invalid OAuth access token - Cannot parse access token"
            return 400, graph_error_body(INVALID_TOKEN, message)
        if request.query.get("appsecret_proof") != self.proof:
            message = "Invalid appsecret_proof provided in the API argument"
            return 400, graph_error_body(
                INVALID_PARAMETER, message, error_type="GraphMethodException"
            )
        prefix = f"/{GRAPH_VERSION}/"
        if not request.path.startswith(prefix):
            return 400, graph_error_body(
                2500, "Unknown path components", error_type="OAuthException"
            )
        rest = request.path.removeprefix(prefix)
        if request.method == "POST" and rest == "me/messages":
            return self._send(request)
        if request.method == "GET" and rest == "me":
            return 200, {"id": self.page_id, "name": PAGE_NAME}
        if request.method == "GET" and rest.isdigit():
            return self._profile(rest)
        return 400, graph_error_body(100, f"Unsupported {request.method} request.")

    def _send(self, request: GraphRequest) -> tuple[int, dict[str, Any] | bytes]:
        body = request.body
        if not isinstance(body, dict) or "recipient" not in body or "message" not in body:
            return 400, graph_error_body(100, "(#100) The parameter recipient is required")
        with self._lock:
            answer = self.sends.popleft() if self.sends else GraphAnswer.accept()
        if answer.raw is not None:
            return answer.status, answer.raw
        if answer.code is not None:
            message = answer.message or ERROR_MESSAGES.get(answer.code, "Error")
            return answer.status, graph_error_body(answer.code, message, answer.subcode)
        return 200, {"recipient_id": body["recipient"]["id"], "message_id": answer.mid or new_mid()}

    def _profile(self, psid: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            profile = self.profiles.get(psid)
        if isinstance(profile, GraphAnswer):
            assert profile.code is not None
            message = profile.message or ERROR_MESSAGES.get(profile.code, "Error")
            return profile.status, graph_error_body(profile.code, message, profile.subcode)
        if profile is None:
            message = (
                f"Unsupported get request. Object with ID '{psid}' does not exist, cannot be"
                " loaded due to missing permissions, or does not support this operation."
            )
            return 400, graph_error_body(100, message, 33, "GraphMethodException")
        return 200, {**profile, "id": psid}

    def _serve_attachment(self, received: RecordedRequest) -> ScriptedResponse:
        parts = urlsplit(received.path).path.split("/")
        found = self.attachments.get(parts[3]) if len(parts) > 3 else None
        if found is None:
            return ScriptedResponse(403, b"URL signature expired", "text/plain")
        content, content_type = found
        return ScriptedResponse(200, content, content_type)

    def __enter__(self) -> FakeGraph:
        self._http.__enter__()
        self._cdn.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cdn.__exit__(*exc)
        self._http.__exit__(*exc)

"""A fake Twilio REST API over real HTTP on loopback.

It serves the two endpoints the channel calls, answering the way Twilio does:

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form body): 201 with a message
  resource (``sid`` "SM" + 32 hex, ``status`` "queued", ...), or a scripted error.
- ``GET /2010-04-01/Accounts/{AccountSid}.json``: 200 with the account resource.
- ``GET /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{MediaSid}``: the
  media an inbound message's ``MediaUrl`` names (:meth:`FakeTwilio.add_media`), answered as
  Twilio does: a ``307`` to where the file is, its CDN, which is a second server reached as
  ``localhost`` (:attr:`FakeTwilio.cdn_url`; another host than the API's ``127.0.0.1``) and
  serves the bytes without credentials.

All three check HTTP basic auth (account SID and auth token) and answer 401 with Twilio's
``{"code": 20003, "message": "Authenticate", ...}`` otherwise. Every request is recorded
(method, path, headers, parsed form, when it arrived). Answers to ``Messages.json`` can be
scripted one per request (errors, a chosen SID, a delay, or no answer at all: the connection
closed once the request is read), for any recipient or for one ``To`` only; unscripted
requests are accepted.

The server's outbox sends in its job runner, after the request that queued the message was
answered, and retries in the background: a test scripts the answers for its own recipient
(``queue(..., to=phone)``), so a send another test left retrying never takes them.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections import deque
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

from omnichannel_core.testing.fake_provider import FakeProvider, RecordedRequest, ScriptedResponse

API_VERSION = "2010-04-01"
ERROR_DOCS = "https://www.twilio.com/docs/errors/"

INVALID_TO = 21211
UNSUBSCRIBED = 21610
OUTSIDE_WINDOW = 63016
TOO_MANY_REQUESTS = 20429
INTERNAL_ERROR = 20500

ERROR_MESSAGES = {
    INVALID_TO: "The 'To' number {to} is not a valid phone number.",
    UNSUBSCRIBED: "Attempt to send to unsubscribed recipient",
    OUTSIDE_WINDOW: (
        "Failed to send freeform message because you are outside the allowed window. If you"
        " are using WhatsApp, please use a Message Template."
    ),
    TOO_MANY_REQUESTS: "Too Many Requests",
    INTERNAL_ERROR: "An internal server error has occurred",
}
ERROR_STATUSES = {TOO_MANY_REQUESTS: 429, INTERNAL_ERROR: 500}


def new_message_sid() -> str:
    """A SID shaped like Twilio's: "SM" and 32 lower-case hex digits."""
    return "SM" + uuid.uuid4().hex


@attrs.frozen
class TwilioRequest:
    """One request the fake received. ``form`` keeps every value of a repeated field."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]
    at: float = 0.0
    """``time.monotonic()`` when it arrived."""

    def param(self, name: str) -> str | None:
        """The field's only (or first) value, or None when it was not sent."""
        values = self.form.get(name)
        return values[0] if values else None

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        scheme, _, encoded = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        return user, password


@attrs.frozen
class MessageAnswer:
    """How the fake answers one ``Messages.json`` request.

    ``error_code`` None means accept (201) with ``sid`` (a fresh one when None); otherwise
    answer Twilio's error JSON with ``status``. ``delay`` seconds pass before answering.
    ``lost``: no answer at all, the connection is closed once the request was read (Twilio
    may have taken the message; the sender cannot know).
    """

    error_code: int | None = None
    status: int = 201
    sid: str | None = None
    message: str | None = None
    delay: float = 0.0
    lost: bool = False

    @classmethod
    def accept(cls, sid: str | None = None, delay: float = 0.0) -> MessageAnswer:
        return cls(sid=sid, delay=delay)

    @classmethod
    def lose(cls) -> MessageAnswer:
        """Read the request, then hang up without answering."""
        return cls(lost=True)

    @classmethod
    def error(
        cls, code: int, status: int | None = None, message: str | None = None
    ) -> MessageAnswer:
        return cls(error_code=code, status=status or ERROR_STATUSES.get(code, 400), message=message)


class Redirect(Exception):
    """Raised while answering to send a ``307`` to ``location``."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class AnswerLost(ConnectionAbortedError):
    """Raised in the fake's request thread to hang up without answering (a ConnectionError:
    the fake's HTTP server closes the connection quietly)."""


def error_body(code: int, status: int, message: str) -> dict[str, Any]:
    """Twilio's error JSON."""
    return {"code": code, "message": message, "more_info": f"{ERROR_DOCS}{code}", "status": status}


class FakeTwilio:
    """``with FakeTwilio(sid, token) as twilio:`` serves on ``twilio.url`` until the block ends."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.requests: list[TwilioRequest] = []
        self.script: deque[MessageAnswer] = deque()
        self.scripts_to: dict[str, deque[MessageAnswer]] = {}
        self._lock = threading.Lock()
        self._http = FakeProvider(answer=self._respond, keep_alive=True)
        self.url = self._http.url
        self.media: dict[str, tuple[bytes, str]] = {}
        """Media by its SID: the bytes and their type."""
        self._cdn = FakeProvider(answer=self._serve_media)
        self.cdn_url = self._cdn.url.replace("127.0.0.1", "localhost")

    # scripting and inspection ---------------------------------------------------------

    def queue(self, *answers: MessageAnswer, to: str | None = None) -> None:
        """Answer the next ``Messages.json`` requests with these, in order; with ``to``,
        only the requests to that address (``To``: ``+1555...`` or ``whatsapp:+1555...``),
        whose script is used before the one for any recipient."""
        with self._lock:
            if to is None:
                self.script.extend(answers)
            else:
                self.scripts_to.setdefault(to, deque()).extend(answers)

    def reset(self) -> None:
        """Forget the scripts (what a test left unused)."""
        with self._lock:
            self.script.clear()
            self.scripts_to.clear()

    def message_requests(self, to: str | None = None) -> list[TwilioRequest]:
        """The ``Messages.json`` POSTs received, only those to ``to`` when given."""
        with self._lock:
            sent = [r for r in self.requests if r.path.endswith("/Messages.json")]
        return [r for r in sent if to is None or r.param("To") == to]

    def wait_for_requests(self, to: str, count: int, seconds: float = 10.0) -> list[TwilioRequest]:
        """The ``Messages.json`` POSTs to ``to`` once there are at least ``count`` of them
        (the outbox sends after the API answered); AssertionError after ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            sent = self.message_requests(to=to)
            if len(sent) >= count:
                return sent
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{len(sent)} request(s) to {to} reached the fake in {seconds}s, not {count}"
                )
            time.sleep(0.02)

    def add_media(self, content: bytes, content_type: str) -> str:
        """Keep media for an inbound message, as Twilio does; its ``MediaUrl`` on this API."""
        media_sid = "ME" + uuid.uuid4().hex
        with self._lock:
            self.media[media_sid] = (content, content_type)
        message = (
            f"{self.url}/{API_VERSION}/Accounts/{self.account_sid}/Messages/MM{uuid.uuid4().hex}"
        )
        return f"{message}/Media/{media_sid}"

    def media_requests(self) -> list[TwilioRequest]:
        """The API's ``GET .../Media/ME...`` requests."""
        with self._lock:
            return [r for r in self.requests if "/Media/" in r.path]

    def cdn_requests(self) -> list[RecordedRequest]:
        """What the CDN was asked."""
        return list(self._cdn.requests)

    def account_requests(self) -> list[TwilioRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and "/Messages" not in r.path]

    # answering -------------------------------------------------------------------------

    def _respond(self, received: RecordedRequest) -> ScriptedResponse:
        try:
            status, answer, delay = self._answer(received)
        except Redirect as redirect:
            return ScriptedResponse(307, b"", headers={"Location": redirect.location})
        if status is None:
            raise AnswerLost("the fake Twilio hangs up without answering (scripted)")
        return ScriptedResponse(
            status, json.dumps(answer).encode(), "application/json; charset=utf-8", delay
        )

    def _answer(self, received: RecordedRequest) -> tuple[int | None, dict[str, Any], float]:
        """Twilio's status, JSON and the delay before answering; status None: no answer."""
        path = urlsplit(received.path).path
        body = received.body
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True) if body else {}
        request = TwilioRequest(received.method, path, received.headers, form, time.monotonic())
        method = request.method
        with self._lock:
            self.requests.append(request)
        if request.basic_auth != (self.account_sid, self.auth_token):
            return 401, error_body(20003, 401, "Authenticate"), 0.0
        account_path = f"/{API_VERSION}/Accounts/{self.account_sid}"
        if method == "GET" and path == account_path + ".json":
            return 200, self._account(), 0.0
        _, media, media_sid = path.rpartition("/Media/")
        if method == "GET" and path.startswith(account_path + "/Messages/") and media:
            if media_sid not in self.media:
                return (
                    404,
                    error_body(20404, 404, f"The requested resource {path} was not found"),
                    0.0,
                )
            raise Redirect(f"{self.cdn_url}/media/{media_sid}")
        if method == "POST" and path == account_path + "/Messages.json":
            answer = self._scripted(request.param("To") or "")
            if answer.lost:
                return None, {}, 0.0
            return (*self._message_answer(request, answer), answer.delay)
        return 404, error_body(20404, 404, f"The requested resource {path} was not found"), 0.0

    def _scripted(self, to: str) -> MessageAnswer:
        """The next answer scripted for ``to``, else for anyone, else acceptance."""
        with self._lock:
            for script in (self.scripts_to.get(to), self.script):
                if script:
                    return script.popleft()
        return MessageAnswer.accept()

    def _message_answer(
        self, request: TwilioRequest, answer: MessageAnswer
    ) -> tuple[int, dict[str, Any]]:
        to = request.param("To") or ""
        if answer.error_code is not None:
            template = answer.message or ERROR_MESSAGES.get(answer.error_code, "Error")
            return answer.status, error_body(
                answer.error_code, answer.status, template.format(to=to)
            )
        return 201, self._message_resource(request, answer.sid or new_message_sid())

    def _message_resource(self, request: TwilioRequest, sid: str) -> dict[str, Any]:
        """A message resource shaped like Twilio's answer to a create."""
        now = formatdate(usegmt=True)
        media = request.form.get("MediaUrl", [])
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": request.param("Body") or "",
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": request.param("From"),
            "messaging_service_sid": request.param("MessagingServiceSid"),
            "num_media": str(len(media)),
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if request.param("MessagingServiceSid") else "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": request.param("To"),
            "uri": f"{uri}.json",
        }

    def _account(self) -> dict[str, Any]:
        now = formatdate(usegmt=True)
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}"
        return {
            "date_created": now,
            "date_updated": now,
            "friendly_name": "omnichannel tests",
            "owner_account_sid": self.account_sid,
            "sid": self.account_sid,
            "status": "active",
            "subresource_uris": {"messages": f"{uri}/Messages.json"},
            "type": "Full",
            "uri": f"{uri}.json",
        }

    def _serve_media(self, received: RecordedRequest) -> ScriptedResponse:
        """The CDN: the bytes of ``/media/ME...``, to anyone who has the URL."""
        media = self.media.get(received.path.removeprefix("/media/"))
        if media is None:
            return ScriptedResponse(404, b"<Error>NoSuchKey</Error>", "application/xml")
        content, content_type = media
        return ScriptedResponse(200, content, content_type)

    def __enter__(self) -> FakeTwilio:
        self._http.__enter__()
        self._cdn.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cdn.__exit__(*exc)
        self._http.__exit__(*exc)

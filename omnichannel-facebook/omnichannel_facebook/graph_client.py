"""The Graph API client: every call the channel makes to Facebook goes through here.

- The page access token travels in the ``Authorization: Bearer`` header, never in a URL, so
  no request line or log line holds it; every call carries ``appsecret_proof`` (HMAC-SHA256
  of the token with the app secret), so a leaked token alone cannot be used against the
  page when the app requires the proof.
- Clients are cached per settings and timeout and shared by all of the channel's hook
  threads (``httpx.Client`` is safe for that); the pool keeps a connection for each thread.
- What can go wrong is one of three errors: :class:`GraphError` (Facebook answered with an
  error), :class:`GraphUnreachable` (the request provably never left: no connection) and
  :class:`GraphAnswerLost` (the request went out, the answer did not come back).
- One ``facebook_graph_call`` debug line per call: method, path without the query, status,
  Graph's error code and the time taken; never the token, the secret or the proof. httpx's
  own request line (INFO) shows the query, so the proof is masked in it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import time
from typing import Any

import attrs
import httpx
import structlog

from omnichannel_core.channel import (
    HOOK_THREADS_PER_CHANNEL,
)
from omnichannel_facebook.settings import FacebookSettings

log = structlog.get_logger("omnichannel.facebook")

SEND_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
POOL_SIZE = HOOK_THREADS_PER_CHANNEL
"""Connections kept: one per hook thread that may call the Graph API at once."""

RATE_LIMIT_CODES = frozenset({4, 17, 32, 613})
"""Graph's throttling codes: application, user, page and custom rate limits."""
BUSINESS_RATE_LIMIT_CODES = range(80000, 80015)
"""Business use case rate limits (80006 is Messenger's: too many messages to one person)."""
TRANSIENT_CODES = frozenset({1, 2, 1200})
"""Unknown error, service temporarily unavailable, temporary send failure: try again."""
INVALID_TOKEN = 190
MAX_ERROR_MESSAGE = 500


def appsecret_proof(access_token: str, app_secret: str) -> str:
    """``appsecret_proof``: hex HMAC-SHA256 of the access token, keyed with the app secret."""
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


@attrs.define(eq=False)  # mutable, as exceptions are (Python sets their traceback and notes)
class GraphError(Exception):
    """Facebook answered with an error.

    :param status: the HTTP status.
    :param code: Graph's ``error.code`` (None when the answer held no Graph error).
    :param message: Graph's ``error.message``, with any secret of ours masked.
    """

    status: int
    code: int | None
    message: str
    subcode: int | None = None
    error_type: str | None = None
    fbtrace_id: str | None = None

    def __str__(self) -> str:
        return f"Graph API answered {self.status} (code {self.code}): {self.message}"

    @property
    def is_rate_limit(self) -> bool:
        """Throttled: the same call may work after a wait."""
        return (
            self.status == 429
            or self.code in RATE_LIMIT_CODES
            or (self.code is not None and self.code in BUSINESS_RATE_LIMIT_CODES)
        )

    @property
    def is_invalid_token(self) -> bool:
        """The page access token is expired, revoked or not a token."""
        return self.code == INVALID_TOKEN

    @property
    def is_transient(self) -> bool:
        """An outage on Facebook's side: the same call may work in a moment."""
        return self.status >= 500 or self.is_transient_code

    @property
    def is_transient_code(self) -> bool:
        """Graph itself says the call failed and may be tried again (:data:`TRANSIENT_CODES`)."""
        return self.code in TRANSIENT_CODES

    def details(self) -> dict[str, Any]:
        """Graph's identifiers of the error, for an API answer (None values left out)."""
        found = {
            "graph_status": self.status,
            "graph_code": self.code,
            "graph_subcode": self.subcode,
            "fbtrace_id": self.fbtrace_id,
        }
        return {name: value for name, value in found.items() if value is not None}


class GraphUnreachable(Exception):
    """No connection to the Graph API could be made: the request never left."""


class GraphAnswerLost(Exception):
    """The request was sent, and no readable answer came back: it may have been acted on."""


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) and value else None


def graph_error(response: httpx.Response, secrets: tuple[str, ...]) -> GraphError:
    """The error an answer of 400 or more carries, from Graph's ``{"error": {...}}``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return GraphError(response.status_code, None, f"Graph API answered {response.status_code}")
    given = error.get("message")
    message = given if isinstance(given, str) else ""
    for secret in secrets:
        message = message.replace(secret, "[redacted]")
    return GraphError(
        status=response.status_code,
        code=_integer(error.get("code")),
        message=message[:MAX_ERROR_MESSAGE] or f"Graph API answered {response.status_code}",
        subcode=_integer(error.get("error_subcode")),
        error_type=_text(error.get("type")),
        fbtrace_id=_text(error.get("fbtrace_id")),
    )


class GraphClient:
    """Calls ``{base}/{version}/{path}`` with the page's token and ``appsecret_proof``.

    Only for settings that can call the Graph API (``settings.can_call_graph``).
    """

    def __init__(self, settings: FacebookSettings, timeout: httpx.Timeout) -> None:
        token, secret = settings.page_access_token, settings.app_secret
        assert token and secret, "GraphClient needs the page access token and the app secret"
        self.version = settings.graph_api_version
        self._proof = appsecret_proof(token, secret)
        self._secrets = (token, secret, self._proof)
        self._http = httpx.Client(
            base_url=settings.graph_api_base_url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE),
            follow_redirects=False,
        )

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """``GET /{version}/{path}``: the answer's JSON object."""
        return self._call("GET", path, params or {}, None)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /{version}/{path}`` with a JSON body: the answer's JSON object."""
        return self._call("POST", path, {}, body)

    def _call(
        self, method: str, path: str, params: dict[str, str], body: dict[str, Any] | None
    ) -> dict[str, Any]:
        url = f"/{self.version}/{path}"
        started = time.monotonic()
        try:
            response = self._http.request(
                method, url, params={**params, "appsecret_proof": self._proof}, json=body
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            self._log(method, url, started, outcome=type(error).__name__)
            raise GraphUnreachable(type(error).__name__) from None
        except httpx.TransportError as error:  # sent, or partly: Facebook may have acted
            self._log(method, url, started, outcome=type(error).__name__)
            raise GraphAnswerLost(type(error).__name__) from None
        if response.status_code >= 400:
            failure = graph_error(response, self._secrets)
            self._log(method, url, started, response.status_code, failure.code)
            raise failure
        self._log(method, url, started, response.status_code)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise GraphAnswerLost(f"answer {response.status_code} was not a JSON object")
        return answer

    @staticmethod
    def _log(
        method: str,
        path: str,
        started: float,
        status: int | None = None,
        graph_code: int | None = None,
        outcome: str | None = None,
    ) -> None:
        log.debug(
            "facebook_graph_call",
            method=method,
            path=path,
            status=status,
            graph_code=graph_code,
            outcome=outcome,
            elapsed_ms=round((time.monotonic() - started) * 1000, 1),
        )


_clients: dict[tuple[Any, ...], GraphClient] = {}
_clients_lock = threading.Lock()
_MAX_CLIENTS = 8


def graph_client(settings: FacebookSettings, timeout: httpx.Timeout = SEND_TIMEOUT) -> GraphClient:
    """The client for ``settings`` and ``timeout``, cached and shared by every thread."""
    key = (
        settings.page_access_token,
        settings.app_secret,
        settings.graph_api_base_url,
        settings.graph_api_version,
        tuple(sorted(timeout.as_dict().items())),  # httpx.Timeout is not hashable
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            if len(_clients) >= _MAX_CLIENTS:
                _clients.pop(next(iter(_clients)))  # still usable by whoever holds it
            client = _clients[key] = GraphClient(settings, timeout)
        return client


_PROOF_IN_URL = re.compile(r"appsecret_proof=[0-9a-fA-F]+")


class MaskAppsecretProof(logging.Filter):
    """Masks ``appsecret_proof=...`` in httpx's request lines, which print the whole URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            "appsecret_proof=" in str(arg) for arg in record.args
        ):
            record.args = tuple(
                _PROOF_IN_URL.sub("appsecret_proof=[masked]", str(arg))
                if "appsecret_proof=" in str(arg)
                else arg
                for arg in record.args
            )
        return True


def _mask_proof_in_httpx_log() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, MaskAppsecretProof) for f in httpx_logger.filters):
        httpx_logger.addFilter(MaskAppsecretProof())


_mask_proof_in_httpx_log()

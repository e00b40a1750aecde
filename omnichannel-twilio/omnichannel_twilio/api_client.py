"""The official Twilio SDK client, pointed at ``TWILIO_API_BASE_URL``.

The SDK builds absolute ``https://api.twilio.com/...`` URLs (other products live on other
``*.twilio.com`` hosts). :class:`BaseUrlHttpClient` rewrites every such URL onto the
configured base URL, so a regional edge, a proxy or a local fake Twilio answers instead.

Clients are cached per settings and timeout, and one is used by all of the channel's hook
threads at once. The SDK's own HTTP client is not safe for that (it passes each response
through an attribute of the shared client, so one thread can return another's answer:
twilio-python issue 580); ours returns each response from the call that made it and keeps no
state per request. Its connection pool holds a connection for every hook thread, so none is
discarded and reopened under load.
"""

from __future__ import annotations

import logging
import threading
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from omnichannel_core.channel import (
    HOOK_THREADS_PER_CHANNEL,
)
from omnichannel_twilio.settings import TwilioSettings

Timeout = float | tuple[float, float]
"""Seconds for the whole of each phase, or (connect, read) as ``requests`` takes them."""

SEND_TIMEOUT_SECONDS: Timeout = 15.0
POOL_SIZE = HOOK_THREADS_PER_CHANNEL
"""Connections kept per host: one per hook thread that may call Twilio at once."""

# The SDK logs every request and response header at INFO; ours logs one line per request.
_sdk_logger = logging.getLogger("omnichannel.twilio.sdk")
_sdk_logger.setLevel(logging.WARNING)

_JSON_TYPES = ("application/json", "application/scim+json")


def is_twilio_url(url: str) -> bool:
    """True for ``https://twilio.com/...`` and ``https://<anything>.twilio.com/...``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and (host == "twilio.com" or host.endswith(".twilio.com"))


def rewrite_url(url: str, base_url: str) -> str:
    """``url`` on ``base_url`` when it is a Twilio URL: scheme and host replaced, the base
    URL's path (if any) put before the original path; any other URL unchanged."""
    if not is_twilio_url(url):
        return url
    original = urlsplit(url)
    base = urlsplit(base_url.rstrip("/"))
    rewritten = original._replace(
        scheme=base.scheme, netloc=base.netloc, path=base.path + original.path
    )
    return rewritten.geturl()


class BaseUrlHttpClient(TwilioHttpClient):
    """The SDK's HTTP client, sending what it would send to Twilio to ``base_url``, safe to
    share between threads.

    :param timeout: seconds, or (connect, read) seconds, for each request.
    """

    def __init__(self, base_url: str, timeout: Timeout) -> None:
        # The SDK compares the timeout with 0, which a (connect, read) pair cannot be.
        super().__init__(pool_connections=False, timeout=None, logger=_sdk_logger)
        self.timeout = timeout
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_maxsize=POOL_SIZE)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)  # a fake or a local proxy
        # No cookie is kept between requests: the session carries no state but its pool.
        self.session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """What the SDK's ``request`` does, on the rewritten URL, with the answer kept only
        in this call (never on ``self``, which the other threads share)."""
        body_key = "json" if headers and headers.get("Content-Type") in _JSON_TYPES else "data"
        destination = rewrite_url(url, self.base_url)
        arguments: dict[str, Any] = {
            "method": method.upper(),
            "url": destination,
            "params": params,
            "headers": headers,
            "auth": auth,
            "hooks": self.request_hooks,
            body_key: data,
        }
        self.log_request(arguments)
        prepared = self.session.prepare_request(requests.Request(**arguments))
        # The proxy settings for the destination's scheme and host (the query plays no part).
        environment = self.session.merge_environment_settings(
            destination, self.proxy, None, None, None
        )
        answer = self.session.send(
            prepared,
            allow_redirects=allow_redirects,
            timeout=self.timeout if timeout is None else timeout,
            **environment,
        )
        self.log_response(answer.status_code, answer)
        return Response(int(answer.status_code), answer.text, answer.headers)


_clients: dict[tuple[Any, ...], Client] = {}
_clients_lock = threading.Lock()
_MAX_CLIENTS = 8


def twilio_client(settings: TwilioSettings, timeout: Timeout = SEND_TIMEOUT_SECONDS) -> Client:
    """The SDK client for ``settings`` (account SID and auth token must be set), cached and
    shared by every thread."""
    key = (settings.account_sid, settings.auth_token, settings.api_base_url, timeout)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = Client(
                settings.account_sid,
                settings.auth_token,
                http_client=BaseUrlHttpClient(settings.api_base_url, timeout),
                # not os.environ: TWILIO_EDGE/TWILIO_REGION would move the host under us;
                # TWILIO_API_BASE_URL says where the API is.
                environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""},
            )
            if len(_clients) >= _MAX_CLIENTS:
                _clients.pop(next(iter(_clients)))
            _clients[key] = client
        return client

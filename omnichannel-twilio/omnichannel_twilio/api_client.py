"""The official Twilio SDK client, pointed at ``TWILIO_API_BASE_URL``.

The SDK builds absolute ``https://api.twilio.com/...`` URLs (other products live on other
``*.twilio.com`` hosts). :class:`BaseUrlHttpClient` rewrites every such URL onto the
configured base URL, so a regional edge, a proxy or a local fake Twilio answers instead.
Clients are cached per settings and timeout: each keeps one connection pool.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from omnichannel_twilio.settings import TwilioSettings

SEND_TIMEOUT_SECONDS = 15.0

# The SDK logs every request and response header at INFO; ours logs one line per request.
_sdk_logger = logging.getLogger("omnichannel.twilio.sdk")
_sdk_logger.setLevel(logging.WARNING)


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
    """The SDK's HTTP client, sending what it would send to Twilio to ``base_url``."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout, logger=_sdk_logger)
        self.base_url = base_url.rstrip("/")

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
        return super().request(
            method,
            rewrite_url(url, self.base_url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )


_clients: dict[tuple[Any, ...], Client] = {}
_clients_lock = threading.Lock()
_MAX_CLIENTS = 8


def twilio_client(settings: TwilioSettings, timeout: float = SEND_TIMEOUT_SECONDS) -> Client:
    """The SDK client for ``settings`` (account SID and auth token must be set), cached."""
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

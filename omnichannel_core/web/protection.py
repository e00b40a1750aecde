"""Protection against abuse: rate limits, security headers and CORS, as Falcon middleware.

Rate limits are token buckets: a bucket holds at most the per-minute figure and refills
continuously at that figure per minute, so a client may burst to the figure and then keeps
the average. There are three, each off when set to 0:

- per client address (``OMNICHANNEL_RATE_LIMIT``), on every matched route;
- per credential (``OMNICHANNEL_CREDENTIAL_RATE_LIMIT``), keyed by a SHA-256 digest of the
  bearer token presented, never the token itself, so a key shared by many addresses is held
  to one budget;
- per client address on the login and refresh routes (``OMNICHANNEL_LOGIN_RATE_LIMIT``),
  whose operations declare ``rate_limit=RateLimit.STRICT``, to slow password guessing; on
  top of the first.

An IPv6 client is counted by its /64, the block one subscriber usually holds, so it cannot
take a fresh bucket for each of its addresses. Channel webhooks and status callbacks
(``rate_limit=RateLimit.NONE``) are never counted: providers burst from many addresses and
the channel authenticates them by signature. Unmatched routes are not counted either.

Security headers and CORS are each route's own (`omnichannel_core.routes.RoutePolicy`):
the agents' API gets strict headers and the ``OMNICHANNEL_CORS_ORIGINS`` list, a page may
run its own scripts, a visitor API may allow the sites it is embedded in. The same origins
hold for the route's WebSockets, which browsers open across sites without asking CORS
(cross-site WebSocket hijacking): see :class:`Cors`.

Over a limit, the request is refused with :class:`~omnichannel_core.errors.RateLimited`
(429 with ``Retry-After``).

The buckets live in memory, in each worker process. With N gunicorn workers a client may get
up to N times the figure (a client's keep-alive connection stays on one worker, so a single
connection sees one worker's budget), and a restart forgets them. Memory is bounded: each
limit keeps its most recently used ``MAX_KEYS`` buckets and forgets the idlest beyond that;
a forgotten bucket starts full again, which only ever favours the client.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any
from urllib.parse import urlsplit

import falcon
import falcon.asgi

from omnichannel_core.config import Config
from omnichannel_core.errors import Forbidden, RateLimited
from omnichannel_core.routes import RateLimit
from omnichannel_core.web.client_address import client_address
from omnichannel_core.web.middleware import presented_bearer
from omnichannel_core.web.mounting import Mounts

MAX_KEYS = 100_000
"""Buckets kept per limit (per worker); the least recently used beyond this are forgotten.
A bucket takes about 250-400 bytes, so a full limit holds some 25-40 MB."""

# One year, for this host only: subdomains may be other people's services.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


class TokenBuckets:
    """One rate limit: a token bucket per key, the most recently used ``max_keys`` kept.

    :param per_minute: the bucket's capacity, and its refill per minute (at least 1).
    :param clock: seconds from a monotonic clock; tests pass their own.
    """

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.capacity = float(per_minute)
        self.per_second = per_minute / 60
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def take(self, key: Hashable) -> float:
        """Spend one token of ``key``'s bucket. Returns 0 when there was one; else, spending
        nothing, the seconds until there will be."""
        now = self.clock()
        held = self._buckets.pop(key, None)
        if held is None:
            tokens = self.capacity
        else:
            tokens, updated = held
            tokens = min(self.capacity, tokens + (now - updated) * self.per_second)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.per_second
        self._buckets[key] = (tokens, now)  # re-inserted: now the most recently used
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._buckets


def _limit(per_minute: int, clock: Callable[[], float]) -> TokenBuckets | None:
    return TokenBuckets(per_minute, clock) if per_minute > 0 else None


def address_key(address: str) -> str:
    """What the per-address limits count by: the address, or an IPv6 address's /64."""
    if ":" not in address:
        return address
    try:
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    except ValueError:
        return address


def credential_key(req: falcon.asgi.Request) -> bytes | None:
    """A digest of the bearer token presented, or None when there is none."""
    token = presented_bearer(req)
    return None if token is None else hashlib.sha256(token.encode()).digest()


def _refuse_if_empty(buckets: TokenBuckets, key: Hashable, limit: str, message: str) -> None:
    wait = buckets.take(key)
    if wait > 0:
        raise RateLimited(message, retry_after=max(1, math.ceil(wait)), limit=limit)


class RateLimits:
    """The three token-bucket limits, decided on the matched resource's operation."""

    def __init__(
        self, config: Config, mounts: Mounts, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.mounts = mounts
        self.trust_proxy = config.trust_proxy
        self.proxy_header = config.proxy_header
        self.by_address = _limit(config.rate_limit_per_minute, clock)
        self.by_credential = _limit(config.credential_rate_limit_per_minute, clock)
        self.logins = _limit(config.login_rate_limit_per_minute, clock)

    @property
    def active(self) -> bool:
        return any(b is not None for b in (self.by_address, self.by_credential, self.logins))

    async def process_resource(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: Any, params: dict
    ) -> None:
        if resource is None:
            return
        operation = self.mounts.operation(resource, req.method)
        limit = operation.rate_limit if operation is not None else RateLimit.DEFAULT
        if limit is not RateLimit.NONE:
            self._count(req, limit)

    async def process_resource_ws(
        self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket, resource: Any, params: dict
    ) -> None:
        """Opening a WebSocket counts as one request, on the same limits, a public one too
        (a customer's chat widget is no provider burst)."""
        if resource is not None:
            self._count(req, RateLimit.DEFAULT)

    def _count(self, req: falcon.asgi.Request, limit: RateLimit) -> None:
        address = address_key(client_address(req, self.trust_proxy, self.proxy_header))
        if self.by_address is not None:
            _refuse_if_empty(
                self.by_address, address, "address", "too many requests from this address"
            )
        # A CORS preflight carries no password to guess; only the attempt itself counts.
        if self.logins is not None and req.method != "OPTIONS" and limit is RateLimit.STRICT:
            _refuse_if_empty(
                self.logins, address, "login", "too many login attempts from this address"
            )
        if self.by_credential is not None:
            key = credential_key(req)
            if key is not None:
                _refuse_if_empty(
                    self.by_credential, key, "credential", "too many requests with this credential"
                )


def _origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, as browsers write it in ``Origin``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class SecurityHeaders:
    """The headers of the route's policy on every response (the agents' API policy when no
    route matched); HSTS only on responses sent over HTTPS."""

    def __init__(self, trust_proxy: int, mounts: Mounts) -> None:
        self.trust_proxy = trust_proxy
        self.mounts = mounts

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: Any,
        req_succeeded: bool,
    ) -> None:
        policy = self.mounts.policy(resource)
        resp.set_headers(dict(policy.headers))
        # API answers are per caller: no shared or browser cache may keep them, unless the
        # route chose its own caching.
        no_store = policy.no_store
        if no_store is None:
            no_store = req.path == "/api" or req.path.startswith("/api/")
        if no_store and not resp.get_header("Cache-Control"):
            resp.set_header("Cache-Control", "no-store")
        scheme = req.forwarded_scheme if self.trust_proxy else req.scheme
        if scheme.lower() == "https":
            resp.set_header("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)


class Cors:
    """CORS for the origins the route's policy lists only; any other origin gets no CORS
    header, so browsers keep its pages from reading the answers.

    No ``Access-Control-Allow-Credentials``: callers send a bearer token, not cookies. A
    preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from a listed origin is
    answered here, 204, before authentication, since browsers send it without credentials.
    Falcon's ``CORSMiddleware`` is not used: it allows whatever headers the preflight asks
    for and sends no ``Vary: Origin``.

    A browser opens a WebSocket to any site without asking CORS, and tells the page's
    origin in ``Origin``. On a route whose policy lists origins, a handshake whose
    ``Origin`` is neither one of them nor the server's own (the ``Host`` it was sent to, or
    ``OMNICHANNEL_PUBLIC_URL``) is refused before the route runs or authentication is
    asked (closed with 3403 and the reason), so that no site but those listed can open
    the socket from its visitors' browsers. A handshake without ``Origin`` is let through:
    only programs send none, and they could send any; the route authenticates them as
    any caller. A route whose policy lists no origin takes any, as over HTTP.
    """

    def __init__(self, mounts: Mounts, public_url: str | None = None) -> None:
        self.mounts = mounts
        self.public_origin = _origin_of(public_url) if public_url else None

    async def process_resource(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: Any, params: dict
    ) -> None:
        if (
            req.method == "OPTIONS"
            and req.get_header("Access-Control-Request-Method")
            and req.get_header("Origin") in self.mounts.origins(resource)
        ):
            cors = self.mounts.policy(resource).cors
            resp.status = 204
            resp.set_header("Access-Control-Allow-Methods", cors.methods)
            resp.set_header("Access-Control-Allow-Headers", cors.allow_headers)
            resp.set_header("Access-Control-Max-Age", str(cors.max_age_seconds))
            resp.complete = True
        elif resource is not None and self.mounts.policy(resource).cors.refuse_others:
            self._check_origin(req, resource, "call this route")

    async def process_resource_ws(
        self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket, resource: Any, params: dict
    ) -> None:
        if resource is not None:
            self._check_origin(req, resource, "open this WebSocket")

    def _check_origin(self, req: falcon.asgi.Request, resource: Any, doing: str) -> None:
        """Forbidden when a browser sends the request from an origin the route's policy
        does not list (none listed: any origin may, unless the policy refuses others)."""
        allowed = self.mounts.origins(resource)
        origin = req.get_header("Origin")
        if origin is None or not (allowed or self.mounts.policy(resource).cors.refuse_others):
            return
        origin = origin.rstrip("/").lower()
        if origin in allowed or self._own(origin, req):
            return
        raise Forbidden(f"origin {origin[:64]} may not {doing}")

    def _own(self, origin: str, req: falcon.asgi.Request) -> bool:
        """Whether ``origin`` is the server's own: its public URL's, or the host the
        handshake was sent to (a page the server served itself needs no CORS)."""
        if origin == self.public_origin:
            return True
        host = req.get_header("Host")
        return host is not None and urlsplit(origin).netloc == host.lower()

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: Any,
        req_succeeded: bool,
    ) -> None:
        resp.append_header("Vary", "Origin")
        origin = req.get_header("Origin")
        if origin is not None and origin in self.mounts.origins(resource):
            cors = self.mounts.policy(resource).cors
            resp.set_header("Access-Control-Allow-Origin", origin)
            resp.set_header("Access-Control-Expose-Headers", cors.expose_headers)


def protection_middleware(
    config: Config, mounts: Mounts
) -> list[SecurityHeaders | RateLimits | Cors]:
    """The middleware objects, in order, that protect every route: security headers, then the
    rate limits (so a CORS preflight is counted too), then CORS. A limit set to 0 adds
    nothing."""
    middleware: list[SecurityHeaders | RateLimits | Cors] = [
        SecurityHeaders(config.trust_proxy, mounts)
    ]
    limits = RateLimits(config, mounts)
    if limits.active:
        middleware.append(limits)
    middleware.append(Cors(mounts, config.public_url))
    return middleware

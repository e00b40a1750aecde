"""Rate limits, security headers and CORS: the token buckets on their own with an injected
clock, the middleware in-process on small apps, and the real server end to end."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import falcon
import falcon.asgi
import httpx
import pytest
from falcon import testing

from omnichannel_core.config import Config
from omnichannel_core.routes import Operation, RateLimit, Response, Route
from omnichannel_core.testing.server import API_KEY, ServerProcess, running_server
from omnichannel_core.web.errors import install_error_handlers
from omnichannel_core.web.mounting import Mounts
from omnichannel_core.web.protection import (
    Cors,
    RateLimits,
    SecurityHeaders,
    TokenBuckets,
    address_key,
    protection_middleware,
)
from tests.conftest import WEBHOOK_SECRET
from tests.support.signing import inbound_message, post_status, post_webhook, unique
from tests.support.users import PASSWORD, create_user

ORIGIN = "https://app.example.com"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
CORS_HEADERS = (
    "Access-Control-Allow-Origin",
    "Access-Control-Expose-Headers",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Allow-Credentials",
)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# token buckets ---------------------------------------------------------------------------


def test_bucket_allows_a_burst_of_its_capacity_then_refuses():
    """A new key may spend the whole per-minute figure at once; the next take is refused
    with the wait until one token has refilled (60 s / figure)."""
    clock = Clock()
    buckets = TokenBuckets(6, clock)
    assert [buckets.take("a") for _ in range(6)] == [0] * 6
    assert buckets.take("a") == pytest.approx(10.0)


def test_bucket_refills_continuously():
    """Tokens come back a fraction at a time: 4 s after running dry (of 10 s per token) the
    wait is 6 s; after 10 s one request is allowed, and only one."""
    clock = Clock()
    buckets = TokenBuckets(6, clock)
    for _ in range(6):
        buckets.take("a")
    clock.advance(4)
    assert buckets.take("a") == pytest.approx(6.0)
    clock.advance(6)
    assert buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(10.0)


def test_refused_takes_spend_nothing():
    """Being refused does not push the wait further out: hammering a dry bucket costs the
    client nothing more than waiting."""
    clock = Clock()
    buckets = TokenBuckets(6, clock)
    for _ in range(6):
        buckets.take("a")
    for _ in range(50):
        buckets.take("a")
    clock.advance(10)
    assert buckets.take("a") == 0


def test_idle_bucket_holds_at_most_its_capacity():
    """An hour of idling banks one minute's figure, not sixty."""
    clock = Clock()
    buckets = TokenBuckets(3, clock)
    buckets.take("a")
    clock.advance(3600)
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") > 0


def test_keys_have_their_own_buckets():
    """One key running dry leaves the others full."""
    buckets = TokenBuckets(1, Clock())
    assert buckets.take("a") == 0
    assert buckets.take("a") > 0
    assert buckets.take("b") == 0


def test_least_recently_used_buckets_are_forgotten_beyond_the_cap():
    """Memory is bounded: past ``max_keys`` the idlest key is dropped (and starts full if it
    comes back); a key used recently is kept."""
    clock = Clock()
    buckets = TokenBuckets(1, clock, max_keys=2)
    buckets.take("a")
    buckets.take("b")
    buckets.take("a")  # refused, but "a" is now the most recently used
    buckets.take("c")  # "b" is the idlest: forgotten
    assert len(buckets) == 2
    assert "b" not in buckets
    assert "a" in buckets
    assert buckets.take("a") > 0  # still dry: it was kept
    assert buckets.take("b") == 0  # forgotten, so full again


def test_ipv6_clients_are_counted_by_their_64():
    """Addresses in one IPv6 /64 share a bucket; IPv4 addresses are counted one by one."""
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("192.0.2.1") == "192.0.2.1"


# the middleware, in-process ----------------------------------------------------------------


OK = {200: Response(None, "ok")}


class Things:
    """An ordinary authenticated route."""

    operations = {"GET": Operation("Things", permission="contacts:read", responses=OK)}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"ok": True}


class Health:
    """A public route outside /api/."""

    operations = {"GET": Operation("Health", public=True, responses=OK)}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"ok": True}


class Login:
    """Stands in for the login and refresh routes: public POST, strict limit."""

    operations = {
        "POST": Operation("Login", public=True, rate_limit=RateLimit.STRICT, responses=OK)
    }

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"ok": True}


class Webhook:
    """Stands in for a channel's webhook: POST is public and never limited, GET is not."""

    channel = "demo"
    operations = {
        "POST": Operation("Webhook", public=True, rate_limit=RateLimit.NONE, responses=OK),
        "GET": Operation("Read", permission="channels:read", responses=OK),
    }

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"ok": True}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"ok": True}


class PublicWithoutChannel:
    """Public, like a webhook, but limited (``UnknownChannel`` is one)."""

    operations = {"POST": Operation("Public", public=True, responses=OK)}

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, name: str
    ) -> None:
        resp.media = {"ok": True}


class Cached:
    """An API route that chooses its own caching."""

    operations = {"GET": Operation("Cached", permission="contacts:read", responses=OK)}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.cache_control = ["public", "max-age=60"]
        resp.media = {"ok": True}


def limits_config(address: int = 0, credential: int = 0, login: int = 0, **settings) -> Config:
    return Config(
        rate_limit_per_minute=address,
        credential_rate_limit_per_minute=credential,
        login_rate_limit_per_minute=login,
        **settings,
    )


ROUTES = {
    "/api/things": Things,
    "/api/auth/login": Login,
    "/api/channels/demo/webhook": Webhook,
    "/api/channels/{name}": PublicWithoutChannel,
    "/api/cached": Cached,
    "/health": Health,
}


def app_client(config: Config, middleware: Callable[[Mounts], list[object]]) -> testing.TestClient:
    """A small app with the middleware ``middleware`` makes, the project's error handlers
    and the stand-in resources, mounted as the core mounts routes."""
    mounts = Mounts(config)
    app = falcon.asgi.App(middleware=middleware(mounts))
    install_error_handlers(app)
    for path, resource in ROUTES.items():
        mounts.mount(app, "test", Route(path, resource()))
    return testing.TestClient(app)


def protected(config: Config) -> testing.TestClient:
    return app_client(config, lambda mounts: protection_middleware(config, mounts))


def limited(config: Config, clock: Clock | None = None) -> testing.TestClient:
    return app_client(
        config,
        lambda mounts: [
            SecurityHeaders(False, mounts),
            RateLimits(config, mounts, clock or Clock()),
        ],
    )


def test_login_limit_answers_429_naming_it_with_the_exact_retry_after():
    """On a route with ``strict_rate_limit``, the login limit (3 a minute) refuses the 4th
    attempt with 429, a JSON body naming the login limit and ``Retry-After`` of the seconds
    until a token is back (20); after those seconds an attempt is allowed again."""
    clock = Clock()
    client = limited(limits_config(login=3), clock)
    for _ in range(3):
        assert client.simulate_post("/api/auth/login").status_code == 200
    refused = client.simulate_post("/api/auth/login")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "20"
    assert refused.json["error"] == "too_many_requests"
    assert refused.json["limit"] == "login"
    assert "login" in refused.json["message"]
    assert refused.json["retry_after"] == 20
    clock.advance(20)
    assert client.simulate_post("/api/auth/login").status_code == 200


def test_login_limit_is_per_address_and_only_on_strict_routes():
    """A client out of login attempts can still use other routes, and another address can
    still log in."""
    client = limited(limits_config(login=1))
    assert client.simulate_post("/api/auth/login", remote_addr="192.0.2.1").status_code == 200
    assert client.simulate_post("/api/auth/login", remote_addr="192.0.2.1").status_code == 429
    assert client.simulate_get("/api/things", remote_addr="192.0.2.1").status_code == 200
    assert client.simulate_post("/api/auth/login", remote_addr="192.0.2.2").status_code == 200


def test_login_limit_adds_to_the_address_limit():
    """A login attempt spends from the address limit too: a generous login limit does not
    lift the address limit."""
    client = limited(limits_config(address=2, login=100))
    assert client.simulate_post("/api/auth/login").status_code == 200
    assert client.simulate_get("/api/things").status_code == 200
    refused = client.simulate_post("/api/auth/login")
    assert refused.status_code == 429
    assert refused.json["limit"] == "address"


def test_preflight_does_not_spend_login_attempts():
    """A CORS preflight of the login route carries no password: it spends no login token."""
    client = limited(limits_config(login=1))
    for _ in range(3):
        client.simulate_options("/api/auth/login")
    assert client.simulate_post("/api/auth/login").status_code == 200


def test_address_limit_counts_ipv6_clients_by_their_64():
    """Two addresses of one IPv6 /64 share the address limit; another /64 does not."""
    client = limited(limits_config(address=1))
    assert client.simulate_get("/api/things", remote_addr="2001:db8:0:1::a").status_code == 200
    assert client.simulate_get("/api/things", remote_addr="2001:db8:0:1::b").status_code == 429
    assert client.simulate_get("/api/things", remote_addr="2001:db8:0:2::a").status_code == 200


def test_address_limit_reads_forwarded_headers_only_when_the_proxy_is_trusted():
    """Behind a trusted proxy each forwarded client has its own bucket; untrusted, a client
    cannot dodge the limit by sending X-Forwarded-For."""
    trusted = limited(limits_config(address=1, trust_proxy=True))
    for n in range(3):
        headers = {"X-Forwarded-For": f"203.0.113.{n}"}
        assert trusted.simulate_get("/api/things", headers=headers).status_code == 200
    untrusted = limited(limits_config(address=1))
    statuses = [
        untrusted.simulate_get("/api/things", headers={"X-Forwarded-For": f"203.0.113.{n}"})
        for n in range(3)
    ]
    assert [r.status_code for r in statuses] == [200, 429, 429]


def test_unmatched_routes_are_not_counted():
    """Requests no route matches (404) spend nothing."""
    client = limited(limits_config(address=1, credential=1))
    auth = {"Authorization": "Bearer some-token"}
    for _ in range(5):
        assert client.simulate_get("/no/such/route", headers=auth).status_code == 404
    assert client.simulate_get("/api/things", headers=auth).status_code == 200


def test_channel_webhooks_are_never_counted_other_methods_are():
    """A channel resource's public methods (the provider's webhook) are exempt from every
    limit; a method it does not list as public is counted, and so is a public route that
    belongs to no channel."""
    client = limited(limits_config(address=1, credential=1, login=1))
    auth = {"Authorization": "Bearer some-token"}
    for _ in range(10):
        response = client.simulate_post("/api/channels/demo/webhook", headers=auth)
        assert response.status_code == 200
    assert client.simulate_get("/api/channels/demo/webhook").status_code == 200
    assert client.simulate_get("/api/channels/demo/webhook").status_code == 429
    other = limited(limits_config(address=1))
    assert other.simulate_post("/api/channels/nosuch").status_code == 200
    assert other.simulate_post("/api/channels/nosuch").status_code == 429


def test_credential_limit_keys_by_a_digest_of_the_token():
    """The credential limit counts per bearer token, keeping only its SHA-256 digest, never
    the token; requests without a bearer token are not counted by it."""
    config = limits_config(credential=1)
    made: list[RateLimits] = []

    def build(mounts: Mounts) -> list[object]:
        made.append(RateLimits(config, mounts, Clock()))
        return list(made)

    client = app_client(config, build)
    (limits,) = made
    token = "secret-token-0123456789"
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.simulate_get("/api/things", headers=bearer).status_code == 200
    assert hashlib.sha256(token.encode()).digest() in limits.by_credential
    assert token not in limits.by_credential
    assert len(limits.by_credential) == 1
    for _ in range(3):
        assert client.simulate_get("/api/things").status_code == 200
        basic = {"Authorization": "Basic dXNlcjpwYXNz"}
        assert client.simulate_get("/api/things", headers=basic).status_code == 200
    refused = client.simulate_get("/api/things", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 429
    assert refused.json["limit"] == "credential"
    assert token not in refused.text


def test_security_headers_and_no_store_on_api_responses():
    """Every response has the security headers; /api/ responses also Cache-Control: no-store
    unless the route set its own caching; other paths keep theirs."""
    client = protected(limits_config())
    for path in ("/api/things", "/health", "/no/such/route"):
        response = client.simulate_get(path)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, (path, name)
    assert client.simulate_get("/api/things").headers["Cache-Control"] == "no-store"
    assert client.simulate_get("/api/nothing-here").headers["Cache-Control"] == "no-store"
    assert "Cache-Control" not in client.simulate_get("/health").headers
    assert client.simulate_get("/api/cached").headers["Cache-Control"] == "public, max-age=60"


def test_hsts_only_over_https():
    """Strict-Transport-Security is sent on HTTPS requests only; a forwarded https scheme
    counts only when the proxy is trusted."""
    forwarded = {"X-Forwarded-Proto": "https"}
    untrusted = protected(limits_config())
    assert "Strict-Transport-Security" not in untrusted.simulate_get("/health").headers
    hsts = untrusted.simulate_get("/health", protocol="https").headers
    assert hsts["Strict-Transport-Security"] == "max-age=31536000"
    spoofed = untrusted.simulate_get("/health", headers=forwarded)
    assert "Strict-Transport-Security" not in spoofed.headers
    trusted = protected(limits_config(trust_proxy=True))
    assert "Strict-Transport-Security" in trusted.simulate_get("/health", headers=forwarded).headers
    assert "Strict-Transport-Security" not in trusted.simulate_get("/health").headers


def test_only_what_is_configured_is_installed():
    """Limits of 0 leave the security headers and CORS (each route's own origins); a limit
    adds the rate limits; the defaults turn them on."""
    mounts = Mounts(Config())
    installed = protection_middleware(limits_config(), mounts)
    assert [type(m) for m in installed] == [SecurityHeaders, Cors]
    defaults = protection_middleware(Config(), mounts)
    assert [type(m) for m in defaults] == [SecurityHeaders, RateLimits, Cors]


def test_no_cors_headers_when_no_origin_is_configured():
    """With OMNICHANNEL_CORS_ORIGINS empty (the default) no response carries CORS headers,
    whatever the Origin."""
    client = protected(Config())
    response = client.simulate_get("/api/things", headers={"Origin": ORIGIN})
    assert not any(name in response.headers for name in CORS_HEADERS)


# the real server ---------------------------------------------------------------------------


def assert_security_headers(response: httpx.Response, api: bool = True) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert "Strict-Transport-Security" not in response.headers  # plain http on loopback
    if api:
        assert response.headers["Cache-Control"] == "no-store"


def assert_too_many_requests(response: httpx.Response, limit: str) -> None:
    assert response.status_code == 429
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    body = response.json()
    assert body["error"] == "too_many_requests"
    assert body["limit"] == limit
    assert limit in body["message"]
    assert body["retry_after"] == retry_after
    assert_security_headers(response)


# uvicorn (through gunicorn's forwarded_allow_ips) itself takes the client from
# X-Forwarded-For when the peer is one of FORWARDED_ALLOW_IPS, loopback by default; the
# address tests make loopback an untrusted peer, so what they see is OMNICHANNEL_TRUST_PROXY.
UVICORN_TRUSTS_NO_LOOPBACK = {"FORWARDED_ALLOW_IPS": "192.0.2.1"}


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real server with one CORS origin and no rate limits."""
    env = {"OMNICHANNEL_CORS_ORIGINS": ORIGIN}
    with running_server(tmp_path_factory.mktemp("cors"), env) as server:
        yield server


def test_server_address_limit_answers_429(tmp_path):
    """Over the address limit (5 a minute) the server answers 429 with Retry-After and a
    JSON body naming the address limit; another client address is unaffected."""
    env = {
        "OMNICHANNEL_RATE_LIMIT": "5",
        "OMNICHANNEL_TRUST_PROXY": "true",
        **UVICORN_TRUSTS_NO_LOOPBACK,
    }
    with running_server(tmp_path, env) as server, server.client() as client:
        first = {"X-Forwarded-For": "203.0.113.7"}
        statuses = [client.get("/api/plugins", headers=first).status_code for _ in range(5)]
        assert statuses == [200] * 5
        refused = client.get("/api/plugins", headers=first)
        assert_too_many_requests(refused, "address")
        assert refused.headers["Retry-After"] in {str(n) for n in range(1, 13)}  # 60 s / 5
        second = {"X-Forwarded-For": "198.51.100.4"}
        assert client.get("/api/plugins", headers=second).status_code == 200


def test_server_address_limit_ignores_untrusted_forwarded_for(tmp_path):
    """Without OMNICHANNEL_TRUST_PROXY, a new X-Forwarded-For on each request does not buy a
    new bucket: the connection's address is throttled."""
    env = {"OMNICHANNEL_RATE_LIMIT": "5", **UVICORN_TRUSTS_NO_LOOPBACK}
    with running_server(tmp_path, env) as server, server.client() as client:
        responses = [
            client.get("/api/plugins", headers={"X-Forwarded-For": f"203.0.113.{n}"})
            for n in range(7)
        ]
    statuses = [r.status_code for r in responses]
    assert 429 in statuses
    first_refused = statuses.index(429)
    assert set(statuses[:first_refused]) == {200}
    assert_too_many_requests(responses[first_refused], "address")


def test_server_credential_limit_answers_429(tmp_path):
    """Over the credential limit (5 a minute) a key is refused with 429 naming the credential
    limit, while another token from the same address has its own bucket (and is refused as
    unauthenticated, not throttled)."""
    with running_server(tmp_path, {"OMNICHANNEL_CREDENTIAL_RATE_LIMIT": "5"}) as server:
        with server.client() as client:
            statuses = [client.get("/api/plugins").status_code for _ in range(5)]
            assert statuses == [200] * 5
            refused = client.get("/api/plugins")
        assert_too_many_requests(refused, "credential")
        assert API_KEY not in refused.text
        with server.client(api_key="another-token-0123456789") as other:
            assert other.get("/api/plugins").status_code == 401
        with server.client(api_key=None) as anonymous:
            assert anonymous.get("/api/plugins").status_code == 401


def test_server_never_limits_channel_webhooks(tmp_path):
    """Signed webhooks and status callbacks of the built-in http channel pass however many
    arrive, from one address with a key attached, while the API routes from that address
    are throttled."""
    env = {
        "OMNICHANNEL_RATE_LIMIT": "2",
        "OMNICHANNEL_CREDENTIAL_RATE_LIMIT": "2",
        "OMNICHANNEL_LOGIN_RATE_LIMIT": "1",
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    with running_server(tmp_path, env) as server, server.client() as client:
        sender = unique("+1555")
        for _ in range(20):
            assert post_webhook(client, inbound_message(sender)).status_code == 200
        for _ in range(20):
            status = {"id": unique("out"), "status": "delivered"}
            assert post_status(client, status).status_code == 200
        statuses = [client.get("/api/plugins").status_code for _ in range(3)]
    assert 429 in statuses


def test_server_sends_security_headers_on_200_404_401(cors_server):
    """Success, unknown route and missing credentials all carry the security headers, and
    Cache-Control: no-store under /api/; no HSTS over plain http."""
    with cors_server.client() as client:
        ok = client.get("/api/plugins")
        missing = client.get("/api/no-such-route")
        unknown_channel = client.get("/api/channels/nosuch/webhook")
        health = client.get("/health")
    with cors_server.client(api_key=None) as anonymous:
        unauthenticated = anonymous.get("/api/contacts")
    assert (ok.status_code, missing.status_code, unauthenticated.status_code) == (200, 404, 401)
    for response in (ok, missing, unknown_channel, unauthenticated):
        assert_security_headers(response)
    assert_security_headers(health, api=False)


def test_server_cors_allows_the_configured_origin(cors_server):
    """A listed origin gets Access-Control-Allow-Origin (itself), the exposed headers and
    Vary: Origin, on success and on errors alike; never Allow-Credentials."""
    with cors_server.client() as client:
        ok = client.get("/api/plugins", headers={"Origin": ORIGIN})
    with cors_server.client(api_key=None) as anonymous:
        unauthenticated = anonymous.get("/api/contacts", headers={"Origin": ORIGIN})
    assert unauthenticated.status_code == 401
    for response in (ok, unauthenticated):
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
        assert exposed == {"X-Request-ID", "Retry-After", "Preference-Applied"}
        assert "Origin" in response.headers["Vary"]
        assert "Access-Control-Allow-Credentials" not in response.headers


def test_server_cors_ignores_other_origins(cors_server):
    """An origin not in the list gets no CORS header at all, though the answer is the same."""
    with cors_server.client() as client:
        response = client.get("/api/plugins", headers={"Origin": "https://evil.example.net"})
    assert response.status_code == 200
    assert not any(name in response.headers for name in CORS_HEADERS)


def test_server_answers_preflight_without_credentials(cors_server):
    """A preflight from a listed origin, with no Authorization, is answered 204 with the
    allowed methods and exactly the allowed request headers."""
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }
    with cors_server.client(api_key=None) as anonymous:
        response = anonymous.options("/api/conversations", headers=preflight)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PATCH", "DELETE"} <= methods
    allowed = {h.strip() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert allowed == {"Authorization", "Content-Type", "Idempotency-Key", "Prefer", "X-Request-ID"}
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_server_preflight_from_other_origin_gets_no_cors_headers(cors_server):
    """A preflight from an origin not in the list gets no CORS header, so the browser stops
    there."""
    preflight = {"Origin": "https://evil.example.net", "Access-Control-Request-Method": "POST"}
    with cors_server.client(api_key=None) as anonymous:
        response = anonymous.options("/api/conversations", headers=preflight)
    assert not any(name in response.headers for name in CORS_HEADERS)


def test_server_login_limit_answers_429_before_the_password_is_checked(tmp_path):
    """With OMNICHANNEL_LOGIN_RATE_LIMIT=3, the 4th login attempt from one address within a
    minute answers 429 naming the login limit, even with the right password."""
    env = {"OMNICHANNEL_LOGIN_RATE_LIMIT": "3", "OMNICHANNEL_LOGIN_LOCKOUT_FAILURES": "100"}
    with running_server(tmp_path, env) as server, server.client() as admin:
        user = create_user(admin, "agent")
        with server.client(api_key=None) as anonymous:
            for _ in range(3):
                attempt = anonymous.post(
                    "/api/auth/login", json={"email": user["email"], "password": "wrong" * 3}
                )
                assert attempt.status_code == 401
            limited = anonymous.post(
                "/api/auth/login", json={"email": user["email"], "password": PASSWORD}
            )
    assert limited.status_code == 429
    assert limited.json()["limit"] == "login"
    assert int(limited.headers["Retry-After"]) >= 1

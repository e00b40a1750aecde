"""A channel route browsers call carries its own ``policy`` (``ChannelRoute.policy``): its
CORS origins, from the channel's own setting, and its own security headers, while the
agents' API and the routes the core serves for every channel keep theirs; its public
methods are rate limited per address, as a module's public route's, while a provider's
callback (a public route with no policy) is still never counted. A WebSocket on a route
whose policy lists origins is refused (3403) when a browser opens it from another site's
page, before the route runs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from falcon import testing
from falcon.errors import WebSocketDisconnected

from omnichannel_core import hookimpl
from omnichannel_core.channel import (
    SECURITY_HEADERS,
    ChannelRoute,
    CorsPolicy,
    Operation,
    OriginsSetting,
    RateLimit,
    Response,
    RoutePolicy,
)
from omnichannel_core.setting_values import StoredSettings
from omnichannel_core.testing import AUTH, run_app
from omnichannel_core.testing.server import ServerProcess, running_server
from tests.fixtures.distributions import install_distributions

SHOP = "https://shop.example.com"
AGENT_APP = "https://app.example.com"
EVIL = "https://evil.example.net"
SCRIPT_HEADERS = {**SECURITY_HEADERS, "Cross-Origin-Resource-Policy": "cross-origin"}
VISITOR_POLICY = RoutePolicy(
    cors=CorsPolicy(
        origins=OriginsSetting("PROBE_ALLOWED_ORIGINS"),
        methods="GET, POST",
        allow_headers="Content-Type",
    )
)


class Hello:
    """A visitor API: undeclared, so served with a generic operation."""

    async def on_get(self, req: Any, resp: Any) -> None:
        resp.media = {"hello": "visitor"}

    async def on_post(self, req: Any, resp: Any) -> None:
        resp.media = {"posted": True}


class Declared:
    """A visitor API whose GET declares its operation (and so its rate limit)."""

    operations = {
        "GET": Operation("Say hello", responses={200: Response(description="OK")}),
    }

    async def on_get(self, req: Any, resp: Any) -> None:
        resp.media = {"hello": "declared"}


class Widget:
    """A script other sites load with ``<script src>``, cached a little."""

    async def on_get(self, req: Any, resp: Any) -> None:
        resp.content_type = "text/javascript; charset=utf-8"
        resp.set_header("Cache-Control", "public, max-age=300")
        resp.text = "console.log('widget');"


class Callback:
    """A provider's callback: public, no policy."""

    async def on_get(self, req: Any, resp: Any) -> None:
        resp.media = {"verified": True}


def routes_channel(*routes: ChannelRoute) -> object:
    class Channel:
        @hookimpl
        def channel_routes(self) -> list[ChannelRoute]:
            return list(routes)

    return Channel()


def visitor_channel() -> object:
    return routes_channel(
        ChannelRoute("visitor/hello", Hello(), public=True, policy=VISITOR_POLICY),
        ChannelRoute("visitor/declared", Declared(), public=True, policy=VISITOR_POLICY),
        ChannelRoute("widget.js", Widget(), public=True, policy=RoutePolicy(SCRIPT_HEADERS)),
        ChannelRoute("verify", Callback(), public=True),
    )


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type",
    }


def test_a_channel_route_answers_the_origins_of_its_policy_and_the_agent_api_does_not(tmp_path):
    """The shop's origin (the channel's setting) gets a preflight and an answer with its CORS
    on the channel's visitor route; the same origin gets no CORS on /api/conversations nor on
    the channel's webhook, which keep the agents' policy; the agents' app gets CORS on the
    agents' API but not on the visitor route."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        path = "/api/channels/probe/visitor/hello"
        allowed = await conductor.simulate_options(path, headers=preflight(SHOP))
        assert allowed.status_code == 204
        assert allowed.headers["Access-Control-Allow-Origin"] == SHOP
        assert allowed.headers["Access-Control-Allow-Methods"] == "GET, POST"
        assert allowed.headers["Access-Control-Allow-Headers"] == "Content-Type"
        answered = await conductor.simulate_post(path, headers={"Origin": SHOP}, json={})
        assert answered.json == {"posted": True}
        assert answered.headers["Access-Control-Allow-Origin"] == SHOP
        assert "Origin" in answered.headers["Vary"]
        assert "Access-Control-Allow-Credentials" not in answered.headers

        foreign = await conductor.simulate_get(path, headers={"Origin": EVIL})
        assert foreign.status_code == 200
        assert "Access-Control-Allow-Origin" not in foreign.headers
        agents_on_visitor = await conductor.simulate_options(path, headers=preflight(AGENT_APP))
        assert "Access-Control-Allow-Origin" not in agents_on_visitor.headers

        for agent_path in ("/api/conversations", "/api/channels/probe/webhook"):
            closed = await conductor.simulate_options(agent_path, headers=preflight(SHOP))
            assert "Access-Control-Allow-Origin" not in closed.headers, agent_path
        from_shop = await conductor.simulate_get(
            "/api/conversations", headers={**AUTH, "Origin": SHOP}
        )
        assert from_shop.status_code == 200
        assert "Access-Control-Allow-Origin" not in from_shop.headers
        from_agents = await conductor.simulate_get(
            "/api/conversations", headers={**AUTH, "Origin": AGENT_APP}
        )
        assert from_agents.headers["Access-Control-Allow-Origin"] == AGENT_APP

    run_app(
        tmp_path,
        {"probe": visitor_channel()},
        scenario,
        environ={"PROBE_ALLOWED_ORIGINS": f"{SHOP}/"},
        cors_origins=(AGENT_APP,),
    )


def test_a_channel_route_has_the_security_headers_of_its_policy(tmp_path):
    """A script served to other sites carries its policy's headers (here
    Cross-Origin-Resource-Policy: cross-origin beside nosniff, which its JavaScript content
    type satisfies) and keeps its own caching; the agents' API and a channel route without
    a policy carry the API's headers, without that one."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        script = await conductor.simulate_get("/api/channels/probe/widget.js")
        assert script.status_code == 200
        assert script.headers["Content-Type"].startswith("text/javascript")
        for name, value in SCRIPT_HEADERS.items():
            assert script.headers[name] == value
        assert script.headers["Cache-Control"] == "public, max-age=300"

        for path in ("/api/conversations", "/api/channels/probe/verify"):
            answer = await conductor.simulate_get(path, headers=AUTH)
            assert "Cross-Origin-Resource-Policy" not in answer.headers, path
            assert answer.headers["X-Frame-Options"] == "DENY"
            assert answer.headers["Cache-Control"] == "no-store"

    run_app(tmp_path, {"probe": visitor_channel()}, scenario)


def test_public_channel_routes_with_a_policy_are_rate_limited_per_address(tmp_path):
    """With three requests a minute per address, a public route with a policy, declared or
    not, answers 429 naming the address limit once its budget is spent; a provider's
    callback (public, no policy) is never counted."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        for path in ("/api/channels/probe/verify",) * 10:
            assert (await conductor.simulate_get(path)).status_code == 200
        visitor = ("/api/channels/probe/visitor/hello", "/api/channels/probe/visitor/declared")
        statuses = [(await conductor.simulate_get(path)).status_code for path in visitor * 2]
        assert statuses == [200, 200, 200, 429]
        refused = await conductor.simulate_get("/api/channels/probe/visitor/hello")
        assert refused.status_code == 429
        assert refused.json["limit"] == "address"
        assert int(refused.headers["Retry-After"]) >= 1
        assert (await conductor.simulate_get("/api/channels/probe/verify")).status_code == 200

    run_app(tmp_path, {"probe": visitor_channel()}, scenario, rate_limit_per_minute=3)


def test_a_declared_operation_keeps_the_rate_limit_it_states():
    """On a route with a policy an operation left at DEFAULT is counted and one saying NONE
    or STRICT keeps it; without a policy a public DEFAULT becomes NONE, as before."""
    from omnichannel_core.modules.inbox.channel_operations import declared_operation

    def limit_of(policy: RoutePolicy | None, stated: RateLimit) -> RateLimit:
        route = ChannelRoute("x", Hello(), public=True, policy=policy)
        operation = Operation("x", rate_limit=stated)
        return declared_operation("probe", route, "GET", operation, documented=True).rate_limit

    assert limit_of(VISITOR_POLICY, RateLimit.DEFAULT) is RateLimit.DEFAULT
    assert limit_of(VISITOR_POLICY, RateLimit.NONE) is RateLimit.NONE
    assert limit_of(VISITOR_POLICY, RateLimit.STRICT) is RateLimit.STRICT
    assert limit_of(None, RateLimit.DEFAULT) is RateLimit.NONE


def failure_of(tmp_path: Path, channel: object, environ: dict[str, str] | None = None) -> str:
    """The load error ``/api/plugins`` reports for ``channel`` (as ``probe``), which then
    serves no route; the agents' API still serves."""
    found: list[str] = []

    async def scenario(conductor: testing.ASGIConductor) -> None:
        plugins = (await conductor.simulate_get("/api/plugins", headers=AUTH)).json
        found.extend(failure["error"] for failure in plugins["failed"])
        missing = await conductor.simulate_get("/api/channels/probe/visitor", headers=AUTH)
        assert missing.status_code == 404
        assert (await conductor.simulate_get("/api/conversations", headers=AUTH)).status_code == 200

    run_app(tmp_path, {"probe": channel}, scenario, environ=environ)
    [error] = found
    return error


@pytest.mark.parametrize("path", ["webhook", "status", "messages", "health"])
def test_a_policy_on_a_path_the_core_serves_for_every_channel_is_refused(tmp_path, path):
    """A provider's webhook (and the other generic paths) must not take a site's CORS: a
    channel adding a method there with a policy does not load, saying why."""
    channel = routes_channel(
        ChannelRoute("visitor", Hello(), public=True),
        ChannelRoute(path, Widget(), public=True, policy=VISITOR_POLICY),
    )
    error = failure_of(tmp_path, channel, {"PROBE_ALLOWED_ORIGINS": SHOP})
    assert f"route {path!r}" in error and "for every channel" in error


def test_a_channel_whose_origins_setting_is_wrong_does_not_load(tmp_path):
    """A wildcard (or anything but exact origins) in the channel's setting unloads the
    channel, naming the variable, rather than stopping the server."""
    channel = routes_channel(ChannelRoute("visitor", Hello(), public=True, policy=VISITOR_POLICY))
    error = failure_of(tmp_path, channel, {"PROBE_ALLOWED_ORIGINS": "https://*.example.com"})
    assert "PROBE_ALLOWED_ORIGINS" in error and "'*' is not allowed" in error


def test_a_policy_must_be_a_route_policy(tmp_path):
    """A policy of another type (a dict of headers, say) unloads the channel, saying so."""
    route = ChannelRoute("visitor", Hello(), public=True, policy={"X-A": "b"})  # type: ignore[arg-type]
    assert "must be a RoutePolicy, not dict" in failure_of(tmp_path, routes_channel(route))


def test_origins_setting_reads_exact_origins():
    """OriginsSetting parses its variable as OMNICHANNEL_CORS_ORIGINS is: comma-separated,
    lower-cased, no trailing slash; unset is none; a path is refused naming the variable."""
    from omnichannel_core.config import Config

    def read(value: str | None) -> tuple[str, ...]:
        environ = {} if value is None else {"SITES": value}
        return OriginsSetting("SITES")(Config(environ=environ))

    assert read(None) == ()
    assert read(" https://Shop.example.com/ , http://localhost:8080") == (
        "https://shop.example.com",
        "http://localhost:8080",
    )
    with pytest.raises(ValueError, match=r"^SITES: each origin must be"):
        read("https://shop.example.com/chat")
    assert OriginsSetting("SITES") == OriginsSetting("SITES")


# WebSockets, through the real server and a real WebSocket client -------------------------


@pytest.fixture(scope="module")
def socket_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real server with the pip-installed echo channel, whose ``visitor`` route takes
    the shop's origin, and the agents' app as OMNICHANNEL_CORS_ORIGINS."""
    site = install_distributions(tmp_path_factory.mktemp("site") / "packages", "echo")
    env = {
        "PYTHONPATH": str(site),
        "ECHO_TOKEN": "echo-token",
        "ECHO_ALLOWED_ORIGINS": SHOP,
        "OMNICHANNEL_CORS_ORIGINS": AGENT_APP,
    }
    with running_server(tmp_path_factory.mktemp("policy-sockets"), env) as process:
        yield process


def first_message(server: ServerProcess, path: str, origin: str | None) -> str:
    """What the server sends first on ``path`` opened from ``origin`` (no Origin header for
    None), or ``closed <code>: <reason>`` when it refuses."""

    async def talk() -> str:
        url = server.base_url.replace("http://", "ws://") + path
        try:
            async with websockets.connect(url, origin=origin) as socket:  # type: ignore[arg-type]
                return str(await socket.recv())
        except websockets.ConnectionClosed as closed:
            return f"closed {closed.rcvd.code}: {closed.rcvd.reason}" if closed.rcvd else "lost"

    return asyncio.run(talk())


def test_a_websocket_from_another_sites_page_is_refused(socket_server):
    """On the visitor route, a handshake from a foreign origin (the agents' app included)
    is closed with 3403 naming the origin, before the route runs; the server log holds no
    traceback for it."""
    path = "/api/channels/echo/visitor"
    for origin in (EVIL, AGENT_APP, "null"):
        refused = first_message(socket_server, path, origin)
        assert refused == f"closed 3403: origin {origin} may not open this WebSocket"
    log = socket_server.log_path.read_text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log


def test_a_websocket_from_an_allowed_origin_the_server_itself_or_a_program_is_accepted(
    socket_server,
):
    """The shop's pages (any case of its origin), the server's own pages (Origin is the host
    the handshake went to) and programs, which send no Origin, reach the route; the route
    still authenticates them itself."""
    path = "/api/channels/echo/visitor"
    own = socket_server.base_url
    for origin in (SHOP, SHOP.upper().replace("HTTPS", "https"), own, None):
        assert first_message(socket_server, path, origin) == "visitor", origin


def test_agent_routes_take_websockets_from_the_agents_origins(socket_server):
    """A route under the agents' policy lists OMNICHANNEL_CORS_ORIGINS when it is set: the
    agents' app may open its sockets, another site's page may not."""
    assert first_message(socket_server, "/api/channels/echo/open", AGENT_APP) == "anonymous"
    refused = first_message(socket_server, "/api/channels/echo/open", EVIL)
    assert refused == f"closed 3403: origin {EVIL} may not open this WebSocket"


SHOP_ONLY = RoutePolicy(cors=CorsPolicy(origins=lambda config: [SHOP]))


class Greeter:
    """A public WebSocket route: greets, then waits for the client to leave."""

    async def on_websocket(self, req: Any, ws: Any) -> None:
        await ws.accept()
        await ws.send_text("hi")
        await ws.receive_text()


def test_a_websocket_route_without_origins_takes_any_origin(tmp_path):
    """A route whose policy lists no origin (the agents' API with OMNICHANNEL_CORS_ORIGINS
    unset, or a channel route whose setting is empty) takes a handshake from any page, as
    before; one with origins refuses a foreign one."""
    channel = routes_channel(
        ChannelRoute("plain", Greeter(), public=True),
        ChannelRoute("empty", Greeter(), public=True, policy=VISITOR_POLICY),
        ChannelRoute("listed", Greeter(), public=True, policy=SHOP_ONLY),
    )

    async def scenario(conductor: testing.ASGIConductor) -> None:
        for path in ("/api/channels/probe/plain", "/api/channels/probe/empty"):
            async with conductor.simulate_ws(path, headers={"Origin": EVIL}) as ws:
                assert ws.close_code is None, (path, ws.close_code, ws.close_reason)
                assert await ws.receive_text() == "hi", path
        async with conductor.simulate_ws(
            "/api/channels/probe/listed", headers={"Origin": EVIL}
        ) as ws:
            with pytest.raises(WebSocketDisconnected):
                await ws.receive_text()
            assert ws.close_code == 3403

    run_app(tmp_path, {"probe": channel}, scenario)


REFUSING = RoutePolicy(
    cors=CorsPolicy(
        origins=OriginsSetting("PROBE_ALLOWED_ORIGINS"), methods="GET, POST", refuse_others=True
    )
)


def test_a_policy_that_refuses_others_refuses_them_over_http_and_websockets(tmp_path):
    """With ``refuse_others``, a request a browser sends from an unlisted origin is refused
    (403 JSON, before the route runs), not only left without CORS; the listed origin, the
    server's own pages and programs (no Origin) pass. With no origin listed, every other
    site is refused, on WebSockets too."""
    posted: list[str] = []

    class Recorder:
        async def on_post(self, req: Any, resp: Any) -> None:
            posted.append(req.get_header("Origin") or "-")
            resp.media = {"ok": True}

        async def on_websocket(self, req: Any, ws: Any) -> None:
            await ws.accept()
            await ws.send_text("hi")
            await ws.receive_text()

    channel = routes_channel(ChannelRoute("guarded", Recorder(), public=True, policy=REFUSING))
    path = "/api/channels/probe/guarded"

    async def scenario(conductor: testing.ASGIConductor) -> None:
        refused = await conductor.simulate_post(path, json={}, headers={"Origin": EVIL})
        assert refused.status_code == 403
        assert refused.json["error"] == "forbidden"
        assert "Access-Control-Allow-Origin" not in refused.headers
        allowed = await conductor.simulate_post(path, json={}, headers={"Origin": SHOP})
        assert allowed.status_code == 200
        assert allowed.headers["Access-Control-Allow-Origin"] == SHOP
        program = await conductor.simulate_post(path, json={})
        assert program.status_code == 200
        assert posted == [SHOP, "-"]  # the refused request never reached the route
        async with conductor.simulate_ws(path, headers={"Origin": EVIL}) as ws:
            with pytest.raises(WebSocketDisconnected):
                await ws.receive_text()
            assert ws.close_code == 3403

    run_app(tmp_path, {"probe": channel}, scenario, {"PROBE_ALLOWED_ORIGINS": SHOP})

    async def unset_scenario(conductor: testing.ASGIConductor) -> None:
        refused = await conductor.simulate_post(path, json={}, headers={"Origin": SHOP})
        assert refused.status_code == 403
        async with conductor.simulate_ws(path, headers={"Origin": SHOP}) as ws:
            with pytest.raises(WebSocketDisconnected):
                await ws.receive_text()
            assert ws.close_code == 3403

    run_app(tmp_path / "unset", {"probe": channel}, unset_scenario)


def test_a_routes_origins_follow_the_stored_settings(tmp_path):
    """An ``OriginsSetting`` read from ``config.settings`` follows what admins store, with no
    restart: a site stored after start-up is let in (HTTP and WebSocket), one removed is
    refused again, and a stored value that is no list of origins lets no other site in."""
    stored = StoredSettings()

    class Guarded(Hello):
        async def on_websocket(self, req: Any, ws: Any) -> None:
            await ws.accept()
            await ws.send_text("hi")
            await ws.receive_text()

    channel = routes_channel(ChannelRoute("guarded", Guarded(), public=True, policy=REFUSING))
    path = "/api/channels/probe/guarded"

    async def refused(conductor: testing.ASGIConductor, origin: str) -> bool:
        answer = await conductor.simulate_get(path, headers={"Origin": origin})
        return answer.status_code == 403

    async def scenario(conductor: testing.ASGIConductor) -> None:
        assert await refused(conductor, SHOP)
        stored.replace({"PROBE_ALLOWED_ORIGINS": SHOP}, 1)
        assert not await refused(conductor, SHOP)
        assert await refused(conductor, EVIL)
        async with conductor.simulate_ws(path, headers={"Origin": SHOP}) as ws:
            assert await ws.receive_text() == "hi"
        stored.replace({"PROBE_ALLOWED_ORIGINS": AGENT_APP}, 2)
        assert await refused(conductor, SHOP)
        assert not await refused(conductor, AGENT_APP)
        stored.replace({"PROBE_ALLOWED_ORIGINS": "*"}, 3)
        assert await refused(conductor, AGENT_APP)

    run_app(tmp_path, {"probe": channel}, scenario, stored_settings=stored)

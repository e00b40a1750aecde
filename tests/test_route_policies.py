"""A module's routes outside the agents' API carry their own protection: a page its own
Content-Security-Policy and framing, a visitor API its own CORS origins, while the agents'
API keeps its strict headers and OMNICHANNEL_CORS_ORIGINS, neither opened to the other."""

from __future__ import annotations

from typing import Any

from falcon import testing

from omnichannel_core.module import (
    CorsPolicy,
    Operation,
    Response,
    Route,
    RoutePolicy,
    hookimpl,
)
from omnichannel_core.testing import AUTH, run_app

AGENT_APP = "https://app.example.com"
SHOP = "https://shop.example.com"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "same-origin",
}
OK = {200: Response(description="OK")}


class Console:
    """A page: HTML with scripts of its own origin."""

    operations = {"GET": Operation("The console", public=True, responses=OK, documented=False)}

    async def on_get(self, req: Any, resp: Any) -> None:
        resp.content_type = "text/html"
        resp.text = "<!doctype html><script src='/console/app.js'></script>"


class Hello:
    """A visitor API: the widget on a customer's site calls it."""

    operations = {"GET": Operation("Say hello", public=True, responses=OK)}

    async def on_get(self, req: Any, resp: Any) -> None:
        resp.media = {"hello": "visitor"}


def widget_origins(config: Any) -> list[str]:
    return [o for o in config.environ.get("WIDGET_ORIGINS", "").split(",") if o]


class Pages:
    @hookimpl
    def register_routes(self) -> list[Route]:
        return [
            Route("/console", Console(), RoutePolicy(headers=PAGE_HEADERS)),
            Route(
                "/widget/api/hello",
                Hello(),
                RoutePolicy(cors=CorsPolicy(origins=widget_origins, methods="GET")),
            ),
        ]


def preflight(origin: str) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "GET"}


def test_pages_and_visitor_apis_have_their_own_headers_and_cors(tmp_path):
    """The page gets its own CSP and may be framed by its origin, and is not marked
    no-store; the agents' API keeps default-src 'none', DENY and no-store. The shop's origin
    may call the visitor API from a browser (preflight and answer) but not the agents' API;
    the agents' app may call the agents' API but not the visitor API."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        page = await conductor.simulate_get("/console")
        assert page.status_code == 200
        for name, value in PAGE_HEADERS.items():
            assert page.headers[name] == value
        assert "no-store" not in page.headers.get("Cache-Control", "")

        api = await conductor.simulate_get("/api/contacts", headers=AUTH)
        assert (
            api.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        )
        assert api.headers["X-Frame-Options"] == "DENY"
        assert "no-store" in api.headers["Cache-Control"]

        allowed = await conductor.simulate_options("/widget/api/hello", headers=preflight(SHOP))
        assert allowed.headers["Access-Control-Allow-Origin"] == SHOP
        assert allowed.headers["Access-Control-Allow-Methods"] == "GET"
        answered = await conductor.simulate_get("/widget/api/hello", headers={"Origin": SHOP})
        assert answered.json == {"hello": "visitor"}
        assert answered.headers["Access-Control-Allow-Origin"] == SHOP

        refused = await conductor.simulate_options("/api/contacts", headers=preflight(SHOP))
        assert "Access-Control-Allow-Origin" not in refused.headers
        from_shop = await conductor.simulate_get("/api/contacts", headers={**AUTH, "Origin": SHOP})
        assert "Access-Control-Allow-Origin" not in from_shop.headers

        agents = await conductor.simulate_options("/api/contacts", headers=preflight(AGENT_APP))
        assert agents.headers["Access-Control-Allow-Origin"] == AGENT_APP
        not_widget = await conductor.simulate_options(
            "/widget/api/hello", headers=preflight(AGENT_APP)
        )
        assert "Access-Control-Allow-Origin" not in not_widget.headers

    run_app(
        tmp_path,
        {},
        scenario,
        environ={"WIDGET_ORIGINS": SHOP},
        modules={"pages": Pages()},
        cors_origins=(AGENT_APP,),
    )


class SharedResource:
    """One resource mounted for the agents and, under another policy, for visitors."""

    @hookimpl
    def register_routes(self) -> list[Route]:
        hello = Hello()
        visitors = RoutePolicy(cors=CorsPolicy(origins=widget_origins))
        return [Route("/api/hello", hello), Route("/widget/hello", hello, visitors)]


def test_one_resource_under_two_policies_is_refused(tmp_path):
    """Protection is found by the resource a request reached, so one resource mounted under
    two policies would take one policy for both: the module is unloaded, saying why, and
    neither route is served (no visitor origin reaches the agents' route)."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        plugins = (await conductor.simulate_get("/api/plugins", headers=AUTH)).json
        (failed,) = plugins["failed"]
        assert failed["name"] == "shared"
        assert "under another RoutePolicy" in failed["error"]
        shop = await conductor.simulate_get("/api/hello", headers={**AUTH, "Origin": SHOP})
        assert shop.status_code == 404
        assert "Access-Control-Allow-Origin" not in shop.headers

    run_app(
        tmp_path,
        {},
        scenario,
        environ={"WIDGET_ORIGINS": SHOP},
        modules={"shared": SharedResource()},
    )

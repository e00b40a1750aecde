"""A plugin unloaded after others came to rely on it takes them down with it, each saying
what it lost, so nothing the server serves names what is not there: a route needing a
permission taken back, a service no longer offered. And a route naming an error the core
does not know is refused, instead of breaking the OpenAPI document."""

from __future__ import annotations

from typing import Any, Protocol

import attrs
from falcon import testing

from omnichannel_core.module import (
    Job,
    ModuleContext,
    Operation,
    PermissionSpec,
    Response,
    Role,
    Route,
    hookimpl,
)
from omnichannel_core.testing import AUTH, run_app

OK = {200: Response(description="OK")}


class Alpha:
    """Contributes alpha:read, then fails in a later phase."""

    @hookimpl
    def register_permissions(self) -> list[PermissionSpec]:
        return [PermissionSpec("alpha:read", "read alpha", (Role.AGENT,))]

    @hookimpl
    def register_jobs(self) -> list[Job]:
        raise RuntimeError("alpha's jobs are broken")


class AlphaReport:
    operations = {"GET": Operation("Alpha report", permission="alpha:read", responses=OK)}

    async def on_get(self, req: Any, resp: Any) -> None:
        resp.media = {"alpha": True}


class Beta:
    """Serves a route that needs Alpha's permission."""

    @hookimpl
    def register_routes(self) -> list[Route]:
        return [Route("/api/beta", AlphaReport())]


class Clock(Protocol):
    def now(self) -> str: ...


class OfficeClock:
    def now(self) -> str:
        return "09:00"


class ClockTime:
    operations = {"GET": Operation("The time", permission="contacts:read", responses=OK)}

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def on_get(self, req: Any, resp: Any) -> None:
        resp.media = {"now": self.clock.now()}


class Timekeeper:
    """Offers the Clock, then fails in a later phase."""

    @hookimpl
    def register_services(self) -> dict[type, Any]:
        return {Clock: OfficeClock()}

    @hookimpl
    def register_jobs(self) -> list[Job]:
        raise RuntimeError("the timekeeper's jobs are broken")


class Watcher:
    """Asks for the Clock (before its provider fails) and serves what it says."""

    @hookimpl
    def register_routes(self, context: ModuleContext) -> list[Route]:
        return [Route("/api/time", ClockTime(context.service(Clock)))]


class UnknownError:
    operations = {
        "GET": Operation("Odd", permission="contacts:read", responses=OK, errors=("Teapot",))
    }

    async def on_get(self, req: Any, resp: Any) -> None:
        resp.media = {}


class NamesAnUnknownError:
    @hookimpl
    def register_routes(self) -> list[Route]:
        return [Route("/api/odd", UnknownError())]


def failures(plugins: dict[str, Any]) -> dict[str, str]:
    return {failure["name"]: failure["error"] for failure in plugins["failed"]}


def test_a_plugin_unloaded_late_takes_its_dependants_with_it(tmp_path):
    """Alpha fails after contributing alpha:read, so Beta, whose route needs it, is
    unloaded too; Timekeeper fails after Watcher took its Clock, so Watcher is unloaded too.
    Their routes are not served, the OpenAPI document is whole, and alpha:read is no scope."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        plugins = (await conductor.simulate_get("/api/plugins", headers=AUTH)).json
        failed = failures(plugins)
        assert "alpha's jobs are broken" in failed["alpha"]
        assert "needs the permission 'alpha:read'" in failed["beta"]
        assert "the timekeeper's jobs are broken" in failed["timekeeper"]
        assert "uses Clock, which no loaded plugin offers any more" in failed["watcher"]
        for path in ("/api/beta", "/api/time"):
            assert (await conductor.simulate_get(path, headers=AUTH)).status_code == 404
        document = await conductor.simulate_get("/api/openapi.json")
        assert document.status_code == 200
        assert "/api/beta" not in document.json["paths"]
        key = await conductor.simulate_post(
            "/api/api-keys", json={"name": "k", "scopes": ["alpha:read"]}, headers=AUTH
        )
        assert key.status_code == 400
        assert (await conductor.simulate_get("/health")).json["status"] == "degraded"

    modules = {
        "watcher": Watcher(),
        "timekeeper": Timekeeper(),
        "alpha": Alpha(),
        "beta": Beta(),
    }
    run_app(tmp_path, {}, scenario, modules=modules)


def test_a_route_naming_an_unknown_error_is_refused(tmp_path):
    """An operation naming an error the core does not share unloads its plugin, saying
    which names are shared; the OpenAPI document still answers."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        plugins = (await conductor.simulate_get("/api/plugins", headers=AUTH)).json
        error = failures(plugins)["odd"]
        assert "names unknown errors ['Teapot']" in error and "NotFound" in error
        assert (await conductor.simulate_get("/api/openapi.json")).status_code == 200

    run_app(tmp_path, {}, scenario, modules={"odd": NamesAnUnknownError()})


def _module_answering(path: str, body: type) -> object:
    class Resource:
        operations = {
            "GET": Operation(
                "Answer", permission="contacts:read", responses={200: Response(body, "It.")}
            )
        }

        async def on_get(self, req: Any, resp: Any) -> None:
            resp.media = {}

    class Module:
        @hookimpl
        def register_routes(self) -> list[Route]:
            return [Route(path, Resource())]

    return Module()


def test_two_body_classes_of_one_name_are_refused_at_start_up(tmp_path):
    """The OpenAPI document names each body class once: a second module answering with
    another class of the same name is unloaded, saying so, and the document answers."""

    @attrs.frozen
    class Greeting:
        text: str

    first = Greeting

    @attrs.frozen
    class Greeting:  # type: ignore[no-redef]  # another class, the same name
        count: int

    async def scenario(conductor: testing.ASGIConductor) -> None:
        plugins = (await conductor.simulate_get("/api/plugins", headers=AUTH)).json
        assert "two body classes are named 'Greeting'" in failures(plugins)["second"]
        document = await conductor.simulate_get("/api/openapi.json")
        assert document.status_code == 200
        assert "/api/first" in document.json["paths"]

    modules = {
        "first": _module_answering("/api/first", first),
        "second": _module_answering("/api/second", Greeting),
    }
    run_app(tmp_path, {}, scenario, modules=modules)

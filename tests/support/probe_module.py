"""A module contributing one of everything, named after itself (:class:`Probe`), and the
checks that all of it is at work (:func:`assert_serves`) or none of it
(:func:`assert_unloaded`), through the real app in-process; for the tests of what the core
refuses from a module hook."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from falcon import testing

from omnichannel_core import hookimpl
from omnichannel_core.app import build_registry
from omnichannel_core.cli import build_parser
from omnichannel_core.config import Config
from omnichannel_core.module import (
    Command,
    EventTypeSpec,
    Job,
    JobControl,
    ModuleContext,
    Operation,
    PermissionSpec,
    Principal,
    Route,
    StoreSpec,
    Subscriber,
)
from omnichannel_core.plugins.loading import load_plugins
from omnichannel_core.testing import AUTH, run_app

Scenario = Callable[[testing.ASGIConductor], Any]


class Marks:
    """A probe's store: nothing but its table, which its migration creates."""

    def __init__(self, database: Any) -> None:
        self.database = database


class Greeting:
    """A service interface the tests offer twice."""

    def __init__(self, word: str) -> None:
        self.word = word


class Probe:
    """A module contributing one of everything, each named after ``name`` (lower-case
    letters only, so it fits every kind of name): the permission ``<name>:read``, the store
    ``<name>_marks``, a service of its own, the event type ``<name>.marked``, an
    authenticator of the token ``<name>-token``, the route ``/api/<name>``, the subscriber
    ``<name>.listen``, the job ``<name>.tick``, the command ``omnichannel <name> ping``, and
    a start-up callback. ``extra`` adds items to a hook's answer (``{"register_jobs":
    [Job(...)]}``; a mapping for ``register_services``).

    Its route answers what the registry holds now: the event types and the ``Greeting``
    service's word."""

    def __init__(self, name: str, **extra: Any) -> None:
        self.name = name
        self.extra = extra
        self.service = type(f"{name.title()}Service", (), {})
        self.started = False

    def _with_extra(self, phase: str, own: list[Any]) -> list[Any]:
        return [*own, *self.extra.get(phase, [])]

    @hookimpl
    def register_permissions(self) -> Any:
        own = PermissionSpec(f"{self.name}:read", f"read {self.name}")
        return self._with_extra("register_permissions", [own])

    @hookimpl
    def register_stores(self) -> Any:
        table = f"{self.name}_marks"
        own = StoreSpec(
            table,
            Marks,
            sqlite=Marks,
            sqlite_migrations=(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY)",),
        )
        return self._with_extra("register_stores", [own])

    @hookimpl
    def register_services(self) -> Any:
        return {self.service: self.service(), **self.extra.get("register_services", {})}

    @hookimpl
    def register_event_types(self) -> Any:
        async def load(record_id: str) -> Any:
            return {"id": record_id}

        own = EventTypeSpec(f"{self.name}.marked", "mark", f"{self.name}:read", load)
        return self._with_extra("register_event_types", [own])

    @hookimpl
    def register_authenticators(self) -> Any:
        async def authenticate(token: str) -> Principal | None:
            if token != f"{self.name}-token":
                return None
            permissions = frozenset({f"{self.name}:read", "first:read"})
            return Principal("api_key", f"key_{self.name}", self.name, permissions)

        return self._with_extra("register_authenticators", [authenticate])

    @hookimpl
    def register_routes(self, context: ModuleContext) -> Any:
        probe = self

        async def started() -> None:
            probe.started = True

        context.on_startup(started)

        class Witness:
            operations = {"GET": Operation("What the registry holds", f"{probe.name}:read")}

            async def on_get(self, req: Any, resp: Any) -> None:
                try:
                    greeting = context.service(Greeting).word
                except LookupError:
                    greeting = None
                resp.media = {
                    "probe": probe.name,
                    "event_types": {n: s.record for n, s in context.event_types.items()},
                    "greeting": greeting,
                }

        return self._with_extra("register_routes", [Route(f"/api/{self.name}", Witness())])

    @hookimpl
    def register_subscribers(self) -> Any:
        async def handle(event: Any) -> None:
            pass

        own = Subscriber(f"{self.name}.listen", handle, types={f"{self.name}.marked"})
        return self._with_extra("register_subscribers", [own])

    @hookimpl
    def register_jobs(self) -> Any:
        async def tick(control: JobControl) -> None:
            pass

        own = Job(f"{self.name}.tick", tick, every=timedelta(hours=1))
        return self._with_extra("register_jobs", [own])

    @hookimpl
    def register_commands(self) -> Any:
        async def ping(args: argparse.Namespace) -> int:
            return 0

        own = Command(self.name, "ping", "answer", ping)
        return self._with_extra("register_commands", [own])


async def plugins_report(conductor: testing.ASGIConductor) -> dict[str, Any]:
    report = (await conductor.simulate_get("/api/plugins", headers=AUTH)).json
    assert isinstance(report, dict)
    return report


async def failures(conductor: testing.ASGIConductor) -> dict[str, str]:
    """Each failed plugin's error, by name."""
    return {
        failure["name"]: failure["error"] for failure in (await plugins_report(conductor))["failed"]
    }


async def assert_serves(conductor: testing.ASGIConductor, probe: Probe) -> dict[str, Any]:
    """Everything ``probe`` contributed is at work; what its route answers."""
    name = probe.name
    assert name in {item["name"] for item in (await plugins_report(conductor))["items"]}
    answer = await conductor.simulate_get(f"/api/{name}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    me = await conductor.simulate_get("/api/auth/me", headers=AUTH)
    assert f"{name}:read" in me.json["permissions"]
    own_token = {"Authorization": f"Bearer {name}-token"}
    assert (await conductor.simulate_get(f"/api/{name}", headers=own_token)).status_code == 200
    health = (await conductor.simulate_get("/health")).json
    assert health["store"]["schema"][f"{name}_marks"] == 1
    assert health["subscribers"][f"{name}.listen"]["started"] is True
    assert f"{name}.tick" in health["jobs"]
    assert answer.json["event_types"][f"{name}.marked"] == "mark"
    assert probe.started
    return dict(answer.json)


async def assert_unloaded(conductor: testing.ASGIConductor, probe: Probe, error: str) -> None:
    """``probe`` is listed as failed with ``error``, and nothing it contributed is at work."""
    name = probe.name
    report = await plugins_report(conductor)
    assert (await failures(conductor)).get(name) == error
    assert name not in {item["name"] for item in report["items"]}
    assert (await conductor.simulate_get(f"/api/{name}", headers=AUTH)).status_code == 404
    assert f"/api/{name}" not in (await conductor.simulate_get("/api/openapi.json")).json["paths"]
    own_token = {"Authorization": f"Bearer {name}-token"}
    assert (await conductor.simulate_get("/api/first", headers=own_token)).status_code == 401
    health = (await conductor.simulate_get("/health")).json
    assert health["status"] == "degraded"
    assert name in health["failed_plugins"]
    assert f"{name}_marks" not in health["store"]["schema"]
    assert f"{name}.listen" not in health["subscribers"]
    assert f"{name}.tick" not in health["jobs"]
    witness = (await conductor.simulate_get("/api/first", headers=AUTH)).json
    assert f"{name}.marked" not in witness["event_types"]
    assert not probe.started


def run(tmp_path: Path, probes: list[Probe], scenario: Scenario, **options: Any) -> None:
    run_app(tmp_path, {}, scenario, modules={probe.name: probe for probe in probes}, **options)


def program(tmp_path: Path, probes: list[Probe]) -> tuple[argparse.ArgumentParser, set[str]]:
    """The ``omnichannel`` program's parser with ``probes`` loaded, built in-process, and
    the names of the plugins that failed."""
    config = Config(
        data_dir=tmp_path,
        store_url=f"sqlite:///{tmp_path / 'store.db'}",
        plugins_dir=tmp_path / "no-plugins",
    )
    plugins = load_plugins(None, extra_modules=[(probe.name, probe) for probe in probes])
    parser = build_parser(build_registry(config, plugins))
    return parser, {failure.name for failure in plugins.failures}

"""What the core refuses from a module hook, and what refusing does: the plugin is listed
under ``failed`` in ``GET /api/plugins`` (and ``/health``) with an error naming the hook and
what was wrong, nothing it contributed is served or used (its route, authenticator, store,
event types, subscribers, jobs, commands, start-up callback), and every other plugin starts.

Each test registers in-process probe modules (``tests.support.probe_module``), which
contribute one of everything named after themselves, plus what the test adds, and drives
the real app (``run_app``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from falcon import testing

from omnichannel_core import hookimpl
from omnichannel_core.module import (
    Command,
    EventTypeSpec,
    Job,
    JobControl,
    PermissionSpec,
    Principal,
    StoreSpec,
    Subscriber,
)
from omnichannel_core.plugins.registry import PHASES
from omnichannel_core.testing import AUTH
from tests.support.probe_module import (
    Greeting,
    Marks,
    Probe,
    assert_serves,
    assert_unloaded,
    failures,
    program,
    run,
)


def refused(tmp_path: Path, offender: Probe, error: str) -> None:
    """Run ``first`` and then ``offender``: the offender is unloaded with ``error``, and
    ``first`` (and the built-in modules) serve."""
    first = Probe("first")

    async def scenario(conductor: testing.ASGIConductor) -> None:
        assert set(await failures(conductor)) == {offender.name}
        await assert_serves(conductor, first)
        await assert_unloaded(conductor, offender, error)
        contacts = await conductor.simulate_get("/api/contacts", headers=AUTH)
        assert contacts.status_code == 200

    run(tmp_path, [first, offender], scenario)


# register_permissions -------------------------------------------------------------------


def test_a_permission_contributed_twice_unloads_the_second_plugin(tmp_path):
    """A permission another plugin contributed, or the core's, or one listed twice by the
    plugin itself, is refused by name; the refused plugin's own permissions are not in the
    matrix (an admin does not hold them), and the first plugin's are."""
    again = Probe("again", register_permissions=[PermissionSpec("first:read", "mine too")])
    kernel = Probe("kernel", register_permissions=[PermissionSpec("plugins:read", "mine too")])
    twice = Probe("twice", register_permissions=[PermissionSpec("twice:read", "once more")])
    first = Probe("first")

    async def scenario(conductor: testing.ASGIConductor) -> None:
        await assert_serves(conductor, first)
        already = "register_permissions: permission {!r} is contributed already"
        await assert_unloaded(conductor, again, already.format("first:read"))
        await assert_unloaded(conductor, kernel, already.format("plugins:read"))
        await assert_unloaded(conductor, twice, already.format("twice:read"))
        me = (await conductor.simulate_get("/api/auth/me", headers=AUTH)).json
        assert not {"again:read", "kernel:read", "twice:read"} & set(me["permissions"])
        assert "plugins:read" in me["permissions"]

    run(tmp_path, [first, again, kernel, twice], scenario)


# register_stores ------------------------------------------------------------------------


def test_a_store_name_registered_twice_unloads_the_second_plugin(tmp_path):
    """A store name another plugin registered (or a kernel store's, ``events``) is refused
    by name; the refused plugin's stores are not migrated."""
    clash = StoreSpec("first_marks", Marks, sqlite=Marks, sqlite_migrations=("SELECT 1",))
    kernel = StoreSpec("events", Marks, sqlite=Marks)
    again = Probe("again", register_stores=[clash])
    kernel = Probe("kernel", register_stores=[kernel])
    first = Probe("first")

    async def scenario(conductor: testing.ASGIConductor) -> None:
        await assert_serves(conductor, first)
        await assert_unloaded(
            conductor, again, "register_stores: store 'first_marks' is registered already"
        )
        await assert_unloaded(
            conductor, kernel, "register_stores: store 'events' is registered already"
        )

    run(tmp_path, [first, again, kernel], scenario)


def test_a_store_without_a_factory_for_the_backend_unloads_its_plugin(tmp_path):
    """A store with only a Firestore implementation, on SQLite: the error names the store,
    the backend and OMNICHANNEL_STORE; none of the plugin's stores is migrated."""
    cloud = StoreSpec("cloud_only", Marks, firestore=Marks)
    refused(
        tmp_path,
        Probe("cloudy", register_stores=[cloud]),
        "register_stores: store 'cloud_only' has no sqlite implementation (OMNICHANNEL_STORE)",
    )


# register_services ----------------------------------------------------------------------


def test_a_service_offered_twice_unloads_the_second_plugin(tmp_path):
    """An interface another plugin offers already is refused by name; other plugins are
    given the first plugin's implementation, never the refused one's."""
    first = Probe("first", register_services={Greeting: Greeting("hello")})
    again = Probe("again", register_services={Greeting: Greeting("bonjour")})

    async def scenario(conductor: testing.ASGIConductor) -> None:
        assert (await assert_serves(conductor, first))["greeting"] == "hello"
        await assert_unloaded(conductor, again, "register_services: Greeting is offered already")

    run(tmp_path, [first, again], scenario)


# register_event_types -------------------------------------------------------------------


async def _ignore(record_id: str) -> Any:
    return None


def test_an_event_type_declared_twice_unloads_the_second_plugin(tmp_path):
    """An event type another plugin (or the inbox) declared is refused by name; the first
    declaration stays the one in force."""
    first = Probe("first")
    again = Probe(
        "again",
        register_event_types=[EventTypeSpec("first.marked", "other", "again:read", _ignore)],
    )
    inbox = Probe(
        "inboxed",
        register_event_types=[EventTypeSpec("message.created", "other", "inboxed:read", _ignore)],
    )

    async def scenario(conductor: testing.ASGIConductor) -> None:
        answer = await assert_serves(conductor, first)
        assert answer["event_types"]["first.marked"] == "mark"
        assert answer["event_types"]["message.created"] == "message"
        already = "register_event_types: event type {!r} is declared already"
        await assert_unloaded(conductor, again, already.format("first.marked"))
        await assert_unloaded(conductor, inbox, already.format("message.created"))

    run(tmp_path, [first, again, inbox], scenario)


def test_an_event_type_needing_an_unknown_permission_unloads_its_plugin(tmp_path):
    """An event type whose readers would need a permission nobody contributed is refused,
    naming the type and the permission."""
    unknown = EventTypeSpec("vague.happened", "thing", "vague:peek", _ignore)
    refused(
        tmp_path,
        Probe("vague", register_event_types=[unknown]),
        "register_event_types: event type 'vague.happened' needs unknown permission 'vague:peek'",
    )


# register_subscribers -------------------------------------------------------------------


async def _handle(event: Any) -> None:
    pass


def test_a_subscriber_name_used_twice_unloads_the_second_plugin(tmp_path):
    """A subscriber name another plugin uses is refused by name (its cursor would be
    shared); the first plugin's subscriber keeps it."""
    refused(
        tmp_path,
        Probe("again", register_subscribers=[Subscriber("first.listen", _handle)]),
        "register_subscribers: subscriber 'first.listen' is registered already",
    )


def test_a_subscriber_wanting_an_unknown_event_type_unloads_its_plugin(tmp_path):
    """A subscriber wanting a type nobody declared (a misspelling) is refused, naming it."""
    misspelt = Subscriber("typo.other", _handle, types={"message.creatd", "typo.marked"})
    refused(
        tmp_path,
        Probe("typo", register_subscribers=[misspelt]),
        "register_subscribers: subscriber 'typo.other' wants unknown event types:"
        " ['message.creatd']",
    )


# register_jobs --------------------------------------------------------------------------


async def _tick(control: JobControl) -> None:
    pass


def test_a_job_name_used_twice_unloads_the_second_plugin(tmp_path):
    """A job name another plugin's job (or the core's) uses is refused by name."""
    first = Probe("first")
    again = Probe("again", register_jobs=[Job("first.tick", _tick)])
    kernel = Probe("kernel", register_jobs=[Job("events.prune", _tick)])

    async def scenario(conductor: testing.ASGIConductor) -> None:
        await assert_serves(conductor, first)
        await assert_unloaded(
            conductor, again, "register_jobs: job 'first.tick' is registered already"
        )
        await assert_unloaded(
            conductor, kernel, "register_jobs: job 'events.prune' is registered already"
        )
        assert "events.prune" in (await conductor.simulate_get("/health")).json["jobs"]

    run(tmp_path, [first, again, kernel], scenario)


def test_a_job_named_like_a_subscriber_unloads_the_jobs_plugin(tmp_path):
    """Jobs and subscribers share one namespace (leases and cursors): a job named like a
    subscriber is refused, whichever plugin the subscriber belongs to."""
    refused(
        tmp_path,
        Probe("again", register_jobs=[Job("first.listen", _tick)]),
        "register_jobs: job 'first.listen' is registered already",
    )


def test_a_subscriber_named_like_the_cores_job_unloads_its_plugin(tmp_path):
    """A subscriber named like a job of the core is refused, and the server starts: one
    plugin's name must not stop it."""
    sneaky = Probe("sneaky", register_subscribers=[Subscriber("events.prune", _handle)])

    async def scenario(conductor: testing.ASGIConductor) -> None:
        assert "sneaky" in await failures(conductor)
        assert "events.prune" in (await conductor.simulate_get("/health")).json["jobs"]

    run(tmp_path, [sneaky], scenario)


# register_commands ----------------------------------------------------------------------


async def _command(args: argparse.Namespace) -> int:
    return 0


def test_a_command_used_twice_unloads_the_second_plugin(tmp_path):
    """A (group, name) another plugin's command has, the access module's ``users
    create-admin`` included, is refused by name; the program does not offer the refused
    plugin's commands, and still offers the first's and the access module's. The same
    group with another name is no clash."""
    first = Probe("first")
    clash = Command("first", "ping", "mine", _command)
    admin = Command("users", "create-admin", "mine", _command)
    again = Probe("again", register_commands=[Command("first", "pong", "fine", _command), clash])
    admins = Probe("admins", register_commands=[admin])

    async def scenario(conductor: testing.ASGIConductor) -> None:
        await assert_serves(conductor, first)
        already = "register_commands: command {} exists already"
        await assert_unloaded(conductor, again, already.format("first ping"))
        await assert_unloaded(conductor, admins, already.format("users create-admin"))

    probes = [first, again, admins]
    run(tmp_path / "app", probes, scenario)
    parser, failed = program(tmp_path / "program", [Probe(p.name, **p.extra) for p in probes])
    assert failed == {"again", "admins"}
    assert parser.parse_args(["first", "ping"]).first_command == "ping"
    created = parser.parse_args(["users", "create-admin", "--email", "a@b.c", "--name", "A"])
    assert created.users_command == "create-admin"
    for refused_command in (["again", "ping"], ["first", "pong"]):
        with pytest.raises(SystemExit):
            parser.parse_args(refused_command)


def test_a_command_group_named_like_a_core_command_unloads_its_plugin(tmp_path):
    """A plugin's ``omnichannel serve now`` would shadow the core's ``serve``: it is refused,
    and the program (its help, every other plugin's command) still works."""
    taken = Probe("taken", register_commands=[Command("serve", "now", "mine", _command)])
    parser, failed = program(tmp_path, [Probe("first"), taken])
    assert failed == {"taken"}
    assert parser.parse_args(["first", "ping"]).first_command == "ping"


# any hook: async, a wrong answer, an exception -------------------------------------------


def _name_for(phase: str) -> str:
    return phase.removeprefix("register_").replace("_", "")


def _probe_with(phase: str, implementation: Callable[..., Any]) -> Probe:
    """A probe whose ``phase`` hook is ``implementation`` (given no argument)."""
    implementation.__name__ = phase
    kind = type(f"Broken_{phase}", (Probe,), {phase: hookimpl(implementation)})
    probe: Probe = kind(_name_for(phase))
    return probe


def _async_hook(phase: str) -> Probe:
    async def hook(self: Probe) -> list[Any]:
        return []

    return _probe_with(phase, hook)


def _raising_hook(phase: str) -> Probe:
    def hook(self: Probe) -> list[Any]:
        raise KeyError(f"{_name_for(phase)}_setting")

    return _probe_with(phase, hook)


def _returning(answer: Callable[[str], Any]) -> Callable[[str], Probe]:
    def make(phase: str) -> Probe:
        def hook(self: Probe) -> Any:
            return answer(phase)

        return _probe_with(phase, hook)

    return make


KINDS = {
    "register_permissions": "PermissionSpec",
    "register_stores": "StoreSpec",
    "register_event_types": "EventTypeSpec",
    "register_routes": "Route",
    "register_subscribers": "Subscriber",
    "register_jobs": "Job",
    "register_commands": "Command",
}
"""The hooks answering a list of one class, and that class's name."""


def _wrong_answer(phase: str) -> Any:
    """A mapping with a string key for ``register_services``, else a list of a string."""
    return {"first:read": "x"} if phase == "register_services" else ["first:read"]


def _not_a_list(phase: str) -> str:
    if phase == "register_services":
        return "must return a mapping {Interface: implementation}"
    if phase == "register_authenticators":
        return "must return a list of async functions"
    return f"must return a list of {KINDS[phase]}, not str"


def _wrong_items(phase: str) -> str:
    if phase == "register_services":
        return "a service's key must be a class, not 'first:read'"
    if phase == "register_authenticators":
        return "must return a list of async functions"
    return f"returned a str, not a {KINDS[phase]}"


CASES = {
    "async def": (_async_hook, lambda phase: "must be a plain function, not async"),
    "raising": (_raising_hook, lambda phase: f"raised KeyError: '{_name_for(phase)}_setting'"),
    "not a list": (_returning(lambda phase: "first:read"), _not_a_list),
    "wrong items": (_returning(_wrong_answer), _wrong_items),
}


@pytest.mark.parametrize("case", CASES)
def test_every_hook_unloads_its_plugin_when_it_misbehaves(tmp_path, case):
    """For each module hook, one plugin whose implementation of it is an ``async def``,
    raises, answers something that is not a list (a mapping, for ``register_services``), or
    a list of something else: each is unloaded with an error naming the hook and what was
    wrong (the exception's type and message), nothing it contributed in earlier hooks is
    at work, and the well-behaved plugin serves."""
    make, expected = CASES[case]
    first = Probe("first")
    broken = [make(phase) for phase in PHASES]
    errors = {probe.name: phase for probe, phase in zip(broken, PHASES, strict=True)}

    async def scenario(conductor: testing.ASGIConductor) -> None:
        assert set(await failures(conductor)) == set(errors)
        await assert_serves(conductor, first)
        for probe in broken:
            phase = errors[probe.name]
            separator = " " if case == "raising" else ": "
            await assert_unloaded(conductor, probe, phase + separator + expected(phase))

    run(tmp_path, [first, *broken], scenario)


def test_a_plain_function_authenticator_unloads_its_plugin(tmp_path):
    """An authenticator that is a plain function, not ``async def``, is refused as the
    error says ("a list of async functions"), and an unknown token still answers 401."""

    def authenticate(token: str) -> Principal | None:
        return None

    plain = Probe("plain", register_authenticators=[authenticate])

    async def scenario(conductor: testing.ASGIConductor) -> None:
        unknown = {"Authorization": "Bearer nobody-knows-me"}
        assert (await conductor.simulate_get("/api/contacts", headers=unknown)).status_code == 401
        assert "plain" in await failures(conductor)

    run(tmp_path, [plain], scenario)

"""The plugin kit (omnichannel_core.testing) as a channel or module author meets it: the
fixtures its pytest plugin provides in any test run, the conformance suite run by pytest in
a project of its own against real fixture channels (pip-installed into a private folder), a
module's store on both backends, and the server without its job runner beside a worker."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from falcon import testing

from omnichannel_core import hookimpl
from omnichannel_core.hooktypes import ChannelHealth
from omnichannel_core.module import StoreSpec
from omnichannel_core.module.sqlite import SqliteDatabase, append_event
from omnichannel_core.testing import (
    AUTH,
    ScriptedResponse,
    run_app,
    run_store,
    running_server,
    running_worker,
)
from omnichannel_core.testing.hook_check import hookspec_problems
from tests.conftest import WEBHOOK_SECRET
from tests.fixtures.distributions import install_distributions

CONFORMANCE_PREAMBLE = """
import json
from contextlib import contextmanager

import attrs

from omnichannel_core.testing import ChannelConformance, FakeProvider, WebhookCall

TOKEN = "kit-echo-token"


def echo_webhook(provider_message_id, sender, text, token=TOKEN):
    body = json.dumps({"id": provider_message_id, "from": sender, "text": text}).encode()
    return WebhookCall(
        "webhook", body, {"Content-Type": "application/json", "X-Echo-Token": token}
    )


class IdleProvider:
    @contextmanager
    def provider(self):
        with FakeProvider() as fake:
            yield fake
"""

ECHO_SUITE = """
class TestEchoConformance(IdleProvider, ChannelConformance):
    channel = "echo"

    def environ(self, provider_url):
        return {"ECHO_TOKEN": TOKEN}

    def inbound(self, provider_message_id, sender, text):
        return echo_webhook(provider_message_id, sender, text)

    def forge(self, call):
        return attrs.evolve(call, headers={**call.headers, "X-Echo-Token": "not-the-token"})

    def unsign(self, call):
        headers = {k: v for k, v in call.headers.items() if k != "X-Echo-Token"}
        return attrs.evolve(call, headers=headers)

    def unconfigured_environ(self):
        return {"ECHO_TOKEN": None}
"""

WRONG_ECHO_SUITE = """
class TestWrongEchoConformance(IdleProvider, ChannelConformance):
    channel = "echo"

    def environ(self, provider_url):
        return {"ECHO_TOKEN": TOKEN}

    def inbound(self, provider_message_id, sender, text):
        return echo_webhook(provider_message_id, sender, text, token="a-token-echo-refuses")
"""

HEALTHONLY_SUITE = """
class TestHealthOnlyConformance(IdleProvider, ChannelConformance):
    channel = "healthonly"

    def environ(self, provider_url):
        return {}
"""

NOT_INSTALLED_SUITE = """
class TestMissingConformance(IdleProvider, ChannelConformance):
    channel = "nosuchchannel"

    def environ(self, provider_url):
        return {}
"""

PLAIN_TEST = """
def test_plain():
    assert 1 + 1 == 2
"""


def run_pytest(workdir: Path, site: Path, files: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Run pytest in a project of its own (``workdir``) holding ``files``, with the fixture
    channels of ``site`` installed; returns each test's outcome and message by name."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (workdir / name).write_text(textwrap.dedent(text))
    report = workdir / "report.xml"
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}", "."],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.exists(), run.stdout + run.stderr
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        name = f"{case.get('classname', '').rpartition('.')[2]}::{case.get('name')}"
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome = kind
                message = (element.get("message") or "") + (element.text or "")
        outcomes[name] = (outcome, message)
    return outcomes


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """One pytest run of a channel author's project, with the echo and health-only fixture
    channels installed: conformance suites for a conforming channel, a wrongly signed one,
    a health-only one and one never installed, beside a plain test that uses none of the
    kit.

    Made once per test session: a parallel run may hand this module's tests to several
    workers, and the run (a pip install and a whole pytest session) takes a minute. The
    first worker makes it under a lock in the session's shared temporary folder; the
    others read what it recorded."""
    shared = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:  # each worker's folder is in the session's
        shared = shared.parent
    recorded = shared / "kit-outcomes.json"
    with (shared / "kit-outcomes.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not recorded.exists():
            site = install_distributions(
                tmp_path_factory.mktemp("kit-site") / "packages", "echo", "healthonly"
            )
            files = {
                "test_echo.py": CONFORMANCE_PREAMBLE + ECHO_SUITE,
                "test_wrong_echo.py": CONFORMANCE_PREAMBLE + WRONG_ECHO_SUITE,
                "test_healthonly.py": CONFORMANCE_PREAMBLE + HEALTHONLY_SUITE,
                "test_missing.py": CONFORMANCE_PREAMBLE + NOT_INSTALLED_SUITE,
                "test_plain.py": PLAIN_TEST,
            }
            ran = run_pytest(tmp_path_factory.mktemp("author-project"), site, files)
            recorded.write_text(json.dumps(ran))
    return {name: (kept[0], kept[1]) for name, kept in json.loads(recorded.read_text()).items()}


def outcome(outcomes: dict[str, tuple[str, str]], name: str) -> tuple[str, str]:
    assert name in outcomes, f"{name} was not run; ran: {sorted(outcomes)}"
    return outcomes[name]


def test_kit_plugin_leaves_plain_test_runs_alone(outcomes):
    """A project whose tests use nothing of the kit runs as before with the plugin loaded,
    and the base class is not collected as tests of its own."""
    assert outcome(outcomes, "test_plain::test_plain") == ("passed", "")
    assert not [name for name in outcomes if name.startswith("ChannelConformance::")]


@pytest.mark.parametrize(
    "test",
    [
        "test_hook_implementations_match_the_hookspecs",
        "test_missing_hooks_answer_501",
        "test_webhook_message_is_stored",
        "test_retried_webhook_is_stored_once",
        "test_forged_signature_is_refused",
        "test_unsigned_webhook_is_refused",
        "test_health_report_has_the_documented_shape",
        "test_unconfigured_server_starts_and_health_says_why",
    ],
)
def test_conforming_channel_passes(outcomes, test):
    """The echo channel (token-authenticated, no status hook) passes each applicable test
    of the suite, its missing status hook answering 501."""
    assert outcome(outcomes, f"TestEchoConformance::{test}") == ("passed", "")


def test_status_test_skipped_without_status_hook_or_callbacks(outcomes):
    """A channel with no status hook whose test defines no status() skips the status test,
    saying why."""
    result, message = outcome(outcomes, "TestEchoConformance::test_status_moves_forward_only")
    assert result == "skipped"
    assert "does not implement the status hook" in message


def test_wrong_signing_fails_naming_the_answer(outcomes):
    """Webhooks the channel refuses fail the round trip with the status and body it answered,
    and the default forge() says why it cannot tell the signing headers apart."""
    result, message = outcome(outcomes, "TestWrongEchoConformance::test_webhook_message_is_stored")
    assert result == "failure"
    assert "answered 403" in message and "webhook_rejected" in message
    result, message = outcome(
        outcomes, "TestWrongEchoConformance::test_forged_signature_is_refused"
    )
    assert result == "failure"
    assert "define forge(call)" in message


def test_health_only_channel_answers_501_and_skips_webhook_tests(outcomes):
    """A channel with only a health hook passes the 501 test (receive, status and send
    missing) and skips the tests that need a webhook, each naming the missing hook."""
    assert outcome(outcomes, "TestHealthOnlyConformance::test_missing_hooks_answer_501") == (
        "passed",
        "",
    )
    result, message = outcome(outcomes, "TestHealthOnlyConformance::test_webhook_message_is_stored")
    assert result == "skipped" and "does not implement receive" in message


def test_health_ok_without_settings_fails_saying_so(outcomes):
    """A channel that reports ok with none of its settings fails the unconfigured test with
    a message saying health must say ok=false."""
    result, message = outcome(
        outcomes, "TestHealthOnlyConformance::test_unconfigured_server_starts_and_health_says_why"
    )
    assert result == "failure"
    assert "must say ok=false" in message


def test_channel_not_installed_errors_saying_install_it(outcomes):
    """A suite for a channel whose distribution is not installed errors at once, saying to
    install it."""
    result, message = outcome(outcomes, "TestMissingConformance::test_webhook_message_is_stored")
    assert result == "error"
    assert "no entry point 'nosuchchannel'" in message and "pip install -e ." in message


# the fixtures, in this very run (the plugin is loaded wherever the core is installed) -----


def test_omnichannel_server_loads_only_the_named_channels(omnichannel_server):
    """``omnichannel_server(env, channels=[...])`` starts the real server with just those
    channels and the given settings; its client carries the API key."""
    server = omnichannel_server({"WEBHOOK_SECRET": WEBHOOK_SECRET}, channels=["http"])
    with server.client() as client:
        report = client.get("/api/plugins").json()
        health = client.get("/api/channels/http/health").json()
    assert [item["name"] for item in report["items"] if item["kind"] == "channel"] == ["http"]
    assert health["checks"] == {"missing": ["HTTP_CHANNEL_SEND_URL"]}


def test_fake_provider_records_and_answers_from_its_script(fake_provider):
    """``fake_provider`` listens on loopback, records each request and answers from its
    script, then with its default."""
    fake_provider.queue(ScriptedResponse.json(201, {"id": "first"}))
    first = httpx.post(fake_provider.url + "/messages", json={"to": "a"})
    second = httpx.post(fake_provider.url + "/messages", json={"to": "b"})
    assert (first.status_code, first.json()) == (201, {"id": "first"})
    assert (second.status_code, second.json()) == (200, {})
    assert [request.json() for request in fake_provider.requests] == [{"to": "a"}, {"to": "b"}]


class StubChannel:
    """A channel built in the test, never packaged: its health repeats a setting."""

    @hookimpl
    def health(self, config) -> ChannelHealth:
        return ChannelHealth(ok=True, detail=config.environ.get("STUB_DETAIL", "unset"))


def test_omnichannel_app_serves_an_unpackaged_channel(omnichannel_app):
    """``omnichannel_app(channels, environ)`` builds the app in-process with a channel
    object and its settings; ``run`` drives it, authenticated with ``app.headers``."""
    app = omnichannel_app({"stub": StubChannel()}, environ={"STUB_DETAIL": "from environ"})
    seen = {}

    async def scenario(conductor: testing.ASGIConductor) -> None:
        result = await conductor.simulate_get("/api/channels/stub/health", headers=app.headers)
        seen["health"] = (result.status_code, result.json["detail"])

    app.run(scenario)
    assert seen["health"] == (200, "from environ")


# a module's store on both backends -----------------------------------------------------------


class Tally:
    """A store that counts in a table of its own and logs an event in the same write."""

    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database

    async def add(self) -> int:
        def write(connection: sqlite3.Connection) -> int:
            connection.execute("UPDATE kit_tally SET n = n + 1")
            append_event(connection, "tally.added", "t1")
            return connection.execute("SELECT n FROM kit_tally").fetchone()[0]

        return await self.database.write(write)


class FirestoreTally:
    """The same on Firestore: a counter document."""

    def __init__(self, database: Any) -> None:
        self.database = database

    async def add(self) -> int:
        reference = self.database.collection("kit_tally").document("n")

        async def body(transaction: Any) -> int:
            (snapshot,) = await transaction.get(reference)
            n = (snapshot.get("n") if snapshot.exists else 0) + 1
            transaction.set(reference, {"n": n})
            return n

        return await self.database.transact(("kit_tally",), body)


TALLY = StoreSpec(
    "kit_tally",
    Tally,
    sqlite=Tally,
    firestore=FirestoreTally,
    sqlite_migrations=(
        "CREATE TABLE kit_tally (n INTEGER NOT NULL); INSERT INTO kit_tally (n) VALUES (0)",
    ),
)


@pytest.fixture(params=["sqlite", "firestore"])
def database(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(f"{request.param}_database")


def test_run_store_builds_a_module_store_on_each_backend(database):
    """``run_store(spec, database, scenario)`` migrates a fresh database of either backend
    (the kit's ``sqlite_database`` and ``firestore_database``), builds the module's store
    with that backend's factory, hands it to the scenario and returns what it returns; the
    kernel's stores are there (a write may log an event). A second run on a database of the
    same place sees what the first wrote."""

    async def add_twice(store: Any) -> list[int]:
        return [await store.add(), await store.add()]

    assert run_store(TALLY, database, add_twice) == [1, 2]
    again = type(database)(database.path) if database.backend == "sqlite" else database
    assert run_store(TALLY, again, add_twice) == [3, 4]


def test_run_store_refuses_a_backend_the_store_lacks(sqlite_database):
    """A spec without a factory for the database's backend is refused, naming both."""
    only_firestore = StoreSpec("kit_tally", Tally, firestore=FirestoreTally)
    with pytest.raises(ValueError, match="'kit_tally' has no sqlite implementation"):
        run_store(only_firestore, sqlite_database, lambda store: store.add())


# the server without its job runner, and a worker beside it -----------------------------------

JOB_PLUGIN = """
import os
from datetime import timedelta
from pathlib import Path

from omnichannel_core import hookimpl
from omnichannel_core.module import Job


@hookimpl
def register_jobs():
    async def tick(control):
        with Path(os.environ["KIT_TICKS"]).open("a") as ticks:
            ticks.write(f"{os.getpid()}\\n")

    return [Job("kit.tick", tick, every=timedelta(milliseconds=200))]
"""


def _ticks(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _wait_for(check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_server_without_job_runner_and_a_separate_worker(tmp_path):
    """``running_server(..., job_runner=False)`` is ``omnichannel serve --no-worker``: no job
    runs; ``running_worker(server)`` runs them in an ``omnichannel worker`` process of its
    own on the server's store (``/health`` sees its lease), and stops it by its PID."""
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "kit_ticker.py").write_text(JOB_PLUGIN)
    ticks = tmp_path / "ticks"
    with running_server(tmp_path, {"KIT_TICKS": str(ticks)}, job_runner=False) as server:
        assert "--no-worker" in server.command()
        time.sleep(1)  # five periods: a runner, if one ran, would have ticked by now
        assert _ticks(ticks) == []
        with server.client() as client, running_worker(server) as worker:
            _wait_for(lambda: len(_ticks(ticks)) >= 2)
            assert set(_ticks(ticks)) == {str(worker.pid)}
            assert client.get("/health").json()["jobs"]["kit.tick"]["running"] is True
        assert worker.process is not None and worker.process.returncode == 0
        with server.client() as client:
            assert client.get("/health").json()["jobs"]["kit.tick"]["running"] is False


def test_plugin_module_imports_nothing_heavy():
    """Loading the pytest plugin imports neither the app, the server helpers nor their HTTP
    libraries: it costs nothing in runs that do not use the fixtures."""
    code = (
        "import sys, pytest; before = set(sys.modules);"
        "import omnichannel_core.testing.plugin;"
        "print(sorted(set(sys.modules) - before))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    for heavy in ("httpx", "falcon", "omnichannel_core.app", "omnichannel_core.testing.server"):
        assert f"'{heavy}'" not in loaded, loaded


class MisspeltHook:
    """A channel whose hook name is a typo, marked optional so pluggy alone lets it pass."""

    @hookimpl(optionalhook=True)
    def recieve(self, request):
        return None


class ExtraArgument:
    """A channel whose ``send`` asks for an argument the hookspec does not pass."""

    @hookimpl
    def send(self, message, retries):
        return None


def test_hook_check_names_a_misspelt_hook():
    """The hook check names an implementation whose name is no hook, even one pluggy would
    let through as optional, and lists the real hooks."""
    (problem,) = hookspec_problems("typo", MisspeltHook())
    assert "marks recieve with @hookimpl, but 'recieve' is no hook" in problem
    assert "receive" in problem.rpartition("the hooks are")[2]


def test_hook_check_names_an_argument_the_spec_lacks():
    """The hook check reports, by argument, an implementation taking what its hookspec does
    not pass (pluggy's own validation); a conforming channel has no problem."""
    (problem,) = hookspec_problems("extra", ExtraArgument())
    assert "retries" in problem
    assert hookspec_problems("stub", StubChannel()) == []


def test_server_env_needs_nothing_for_an_installed_plugin(server_env):
    """The kit's ``server_env`` is empty: an installed plugin needs nothing more in a test
    server's environment (a repository testing an uninstalled one overrides it, as the
    greeter's conftest does)."""
    assert server_env == {}


def test_a_plugin_given_to_run_app_stands_in_for_the_installed_one(tmp_path):
    """Given a channel named like an installed one (``http``, the core's), run_app loads the
    object given and leaves the installed one out: nothing fails as registered twice."""

    class Stand:
        @hookimpl
        def health(self) -> ChannelHealth:
            return ChannelHealth(ok=True, detail="the stand-in")

    async def scenario(conductor):
        plugins = (await conductor.simulate_get("/api/plugins", headers=AUTH)).json
        assert plugins["failed"] == []
        [http] = [item for item in plugins["items"] if item["name"] == "http"]
        assert http["source"] == "<extra>"
        health = await conductor.simulate_get("/api/channels/http/health", headers=AUTH)
        assert health.json["detail"] == "the stand-in"

    run_app(tmp_path, {"http": Stand()}, scenario)

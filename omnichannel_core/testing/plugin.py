"""pytest fixtures for testing channels, modules and plugins, registered through the
``pytest11`` entry point ``omnichannel``: any test run where omnichannel-core is installed
has them.

pytest imports this module at start-up in every such run, whether or not a test uses the
fixtures, so it imports nothing but pytest here: the server, the fake provider and the
app are imported when a fixture is first used. Turn the plugin off with
``-p no:omnichannel``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from omnichannel_core.store.firestore.database import FirestoreDatabase
    from omnichannel_core.store.sqlite.database import SqliteDatabase
    from omnichannel_core.testing.emulators import Emulator
    from omnichannel_core.testing.fake_provider import FakeProvider
    from omnichannel_core.testing.in_process import InProcessApp
    from omnichannel_core.testing.server import ServerProcess

    StartServer = Callable[..., ServerProcess]
    BuildApp = Callable[..., InProcessApp]


@pytest.fixture
def omnichannel_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartServer]:
    """Start the real server (gunicorn) with the given environment; stopped at teardown.

    ``omnichannel_server(env=None, *, channels=None, workers=1) -> ServerProcess``: ``env``
    adds to (None removes from) the test run's environment; ``channels`` names the only
    channels to load (default: every installed one). ``server.client()`` sends the API key.
    """
    from omnichannel_core.testing.server import ServerProcess, channels_except

    started: list[ServerProcess] = []

    def start(
        env: Mapping[str, str | None] | None = None,
        *,
        channels: Iterable[str] | None = None,
        workers: int = 1,
    ) -> ServerProcess:
        disabled = "" if channels is None else channels_except(channels)
        server = ServerProcess(
            tmp_path_factory.mktemp("omnichannel-server"),
            {"OMNICHANNEL_DISABLE_PLUGINS": disabled, **(env or {})},
            workers=workers,
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    """A fake provider API on loopback (``.url``), recording requests (``.requests``) and
    answering ``200 {}`` unless scripted (``.queue(ScriptedResponse(...))``)."""
    from omnichannel_core.testing.fake_provider import FakeProvider

    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def omnichannel_app(tmp_path_factory: pytest.TempPathFactory) -> BuildApp:
    """Build the app in-process with the given channels, on a SQLite store of its own.

    ``omnichannel_app(channels, environ=None, **settings) -> InProcessApp``: ``channels``
    maps a channel name to its plugin (module or object, no packaging needed); ``environ``
    is what ``config.environ`` holds (the channels' settings); ``settings`` are further
    ``Config`` fields. ``app.run(scenario)`` runs ``async def scenario(conductor)``.
    """
    from omnichannel_core.testing.in_process import InProcessApp

    def build(
        channels: Mapping[str, object],
        environ: Mapping[str, str] | None = None,
        **settings: Any,
    ) -> InProcessApp:
        return InProcessApp(
            tmp_path_factory.mktemp("omnichannel-app"),
            dict(channels),
            dict(environ or {}),
            settings,
        )

    return build


# Databases for a module's store tests -------------------------------------------------------


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The official Firestore emulator (``gcloud``, with its emulator component and Java),
    started once per session when a test first asks, stopped at the end. A machine that
    cannot run it fails the tests that need it, saying why: never a silent skip."""
    from omnichannel_core.testing.emulators import start_firestore

    emulator = _start_or_fail(start_firestore, tmp_path_factory.mktemp("firestore-emulator"))
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The official Pub/Sub emulator, started once per session when a test first asks."""
    from omnichannel_core.testing.emulators import start_pubsub

    emulator = _start_or_fail(start_pubsub, tmp_path_factory.mktemp("pubsub-emulator"))
    yield emulator
    emulator.stop()


def _start_or_fail(start: Callable[[Path], Emulator], workdir: Path) -> Emulator:
    """Starts an emulator; if it cannot run, fails the requesting test with the reason alone."""
    from omnichannel_core.testing.emulators import EmulatorError

    try:
        return start(workdir)
    except EmulatorError as error:
        reason = str(error)
    pytest.fail(reason, pytrace=False)


@pytest.fixture(scope="session")
def server_env() -> dict[str, str]:
    """What a test server's environment needs on top of the test's own settings to load the
    plugin under test: nothing when it is installed (``pip install -e .``). A repository
    that tests an uninstalled distribution overrides it (omnichannel's own tests of the
    greeter point ``PYTHONPATH`` at a private install)."""
    return {}


@pytest.fixture
def firestore_project() -> str:
    """A project id no other test uses, so a test starts from an empty database without a
    reset. The emulator serves any ``demo-`` project without credentials."""
    return f"demo-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sqlite_database(tmp_path: Path) -> SqliteDatabase:
    """A fresh SQLite database in the test's folder (built, not opened: give it to
    :func:`~omnichannel_core.testing.stores.run_store`)."""
    from omnichannel_core.store.sqlite.database import SqliteDatabase

    return SqliteDatabase(tmp_path / "store.db")


@pytest.fixture
def firestore_database(
    firestore_emulator: Emulator, firestore_project: str, monkeypatch: pytest.MonkeyPatch
) -> FirestoreDatabase:
    """A fresh Firestore database: a project of its own on the emulator (built, not opened:
    give it to :func:`~omnichannel_core.testing.stores.run_store`)."""
    try:
        from omnichannel_core.store.firestore.database import FirestoreDatabase
    except ImportError as error:
        pytest.fail(
            f"the Firestore store needs omnichannel-core's gcp extra ({error}): install"
            " omnichannel-core with [gcp], e.g. pip install -e '/path/to/omnichannel[gcp]'",
            pytrace=False,
        )
    from omnichannel_core.testing.emulators import use_firestore_emulator

    use_firestore_emulator(monkeypatch, firestore_emulator.host_port)
    return FirestoreDatabase(firestore_project)

"""pytest fixtures for testing channels, modules and plugins, registered through the
``pytest11`` entry point ``omnichannel``: any test run where omnichannel-core is installed
has them.

pytest imports this module at start-up in every such run, whether or not a test uses the
fixtures, so it imports nothing but pytest here: the server, the fake provider and the
app are imported when a fixture is first used. Turn the plugin off with
``-p no:omnichannel``.

Under pytest-xdist (``pytest -n N``) the workers of a run share one Firestore and one Pub/Sub
emulator instead of starting one each: the controller hands every worker a folder
(:func:`pytest_configure_node`) where the first worker to need an emulator records it, and
stops them when the run ends (:func:`pytest_unconfigure`); see
`omnichannel_core.testing.emulators`. A test marked ``@pytest.mark.alone`` (a benchmark, a
test of pacing or of a deadline under a second) runs while no other test of the run does
(:func:`pytest_runtest_protocol`): it measures what it would measure in a serial run.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
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


# Parallel runs (pytest-xdist) ---------------------------------------------------------------


SHARED_FOLDER = "omnichannel_shared_folder"
"""The key of xdist's ``workerinput`` naming the folder where workers record shared emulators."""

_shared_folder = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "alone: run while no other test of a parallel run (pytest-xdist) runs: for "
        "benchmarks and tests of timing, which the other workers' load would distort",
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """In an xdist worker, run the test (setup, call, teardown) holding the run's turn: a
    test marked ``alone`` holds it alone, any other shares it. Outermost (``tryfirst``), so
    the wait for the turn is not counted by pytest-timeout."""
    shared = getattr(item.config, "workerinput", {}).get(SHARED_FOLDER)
    if shared is None:
        return (yield)
    with _turn(Path(shared), alone=item.get_closest_marker("alone") is not None):
        return (yield)


@contextlib.contextmanager
def _turn(folder: Path, *, alone: bool) -> Iterator[None]:
    """A readers-writer lock of two ``flock`` files, writers first: a test passes the gate
    (shared; exclusive for a test that runs alone) to take the running lock (the same), and
    any other test lets go of the gate at once. A test waiting to run alone holds the gate,
    so no new test starts, while those running finish."""
    import fcntl  # POSIX only, like the rest of the kit: not imported until a parallel run

    mode = fcntl.LOCK_EX if alone else fcntl.LOCK_SH
    with (folder / "gate.lock").open("a") as gate, (folder / "running.lock").open("a") as running:
        fcntl.flock(gate, mode)
        fcntl.flock(running, mode)
        if not alone:
            fcntl.flock(gate, fcntl.LOCK_UN)
        yield  # both are released when the files close


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist's controller, for each worker it starts: hand it the run's shared folder (made
    for the first worker)."""
    stash = node.config.stash
    if _shared_folder not in stash:
        stash[_shared_folder] = Path(tempfile.mkdtemp(prefix="omnichannel-pytest-"))
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _interrupted)
    node.workerinput[SHARED_FOLDER] = str(stash[_shared_folder])


def _interrupted(signum: int, frame: object) -> None:
    """A run killed with SIGTERM (``timeout``, a cancelled CI job) ends as one interrupted with
    Ctrl-C: :func:`pytest_unconfigure` still runs and stops the shared emulators, which no
    worker stops (they outlive their workers on purpose)."""
    raise KeyboardInterrupt


def pytest_unconfigure(config: pytest.Config) -> None:
    """xdist's controller, after every worker finished: stop the emulators they shared."""
    folder = config.stash.get(_shared_folder, None)
    if folder is None:
        return
    from omnichannel_core.testing.emulators import stop_shared_emulators

    stop_shared_emulators(folder)
    shutil.rmtree(folder, ignore_errors=True)


# Databases for a module's store tests -------------------------------------------------------


@pytest.fixture(scope="session")
def firestore_emulator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Emulator]:
    """The official Firestore emulator (``gcloud``, with its emulator component and Java),
    started once per session when a test first asks, stopped at the end (one for all the
    workers of a parallel run). A machine that cannot run it fails the tests that need it,
    saying why: never a silent skip."""
    from omnichannel_core.testing.emulators import start_firestore

    yield from _emulator(request, tmp_path_factory, "firestore", start_firestore)


@pytest.fixture(scope="session")
def pubsub_emulator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Emulator]:
    """The official Pub/Sub emulator, started once per session when a test first asks (one
    for all the workers of a parallel run)."""
    from omnichannel_core.testing.emulators import start_pubsub

    yield from _emulator(request, tmp_path_factory, "pubsub", start_pubsub)


def _emulator(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    start: Callable[[Path], Emulator],
) -> Iterator[Emulator]:
    """This session's emulator: the one the workers of an xdist run share (the controller
    stops it), or one of its own, stopped at the end. If it cannot run, the requesting test
    fails with the reason alone."""
    from omnichannel_core.testing.emulators import EmulatorError, shared_emulator

    shared = getattr(request.config, "workerinput", {}).get(SHARED_FOLDER)
    try:
        if shared is not None:
            emulator = shared_emulator(name, start, Path(shared))
        else:
            emulator = start(tmp_path_factory.mktemp(f"{name}-emulator"))
    except EmulatorError as error:
        pytest.fail(str(error), pytrace=False)
    yield emulator
    if shared is None:
        emulator.stop()


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

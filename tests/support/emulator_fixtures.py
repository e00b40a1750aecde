"""pytest fixtures for the Firestore and Pub/Sub emulators (a plugin: register it with
``pytest_plugins`` in the root conftest).

Each emulator starts once per session, and only if a test asks for it. There is no skip: a
machine that cannot run the emulators fails the tests that need them, with the reason, because
a silently skipped real component is a test that never ran.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import firebase_admin
import pytest
from google.auth.credentials import AnonymousCredentials

from tests.support.emulators import Emulator, EmulatorError, start_firestore, start_pubsub


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The official Firestore emulator, shared by the whole session."""
    emulator = _start_or_fail(start_firestore, tmp_path_factory.mktemp("firestore-emulator"))
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The official Pub/Sub emulator, shared by the whole session."""
    emulator = _start_or_fail(start_pubsub, tmp_path_factory.mktemp("pubsub-emulator"))
    yield emulator
    emulator.stop()


def _start_or_fail(start: Callable[[Path], Emulator], workdir: Path) -> Emulator:
    """Starts an emulator; if it cannot run, fails the requesting test with the reason alone."""
    try:
        return start(workdir)
    except EmulatorError as error:
        reason = str(error)
    pytest.fail(reason, pytrace=False)


@pytest.fixture
def firestore_project() -> str:
    """A project id no other test uses, so a test starts from an empty database and its own
    rules without a reset. The emulator serves any ``demo-`` project without credentials."""
    return f"demo-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def firestore_app(
    firestore_emulator: Emulator, firestore_project: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[firebase_admin.App]:
    """A firebase-admin app on the emulator, for the test's project.

    ``FIRESTORE_EMULATOR_HOST`` is read when a Firestore client is constructed, so it is set
    only for this test (monkeypatch) and clients made from the app keep the address after.
    The app is named after the project, so apps of different tests never collide in
    firebase-admin's global registry, and it is deleted afterwards.
    """
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host_port)
    app = firebase_admin.initialize_app(
        AnonymousCredentials(), options={"projectId": firestore_project}, name=firestore_project
    )
    yield app
    firebase_admin.delete_app(app)

"""pytest fixtures for the core's own Firestore tests (a plugin: register it with
``pytest_plugins`` in the root conftest).

The emulators themselves (``firestore_emulator``, ``pubsub_emulator``) and
``firestore_project`` are the kit's fixtures (`omnichannel_core.testing.plugin`), which any
module's tests have too; what only the core's tests need is here.
"""

from __future__ import annotations

from collections.abc import Iterator

import firebase_admin
import pytest
from google.auth.credentials import AnonymousCredentials

from omnichannel_core.testing.emulators import Emulator


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

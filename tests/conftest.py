"""Shared fixtures: a real server per test module, fake providers, signed webhooks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from omnichannel_core.testing.fake_provider import FakeProvider
from omnichannel_core.testing.server import ServerProcess, running_server

WEBHOOK_SECRET = "test-webhook-secret"

# The Firestore and Pub/Sub emulators: started once per session, when a test first asks.
pytest_plugins = ["tests.support.emulator_fixtures"]


@pytest.fixture(scope="module")
def receiver() -> Iterator[FakeProvider]:
    """A fake receiver for the generic HTTP channel's outbound messages."""
    with FakeProvider() as provider:
        yield provider


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, receiver: FakeProvider
) -> Iterator[ServerProcess]:
    """The real gunicorn server, configured for the generic HTTP channel, one per module."""
    workdir: Path = tmp_path_factory.mktemp("server")
    env = {"WEBHOOK_SECRET": WEBHOOK_SECRET, "HTTP_CHANNEL_SEND_URL": receiver.url + "/inbound"}
    with running_server(workdir, env) as process:
        yield process

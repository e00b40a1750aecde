"""Fixtures for the Facebook channel's end-to-end tests: a fake Graph API on loopback and the
real gunicorn server configured to call it, one of each per test module."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

# The helpers beside this file (fake_graph, messenger_events) are imported by name: this
# folder is not a package (the core's tests/ owns that name) and pytest runs with
# --import-mode=importlib, which does not put test folders on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

from fake_graph import GRAPH_VERSION, FakeGraph
from messenger_events import (
    APP_SECRET,
    PAGE_ID,
    PAGE_TOKEN,
    VERIFY_TOKEN,
    WRONG_SECRET,
    WRONG_TOKEN,
)

from omnichannel_core.testing.inbox_reader import InboxReader
from omnichannel_core.testing.server import (
    ServerProcess,
    channels_except,
    free_port,
    running_server,
)

FACEBOOK_VARIABLES = (
    "FACEBOOK_PAGE_ACCESS_TOKEN",
    "FACEBOOK_APP_SECRET",
    "FACEBOOK_VERIFY_TOKEN",
    "FACEBOOK_GRAPH_API_VERSION",
    "FACEBOOK_GRAPH_API_BASE_URL",
)


def only_facebook() -> dict[str, str]:
    """Every other installed channel disabled, the facebook channel enabled."""
    return {"OMNICHANNEL_DISABLE_PLUGINS": channels_except(["facebook"])}


def facebook_env(graph: FakeGraph, **overrides: str | None) -> dict[str, str | None]:
    """The environment of a server whose Facebook channel calls ``graph``; an override of
    None unsets the variable."""
    return {
        **only_facebook(),
        "FACEBOOK_PAGE_ACCESS_TOKEN": PAGE_TOKEN,
        "FACEBOOK_APP_SECRET": APP_SECRET,
        "FACEBOOK_VERIFY_TOKEN": VERIFY_TOKEN,
        "FACEBOOK_GRAPH_API_VERSION": GRAPH_VERSION,
        "FACEBOOK_GRAPH_API_BASE_URL": graph.url,
        # Attachments are fetched from the fake's CDN only: the tests' fbcdn.net URLs are
        # never looked up, nor fetched from Facebook.
        "FACEBOOK_MEDIA_HOSTS": "127.0.0.1",
        **overrides,
    }


@pytest.fixture(scope="module")
def fake_graph() -> Iterator[FakeGraph]:
    """The fake Graph API, one per test module."""
    with FakeGraph(PAGE_TOKEN, APP_SECRET, PAGE_ID) as graph:
        yield graph


@pytest.fixture(autouse=True)
def _forget_unused_script(request: pytest.FixtureRequest) -> Iterator[None]:
    """A scripted answer a test did not use must not leak into the next test (only for tests
    that use the fake, so unit tests beside these start no server)."""
    yield
    if "fake_graph" in request.fixturenames:
        request.getfixturevalue("fake_graph").reset()


@pytest.fixture(scope="module")
def facebook_server(
    tmp_path_factory: pytest.TempPathFactory, fake_graph: FakeGraph
) -> Iterator[ServerProcess]:
    """The real server with the Facebook channel configured against the fake."""
    with running_server(tmp_path_factory.mktemp("facebook"), facebook_env(fake_graph)) as server:
        yield server


@pytest.fixture(scope="module")
def debug_server(
    tmp_path_factory: pytest.TempPathFactory, fake_graph: FakeGraph
) -> Iterator[ServerProcess]:
    """The configured server logging at debug level (JSON lines)."""
    env = facebook_env(fake_graph, OMNICHANNEL_LOG_LEVEL="debug")
    with running_server(tmp_path_factory.mktemp("debug"), env) as server:
        yield server


@pytest.fixture(scope="module")
def unconfigured_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real server with the Facebook channel loaded but no FACEBOOK_* variables set."""
    env = {**only_facebook(), **dict.fromkeys(FACEBOOK_VARIABLES)}
    with running_server(tmp_path_factory.mktemp("unconfigured"), env) as server:
        yield server


@pytest.fixture(scope="module")
def wrong_token_server(
    tmp_path_factory: pytest.TempPathFactory, fake_graph: FakeGraph
) -> Iterator[ServerProcess]:
    """Configured, but with a page token the (fake) Graph API refuses."""
    env = facebook_env(fake_graph, FACEBOOK_PAGE_ACCESS_TOKEN=WRONG_TOKEN)
    with running_server(tmp_path_factory.mktemp("wrong-token"), env) as server:
        yield server


@pytest.fixture(scope="module")
def wrong_secret_server(
    tmp_path_factory: pytest.TempPathFactory, fake_graph: FakeGraph
) -> Iterator[ServerProcess]:
    """Configured, but with an app secret that is not the app's: every appsecret_proof is
    wrong."""
    env = facebook_env(fake_graph, FACEBOOK_APP_SECRET=WRONG_SECRET)
    with running_server(tmp_path_factory.mktemp("wrong-secret"), env) as server:
        yield server


@pytest.fixture(scope="module")
def unreachable_server(
    tmp_path_factory: pytest.TempPathFactory, fake_graph: FakeGraph
) -> Iterator[ServerProcess]:
    """Configured, with the Graph API base URL on a loopback port nobody listens on."""
    env = facebook_env(fake_graph, FACEBOOK_GRAPH_API_BASE_URL=f"http://127.0.0.1:{free_port()}")
    with running_server(tmp_path_factory.mktemp("unreachable"), env) as server:
        yield server


@pytest.fixture(scope="module")
def media_server(
    tmp_path_factory: pytest.TempPathFactory, fake_graph: FakeGraph
) -> Iterator[ServerProcess]:
    """The real server against the fake Graph API, allowed to fetch from loopback, where
    the fake's CDN is (FACEBOOK_MEDIA_HOSTS=127.0.0.1, from facebook_env)."""
    env = facebook_env(
        fake_graph,
        OMNICHANNEL_MEDIA_FETCH_PRIVATE="1",
        OMNICHANNEL_MEDIA_FETCH_RETRY_SECONDS="2",
    )
    with running_server(tmp_path_factory.mktemp("facebook-media"), env) as server:
        yield server


@pytest.fixture
def client(facebook_server: ServerProcess) -> Iterator[httpx.Client]:
    """An authenticated client of the configured server."""
    with facebook_server.client() as client:
        yield client


@pytest.fixture
def inbox(client: httpx.Client) -> InboxReader:
    """What the configured server stored, read through its API."""
    return InboxReader(client, "facebook")

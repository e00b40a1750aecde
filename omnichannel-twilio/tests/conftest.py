"""Fixtures for the Twilio channel's end-to-end tests: a fake Twilio REST API on loopback and
the real gunicorn server configured to call it, one of each per test module."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

# The helpers beside this file (fake_twilio, twilio_signing) are imported by name: this
# folder is not a package (the core's tests/ owns that name) and pytest runs with
# --import-mode=importlib, which does not put test folders on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

from fake_twilio import FakeTwilio
from twilio_servers import ENABLE_ALL_CHANNELS, serving, twilio_env
from twilio_signing import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    MESSAGING_SERVICE_SID,
    PUBLIC_URL,
    WRONG_TOKEN,
)

from omnichannel_core.testing.inbox_reader import InboxReader
from omnichannel_core.testing.server import (
    ServerProcess,
    free_port,
)

TWILIO_VARIABLES = (
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_PHONE_NUMBER",
    "TWILIO_WHATSAPP_NUMBER",
    "TWILIO_MESSAGING_SERVICE_SID",
    "TWILIO_API_BASE_URL",
)


@pytest.fixture(scope="module")
def fake_twilio() -> Iterator[FakeTwilio]:
    """The fake Twilio REST API, one per test module."""
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _forget_unused_script(request: pytest.FixtureRequest) -> Iterator[None]:
    """A scripted answer a test did not use must not leak into the next test (only for tests
    that use the fake, so unit tests beside these start no server)."""
    yield
    if "fake_twilio" in request.fixturenames:
        request.getfixturevalue("fake_twilio").reset()


@pytest.fixture(scope="module")
def twilio_server(
    tmp_path_factory: pytest.TempPathFactory, fake_twilio: FakeTwilio
) -> Iterator[ServerProcess]:
    """The real server with the Twilio channel configured against the fake; signatures are
    computed over OMNICHANNEL_PUBLIC_URL while the server is reached on loopback."""
    with serving(tmp_path_factory.mktemp("twilio"), twilio_env(fake_twilio)) as server:
        yield server


@pytest.fixture(scope="module")
def unconfigured_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real server with the Twilio channel loaded but no TWILIO_* variables set."""
    unset = dict.fromkeys(TWILIO_VARIABLES)  # None removes a variable the caller may have set
    env = {**ENABLE_ALL_CHANNELS, "OMNICHANNEL_PUBLIC_URL": PUBLIC_URL, **unset}
    with serving(tmp_path_factory.mktemp("unconfigured"), env) as server:
        yield server


@pytest.fixture(scope="module")
def wrong_token_server(
    tmp_path_factory: pytest.TempPathFactory, fake_twilio: FakeTwilio
) -> Iterator[ServerProcess]:
    """Configured, but with an auth token the (fake) Twilio API refuses."""
    env = twilio_env(fake_twilio, TWILIO_AUTH_TOKEN=WRONG_TOKEN)
    with serving(tmp_path_factory.mktemp("wrong-token"), env) as server:
        yield server


@pytest.fixture(scope="module")
def unreachable_server(
    tmp_path_factory: pytest.TempPathFactory, fake_twilio: FakeTwilio
) -> Iterator[ServerProcess]:
    """Configured, with TWILIO_API_BASE_URL pointing at a loopback port nobody listens on;
    the outbox gives up retrying a Twilio send 2 s after it was queued."""
    env = twilio_env(
        fake_twilio,
        TWILIO_API_BASE_URL=f"http://127.0.0.1:{free_port()}",
        OMNICHANNEL_SEND_RETRY_SECONDS="twilio=2",
    )
    with serving(tmp_path_factory.mktemp("unreachable"), env) as server:
        yield server


@pytest.fixture(scope="module")
def short_deadline_server(
    tmp_path_factory: pytest.TempPathFactory, fake_twilio: FakeTwilio
) -> Iterator[ServerProcess]:
    """Configured against the fake, with the outbox's deadlines for Twilio cut short:
    retryable failures are retried for 2 s after the message was queued, a message in doubt
    waits 1 s for its callback."""
    env = twilio_env(
        fake_twilio,
        OMNICHANNEL_SEND_RETRY_SECONDS="twilio=2",
        OMNICHANNEL_SEND_CONFIRM_SECONDS="twilio=1",
    )
    with serving(tmp_path_factory.mktemp("short-deadlines"), env) as server:
        yield server


@pytest.fixture(scope="module")
def paced_server(
    tmp_path_factory: pytest.TempPathFactory, fake_twilio: FakeTwilio
) -> Iterator[ServerProcess]:
    """Configured against the fake, with no OMNICHANNEL_SEND_RATES (the test servers' "*=0"
    removed): sends go at the pace Twilio's send_policy declares."""
    env = twilio_env(fake_twilio, OMNICHANNEL_SEND_RATES=None)
    with serving(tmp_path_factory.mktemp("paced"), env) as server:
        yield server


@pytest.fixture(scope="module")
def loopback_server(
    tmp_path_factory: pytest.TempPathFactory, fake_twilio: FakeTwilio
) -> Iterator[ServerProcess]:
    """No OMNICHANNEL_PUBLIC_URL and no trusted proxy: signatures are checked against the
    URL the server itself was called on."""
    env = twilio_env(fake_twilio, OMNICHANNEL_PUBLIC_URL=None)
    with serving(tmp_path_factory.mktemp("loopback"), env) as server:
        yield server


@pytest.fixture(scope="module")
def proxied_server(
    tmp_path_factory: pytest.TempPathFactory, fake_twilio: FakeTwilio
) -> Iterator[ServerProcess]:
    """No OMNICHANNEL_PUBLIC_URL, OMNICHANNEL_TRUST_PROXY on: the forwarded headers say
    which URL Twilio called."""
    env = twilio_env(fake_twilio, OMNICHANNEL_PUBLIC_URL=None, OMNICHANNEL_TRUST_PROXY="true")
    with serving(tmp_path_factory.mktemp("proxied"), env) as server:
        yield server


@pytest.fixture(scope="module")
def messaging_service_server(
    tmp_path_factory: pytest.TempPathFactory, fake_twilio: FakeTwilio
) -> Iterator[ServerProcess]:
    """SMS through TWILIO_MESSAGING_SERVICE_SID, and no TWILIO_WHATSAPP_NUMBER (WhatsApp
    then sends from TWILIO_PHONE_NUMBER)."""
    env = twilio_env(
        fake_twilio,
        TWILIO_MESSAGING_SERVICE_SID=MESSAGING_SERVICE_SID,
        TWILIO_WHATSAPP_NUMBER=None,
    )
    with serving(tmp_path_factory.mktemp("service"), env) as server:
        yield server


@pytest.fixture(scope="module")
def media_server(
    tmp_path_factory: pytest.TempPathFactory, fake_twilio: FakeTwilio
) -> Iterator[ServerProcess]:
    """The real server against the fake Twilio, allowed to fetch from loopback, with the
    fake's CDN (``localhost``) as Twilio's media host."""
    env = twilio_env(
        fake_twilio,
        OMNICHANNEL_MEDIA_FETCH_PRIVATE="1",
        OMNICHANNEL_MEDIA_FETCH_RETRY_SECONDS="2",
        TWILIO_MEDIA_HOSTS="localhost",
    )
    with serving(tmp_path_factory.mktemp("twilio-media"), env) as server:
        yield server


@pytest.fixture
def client(twilio_server: ServerProcess) -> Iterator[httpx.Client]:
    """An authenticated client of the configured server."""
    with twilio_server.client() as client:
        yield client


@pytest.fixture
def inbox(client: httpx.Client) -> InboxReader:
    """What the configured server stored, read through its API."""
    return InboxReader(client, "twilio")

"""The servers a conformance suite runs against: the real gunicorn server with only the
channel under test loaded, configured against the fake provider and not configured, one
of each per test class, and clients of it as a provider and as an agent's app call it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from importlib.metadata import entry_points

import httpx
import pytest

from omnichannel_core.plugins.loading import CHANNEL_GROUP
from omnichannel_core.testing.channel_under_test import ChannelUnderTest
from omnichannel_core.testing.server import ServerProcess, channels_except, running_server
from omnichannel_core.testing.webhook_call import ProviderFake


class ConformanceServers(ChannelUnderTest):
    """Class-scoped fixtures (``conformance_*``) that start the fake provider and the
    servers for :class:`~omnichannel_core.testing.ChannelConformance`, and check that the
    channel's distribution is installed and loads."""

    def _server_env(self, settings: Mapping[str, str | None]) -> dict[str, str | None]:
        """Only this channel loads, whatever else is installed; then its settings."""
        return {"OMNICHANNEL_DISABLE_PLUGINS": channels_except([self.channel]), **settings}

    def _entry_point_problem(self) -> str | None:
        if not self.channel:
            return (
                f"{type(self).__name__} must set channel = '<entry point name>' (its name in"
                f" the {CHANNEL_GROUP!r} entry point group)"
            )
        if not entry_points(group=CHANNEL_GROUP, name=self.channel):
            return (
                f"no entry point {self.channel!r} in group {CHANNEL_GROUP!r}: install the"
                " channel's distribution (pip install -e .) so the server can load it"
            )
        return None

    def _start(
        self, tmp_path_factory: pytest.TempPathFactory, kind: str, env: Mapping[str, str | None]
    ) -> AbstractContextManager[ServerProcess]:
        problem = self._entry_point_problem()
        if problem:
            pytest.fail(problem, pytrace=False)
        workdir = tmp_path_factory.mktemp(f"conformance-{self.channel}-{kind}")
        return running_server(workdir, self._server_env(env))

    def _loaded_hooks(self, server: ServerProcess) -> frozenset[str]:
        """The hooks the server says the channel implements; fails when it did not load."""
        with server.client() as client:
            report = client.get("/api/plugins").json()
        for failure in report["failed"]:
            if failure["name"] == self.channel:
                pytest.fail(
                    f"channel {self.channel!r} failed to load in the server: {failure['error']}",
                    pytrace=False,
                )
        for item in report["items"]:
            if item["kind"] == "channel" and item["name"] == self.channel:
                return frozenset(item["hooks"])
        pytest.fail(
            f"the server did not load channel {self.channel!r} (loaded: "
            f"{[i['name'] for i in report['items']]}, disabled: {report['disabled']})",
            pytrace=False,
        )

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_provider(cls) -> Iterator[ProviderFake]:
        """The channel's fake provider, one per class."""
        with cls().provider() as fake:
            yield fake

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_server(
        cls, tmp_path_factory: pytest.TempPathFactory, conformance_provider: ProviderFake
    ) -> Iterator[ServerProcess]:
        """The real server with the channel configured against the fake, one per class."""
        suite = cls()  # each test gets its own instance; a class fixture, one of its own
        env = suite.environ(conformance_provider.url)
        with suite._start(tmp_path_factory, "configured", env) as server:
            yield server

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_hooks(cls, conformance_server: ServerProcess) -> frozenset[str]:
        """The hooks the channel implements, as the server loaded it."""
        return cls()._loaded_hooks(conformance_server)

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_api(
        cls, conformance_server: ServerProcess, conformance_hooks: frozenset[str]
    ) -> Iterator[httpx.Client]:
        """A client of the server with the API key, as an agent's app calls it."""
        with conformance_server.client() as client:
            yield client

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_public(
        cls, conformance_server: ServerProcess, conformance_hooks: frozenset[str]
    ) -> Iterator[httpx.Client]:
        """A client of the server without credentials, as a provider calls it."""
        with conformance_server.client(api_key=None) as client:
            yield client

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_unconfigured_server(
        cls, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[ServerProcess]:
        """The real server with the channel installed but none of its settings."""
        suite = cls()
        with suite._start(tmp_path_factory, "unconfigured", suite.unconfigured_environ()) as server:
            yield server

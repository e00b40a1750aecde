"""The real server with the webchat channel, and the site that embeds its widget.

The site is a static page served from another origin (another loopback port), as a
business's site is: the widget must work across origins, and the server must answer CORS
for that origin only.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnichannel_core.testing.emulators import Emulator
from omnichannel_core.testing.server import ServerProcess, channels_except, free_port, serving

IDENTITY_SECRET = "site-identity-secret-0123456789abcdef"
VISITOR_SECRET = "visitor-token-secret-0123456789abcdef"
"""Set, so that tests can make tokens of their own (old, expired) as the server would."""
OTHER_ORIGIN = "http://evil.test"


class Site:
    """A static site on its own loopback port: ``page(name, html)`` writes a page, ``url``
    its address."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"
        handler = _quiet_handler(root)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def page(self, name: str, html: str) -> str:
        (self.root / name).write_text(html)
        return f"{self.origin}/{name}"

    def __enter__(self) -> Site:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _quiet_handler(root: Path) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with Site(tmp_path_factory.mktemp("site"), free_port()) as serving_site:
        yield serving_site


def webchat_env(site_origin: str, **overrides: str | None) -> dict[str, str | None]:
    return {
        "OMNICHANNEL_DISABLE_PLUGINS": channels_except(["webchat"]),
        "WEBCHAT_ALLOWED_ORIGINS": site_origin,
        "WEBCHAT_IDENTITY_SECRET": IDENTITY_SECRET,
        "WEBCHAT_VISITOR_SECRET": VISITOR_SECRET,
        "WEBCHAT_TITLE": "Acme support",
        "OMNICHANNEL_RATE_LIMIT": "100000",
        "WEBCHAT_SESSIONS_PER_MINUTE": "100000",  # the tests' visitors all come from loopback
        **overrides,
    }


@pytest.fixture(scope="session")
def webchat_server(tmp_path_factory: pytest.TempPathFactory, site: Site) -> Iterator[ServerProcess]:
    with serving(tmp_path_factory.mktemp("webchat"), webchat_env(site.origin)) as server:
        yield server


@contextlib.contextmanager
def webchat_serving(
    workdir: Path, site_origin: str, **overrides: str | None
) -> Iterator[ServerProcess]:
    with serving(workdir, webchat_env(site_origin, **overrides)) as server:
        yield server


TWO_SERVERS_JWT_SECRET = "webchat-two-servers-jwt-secret-0123456789abcdef"
"""Shared by both servers, as in production: the visitor key derives from it."""


@pytest.fixture(scope="session")
def two_servers(
    tmp_path_factory: pytest.TempPathFactory,
    firestore_emulator: Emulator,
    pubsub_emulator: Emulator,
    site: Site,
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two servers sharing Firestore and Pub/Sub (their official emulators): one inbox.
    Neither is given ``WEBCHAT_VISITOR_SECRET``: both derive the visitor key from their one
    ``OMNICHANNEL_JWT_SECRET``, as servers deployed side by side do."""
    project = f"demo-webchat-{uuid.uuid4().hex[:10]}"
    env = webchat_env(
        site.origin,
        OMNICHANNEL_STORE=f"firestore://{project}",
        FIRESTORE_EMULATOR_HOST=firestore_emulator.host_port,
        OMNICHANNEL_EVENT_BUS=f"pubsub://{project}/events",
        PUBSUB_EMULATOR_HOST=pubsub_emulator.host_port,
        OMNICHANNEL_JWT_SECRET=TWO_SERVERS_JWT_SECRET,
        WEBCHAT_VISITOR_SECRET=None,  # unset (ServerProcess drops None): derived on both
    )
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(serving(tmp_path_factory.mktemp("webchat-a"), env))
        second = stack.enter_context(serving(tmp_path_factory.mktemp("webchat-b"), env))
        yield first, second

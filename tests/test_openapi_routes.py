"""The OpenAPI document names exactly the routes the app serves, secured as documented and
needing the permissions it documents."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omnichannel_core.app import create_app
from omnichannel_core.config import Config
from omnichannel_core.testing.server import API_KEY, ServerProcess
from omnichannel_core.web.channel_routes import GENERIC_ROUTES, UnknownChannel
from tests.support.openapi_contract import (
    OPERATIONS,
    fetch_document,
    operations,
    running_degraded_server,
)

CHANNEL_ROUTE = re.compile(r"^/api/channels/(?P<channel>[^/{}]+)/(?P<rest>.+)$")


@pytest.fixture(scope="module")
def document(server: ServerProcess) -> dict:
    """The OpenAPI document this module's server serves."""
    return fetch_document(server)


@pytest.fixture(scope="module")
def degraded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose ``http`` channel is not configured, beside a channel (``healthonly``,
    a real pip-installed fixture) that implements only ``health``."""
    with running_degraded_server(tmp_path_factory) as process:
        yield process


def served_operations(app: Any) -> Iterator[tuple[str, str, Any]]:
    """(method, URI template, resource) from the app's compiled router; each channel's generic
    routes under ``/api/channels/{channel}/``, channel-contributed extras left out."""
    channels = _channel_names(app)
    nodes = list(app._router._roots)
    while nodes:
        node = nodes.pop()
        nodes.extend(node.children)
        resource = node.resource
        if resource is None or isinstance(resource, UnknownChannel):
            continue  # the catch-all answers the documented 404 for unknown channels
        methods = {m for m in OPERATIONS if callable(getattr(resource, f"on_{m}", None))}
        template = node.uri_template
        match = CHANNEL_ROUTE.match(template)
        if match and match["channel"] in channels:
            generic = GENERIC_ROUTES.get(match["rest"])
            if generic is None:
                continue  # contributed by the channel: channel specific, not documented
            template = "/api/channels/{channel}/" + match["rest"]
            methods &= {m for m in OPERATIONS if hasattr(generic, f"on_{m}")}
        for method in methods:
            yield method, template, resource


def served_routes(app: Any) -> dict[str, set[str]]:
    """URI template -> methods the app serves."""
    served: dict[str, set[str]] = {}
    for method, template, _resource in served_operations(app):
        served.setdefault(template, set()).add(method)
    return served


def _channel_names(app: Any) -> set[str]:
    names = set()
    nodes = list(app._router._roots)
    while nodes:
        node = nodes.pop()
        nodes.extend(node.children)
        resource = node.resource
        if resource is not None and not isinstance(resource, UnknownChannel):
            channel = getattr(resource, "channel", None)
            if channel:
                names.add(channel)
    return names


@pytest.fixture
def app(tmp_path: Path) -> Any:
    """The app create_app builds, on a store in tmp_path."""
    config = Config(
        data_dir=tmp_path,
        store_url=f"sqlite:///{tmp_path / 'store.db'}",
        api_keys=(API_KEY,),
        plugins_dir=tmp_path / "plugins",
    )
    return create_app(config)


def test_documented_routes_are_the_routes_served(document, app):
    """The app built by create_app serves exactly the documented paths and methods."""
    documented = {
        template: {m for m in OPERATIONS if m in item}
        for template, item in document["paths"].items()
    }
    assert served_routes(app) == documented


def test_documented_permissions_are_the_ones_the_routes_declare(document, app):
    """Each served operation is public exactly when the document says ``security: []``, and
    otherwise needs exactly the permission the document names in ``x-permission``."""
    for method, template, resource in served_operations(app):
        operation = document["paths"][template][method]
        verb = method.upper()
        if verb in getattr(resource, "public_methods", ()):
            assert operation.get("security") == [], (method, template)
            assert "x-permission" not in operation, (method, template)
        else:
            assert "security" not in operation, (method, template)
            needed = resource.permissions["GET" if verb == "HEAD" else verb]
            assert operation["x-permission"] == needed.value, (method, template)


def test_routes_without_security_override_need_the_key(server, document):
    """Every operation the document secures answers 401 without credentials, and the public
    ones (``security: []``) do not."""
    anonymous = server.client(None)
    for method, template, operation in operations(document):
        path = template.replace("{channel}", "http")
        path = re.sub(r"{[^}]+}", "missing", path)
        response = anonymous.request(method, path, json={} if method in ("post", "patch") else None)
        if operation.get("security") == []:
            assert response.status_code != 401, (method, template)
        else:
            assert response.status_code == 401, (method, template, response.text)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_head_on_root_and_health_answers_like_get_without_a_body(server, degraded_server):
    """Load balancers probe with HEAD: HEAD / and HEAD /health answer, without an API key,
    the status GET answers (200 when up, degraded included) and no body."""
    for running in (server, degraded_server):
        anonymous = running.client(None)
        for path in ("/", "/health"):
            head, get = anonymous.head(path), anonymous.get(path)
            assert head.status_code == get.status_code == 200, path
            assert head.content == b""
            assert get.content != b""

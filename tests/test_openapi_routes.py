"""The OpenAPI document names exactly the routes the app serves, secured as documented and
needing the permissions it documents."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.inspect
import pytest

from omnichannel_core.app import assemble
from omnichannel_core.config import Config
from omnichannel_core.plugins.registry import Registry
from omnichannel_core.routes import operations_of
from omnichannel_core.testing.server import API_KEY, ServerProcess, other_installed_channels
from omnichannel_core.web.openapi import openapi_document
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


def served_operations(app: Any, registry: Registry) -> Iterator[tuple[str, str, Any]]:
    """(method, documented template, resource) of every responder Falcon routes to, as
    ``falcon.inspect`` reads the app's router; what the registry declares undocumented (the
    unknown-channel catch-all, the methods a channel's own routes do not declare, or declare
    ``documented=False``) left out."""
    routes = {route.path: route for _owner, route in registry.routes}
    for info in falcon.inspect.inspect_routes(app):
        route = routes[info.path]  # Falcon serves nothing the registry did not declare
        if route.document_as == "":
            continue
        template = route.document_as or route.path
        operations = operations_of(route.resource)
        for method in info.methods:
            verb = method.method
            declared = operations.get("GET" if verb == "HEAD" else verb)
            if method.internal or (declared is not None and not declared.documented):
                continue
            yield verb.lower(), template, route.resource


def served_routes(app: Any, registry: Registry) -> dict[str, set[str]]:
    """URI template -> methods the app serves."""
    served: dict[str, set[str]] = {}
    for method, template, _resource in served_operations(app, registry):
        served.setdefault(template, set()).add(method)
    return served


def assembled(tmp_path: Path, disabled: str) -> tuple[Any, Registry]:
    """The app assemble builds, and its registry, on a store in tmp_path, without the
    channels ``disabled`` names (comma separated)."""
    config = Config(
        data_dir=tmp_path,
        store_url=f"sqlite:///{tmp_path / 'store.db'}",
        api_keys=(API_KEY,),
        plugins_dir=tmp_path / "plugins",
        disabled_plugins=tuple(name for name in disabled.split(",") if name),
    )
    return assemble(config)


@pytest.fixture
def app(tmp_path: Path) -> tuple[Any, Registry]:
    """The app assemble builds, and its registry, with the channels the server loads."""
    return assembled(tmp_path, other_installed_channels())


def test_documented_routes_are_the_routes_served(document, app):
    """The app built by create_app serves exactly the documented paths and methods."""
    documented = {
        template: {m for m in OPERATIONS if m in item}
        for template, item in document["paths"].items()
    }
    assert served_routes(*app) == documented


def test_every_installed_channels_declared_routes_are_documented(tmp_path):
    """With every installed channel loaded (Twilio's declared send and status routes,
    Facebook's undeclared GET on its webhook), the document the app builds names exactly
    the routes it serves, each channel's declared ones under its own path, and each served
    operation is secured as its declaration says."""
    app, registry = assembled(tmp_path, "")
    document = openapi_document([route for _owner, route in registry.routes], registry.policy)
    documented = {
        template: {m for m in OPERATIONS if m in item}
        for template, item in document["paths"].items()
    }
    assert served_routes(app, registry) == documented
    assert documented["/api/channels/twilio/send/sms"] == {"post"}
    assert "/api/channels/facebook/webhook" not in documented
    for method, template, resource in served_operations(app, registry):
        declared = operations_of(resource)["GET" if method == "head" else method.upper()]
        assert document["paths"][template][method].get("x-permission") == declared.permission


def test_documented_permissions_are_the_ones_the_routes_declare(document, app):
    """Each served operation is public exactly when the document says ``security: []``, and
    otherwise needs exactly the permission the document names in ``x-permission``."""
    for method, template, resource in served_operations(*app):
        operation = document["paths"][template][method]
        verb = method.upper()
        declared = operations_of(resource)["GET" if verb == "HEAD" else verb]
        if declared.public:
            assert operation.get("security") == [], (method, template)
            assert "x-permission" not in operation, (method, template)
        else:
            assert "security" not in operation, (method, template)
            assert operation["x-permission"] == declared.permission, (method, template)


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

"""Checking the OpenAPI document against the real server: reading the served document,
following its references, and validating real responses against it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from omnichannel_core.testing.server import ServerProcess, running_server
from tests.fixtures.distributions import install_distributions

DOCUMENT_URI = "urn:omnichannel:openapi"
OPERATIONS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PUBLIC_OPERATIONS = {
    ("get", "/"),
    ("head", "/"),
    ("get", "/health"),
    ("head", "/health"),
    ("get", "/api/openapi.json"),
    ("post", "/api/channels/{channel}/webhook"),
    ("post", "/api/channels/{channel}/status"),
    ("post", "/api/auth/login"),
    ("post", "/api/auth/refresh"),
}


def escape(segment: str) -> str:
    """``segment`` as one part of a JSON pointer inside a URI fragment."""
    return quote(segment.replace("~", "~0").replace("/", "~1"), safe="")


def lookup(document: dict, ref: str) -> Any:
    """What a local ``#/a/b`` reference points at; KeyError if nothing."""
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def operations(document: dict) -> Iterator[tuple[str, str, dict]]:
    """Every operation the document describes, as (method, path template, operation)."""
    for template, item in document["paths"].items():
        for method in OPERATIONS:
            if method in item:
                yield method, template, item[method]


class Contract:
    """Checks real responses against the document, and remembers which operations it saw."""

    def __init__(self, document: dict) -> None:
        self.document = document
        resource = DRAFT202012.create_resource(document)
        self.registry = Registry().with_resource(DOCUMENT_URI, resource)
        self.seen: set[tuple[str, str, str]] = set()

    def schema_errors(self, pointer: str, instance: Any) -> list[str]:
        validator = Draft202012Validator(
            {"$ref": f"{DOCUMENT_URI}#{pointer}"}, registry=self.registry
        )
        return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]

    def check(self, response: httpx.Response, method: str, template: str) -> Any:
        """Assert the status is documented for the operation and the body fits its schema;
        returns the JSON body (or None when the body is not JSON)."""
        operation = self.document["paths"][template][method]
        status = str(response.status_code)
        if status not in operation["responses"]:
            status = status[0] + "XX"  # a documented range, e.g. 2XX
        assert status in operation["responses"], (
            f"{method.upper()} {template} answered {status}, not documented: {response.text}"
        )
        pointer = "/" + "/".join(escape(p) for p in ("paths", template, method, "responses"))
        pointer += "/" + status
        documented = operation["responses"][status]
        if "$ref" in documented:
            pointer = documented["$ref"].removeprefix("#")
            documented = lookup(self.document, documented["$ref"])
        if method == "head" or status == "204":  # no body to check, and none documented
            assert response.content == b"", f"{method.upper()} {template} answered a body"
            assert "content" not in documented, f"{method.upper()} {template} {status} has a body"
            self.seen.add((method, template, status))
            return None
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        content = documented.get("content", {})
        key = media_type if media_type in content else "*/*"
        assert key in content, f"{method.upper()} {template} {status}: {media_type} undocumented"
        self.seen.add((method, template, status))
        if media_type != "application/json":
            return None
        body = response.json()
        errors = self.schema_errors(f"{pointer}/content/{escape(key)}/schema", body)
        assert not errors, f"{method.upper()} {template} {status}: {errors}\n{body}"
        return body

    def check_error(self, response: httpx.Response, status: int) -> dict:
        """An error response on any route (documented or not) fits ``Error``."""
        assert response.status_code == status, response.text
        body = response.json()
        assert not self.schema_errors("/components/schemas/Error", body), body
        return body


def fetch_document(server: ServerProcess) -> dict:
    """The document ``server`` serves at ``GET /api/openapi.json``, read without a key."""
    response = server.client(None).get("/api/openapi.json")
    assert response.status_code == 200, response.text
    return response.json()


@contextmanager
def running_degraded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose ``http`` channel is not configured, beside a channel (``healthonly``,
    a real pip-installed fixture) that implements only ``health``."""
    site = install_distributions(tmp_path_factory.mktemp("site") / "packages", "healthonly")
    workdir = tmp_path_factory.mktemp("degraded")
    env = {"PYTHONPATH": str(site), "WEBHOOK_SECRET": "", "HTTP_CHANNEL_SEND_URL": ""}
    with running_server(workdir, env) as process:
        yield process

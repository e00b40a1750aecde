"""Checking a real server's answers against the OpenAPI document it serves
(``GET /api/openapi.json``): a channel that declares its routes' operations checks that they
answer as documented::

    contract = Contract(fetch_document(server))
    answer = client.post("/api/channels/acme/send", json={"to": "+15550001111"})
    body = contract.check(answer, "post", "/api/channels/acme/send")

Needs ``jsonschema`` (omnichannel-core's ``test`` extra), imported only with this module.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from omnichannel_core.testing.server import ServerProcess

DOCUMENT_URI = "urn:omnichannel:openapi"
"""Where the document is registered for its ``$ref``s to resolve."""


def escape(segment: str) -> str:
    """``segment`` as one part of a JSON pointer inside a URI fragment."""
    return quote(segment.replace("~", "~0").replace("/", "~1"), safe="")


def lookup(document: dict[str, Any], ref: str) -> Any:
    """What a local ``#/a/b`` reference points at; KeyError if nothing."""
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


class Contract:
    """Checks real responses against the document, and remembers which operations it saw
    (``seen``: method, path template and documented status)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = DRAFT202012.create_resource(document)
        self.registry = Registry().with_resource(DOCUMENT_URI, resource)
        self.seen: set[tuple[str, str, str]] = set()

    def schema_errors(self, pointer: str, instance: Any) -> list[str]:
        """What is wrong with ``instance`` under the schema at ``pointer`` in the document
        (a JSON pointer, ``/components/schemas/Error``); empty when it fits."""
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
        ranges = (media_type, media_type.split("/")[0] + "/*", "*/*")  # as OpenAPI matches
        key = next((candidate for candidate in ranges if candidate in content), media_type)
        assert key in content, f"{method.upper()} {template} {status}: {media_type} undocumented"
        self.seen.add((method, template, status))
        if media_type != "application/json":
            return None
        body = response.json()
        errors = self.schema_errors(f"{pointer}/content/{escape(key)}/schema", body)
        assert not errors, f"{method.upper()} {template} {status}: {errors}\n{body}"
        return body

    def check_error(self, response: httpx.Response, status: int) -> dict[str, Any]:
        """An error response on any route (documented or not) fits ``Error``."""
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        assert not self.schema_errors("/components/schemas/Error", body), body
        return body


def fetch_document(server: ServerProcess) -> dict[str, Any]:
    """The document ``server`` serves at ``GET /api/openapi.json``, read without a key."""
    with server.client(None) as anonymous:
        response = anonymous.get("/api/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document

"""The OpenAPI 3.1 document at ``GET /api/openapi.json`` is well formed: its structure,
references, schemas, path parameters and security."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from omnichannel_core.testing.server import ServerProcess
from tests.support.openapi_contract import (
    OPERATIONS,
    PUBLIC_OPERATIONS,
    fetch_document,
    lookup,
    operations,
)

# Public beside those the contract helpers list: logging in and refreshing need no token.
PUBLIC = PUBLIC_OPERATIONS
WEBHOOKS = {("post", "/api/channels/{channel}/webhook"), ("post", "/api/channels/{channel}/status")}

# The parts of the OpenAPI 3.1 structure this project relies on, as a JSON Schema.
STATUS = r"^([1-5][0-9][0-9]|[1-5]XX|default)$"
REF = {"type": "object", "required": ["$ref"], "properties": {"$ref": {"type": "string"}}}
PARAMETER = {
    "type": "object",
    "required": ["name", "in", "schema"],
    "properties": {
        "name": {"type": "string"},
        "in": {"enum": ["path", "query", "header", "cookie"]},
        "required": {"type": "boolean"},
        "schema": {"type": ["object", "boolean"]},
    },
    "if": {"properties": {"in": {"const": "path"}}},
    "then": {"required": ["required"], "properties": {"required": {"const": True}}},
}
MEDIA = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": {"type": "object", "required": ["schema"]},
}
RESPONSE = {
    "type": "object",
    "required": ["description"],
    "properties": {"description": {"type": "string"}, "content": MEDIA},
}
OPERATION = {
    "type": "object",
    "required": ["responses", "operationId", "summary"],
    "properties": {
        "operationId": {"type": "string"},
        "parameters": {"type": "array", "items": {"anyOf": [REF, PARAMETER]}},
        "requestBody": {"anyOf": [REF, {"type": "object", "required": ["content"]}]},
        "responses": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": STATUS},
            "additionalProperties": {"anyOf": [REF, RESPONSE]},
        },
        "security": {"type": "array", "items": {"type": "object"}},
    },
}
OPENAPI_STRUCTURE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["openapi", "info", "paths", "components"],
    "properties": {
        "openapi": {"type": "string", "pattern": r"^3\.1\.\d+$"},
        "info": {"type": "object", "required": ["title", "version"]},
        "security": {"type": "array", "items": {"type": "object"}},
        "paths": {
            "type": "object",
            "propertyNames": {"pattern": "^/"},
            "additionalProperties": {
                "type": "object",
                "propertyNames": {"enum": [*OPERATIONS, "parameters", "summary", "description"]},
                "properties": {
                    **dict.fromkeys(OPERATIONS, OPERATION),
                    "parameters": {"type": "array", "items": {"anyOf": [REF, PARAMETER]}},
                },
            },
        },
        "components": {
            "type": "object",
            "required": ["schemas", "securitySchemes"],
            "properties": {
                "schemas": {"type": "object", "additionalProperties": {"type": "object"}},
                "responses": {"type": "object", "additionalProperties": RESPONSE},
                "parameters": {"type": "object", "additionalProperties": PARAMETER},
                "securitySchemes": {
                    "type": "object",
                    "additionalProperties": {"type": "object", "required": ["type"]},
                },
            },
        },
    },
}


def walk_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from walk_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_refs(value)


@pytest.fixture(scope="module")
def document(server: ServerProcess) -> dict:
    """The OpenAPI document this module's server serves."""
    return fetch_document(server)


def test_document_has_openapi_31_structure(document):
    """The served document is OpenAPI 3.1: every operation has an id, a summary and
    responses keyed by status code, each response a description; parameters are well formed
    and path parameters required."""
    errors = [e.message for e in Draft202012Validator(OPENAPI_STRUCTURE).iter_errors(document)]
    assert not errors
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))


def test_every_ref_resolves(document):
    """Every local ``$ref`` in the document points at something that exists."""
    refs = set(walk_refs(document))
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        lookup(document, ref)


def test_component_schemas_are_valid_json_schema_2020_12(document):
    """Each schema under components is itself a valid JSON Schema 2020-12."""
    schemas = document["components"]["schemas"]
    assert {"Contact", "Identity", "Conversation", "Message", "Media", "ChannelHealth"} <= set(
        schemas
    )
    assert {"Page", "Error", "ForbiddenError", "RateLimitError"} <= set(schemas)
    assert {"User", "ApiKey", "ApiKeyCreated", "AuditEntry", "Tokens", "Caller"} <= set(schemas)
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)


def test_path_templates_declare_their_parameters(document):
    """Each ``{name}`` in a path is declared once as a required path parameter."""
    for template, item in document["paths"].items():
        names = set(re.findall(r"{([^}]+)}", template))
        for method in OPERATIONS:
            if method not in item:
                continue
            declared = [
                lookup(document, p["$ref"]) if "$ref" in p else p
                for p in [*item.get("parameters", []), *item[method].get("parameters", [])]
            ]
            in_path = [p["name"] for p in declared if p["in"] == "path"]
            assert sorted(in_path) == sorted(names), (method, template)


def test_security_is_bearer_except_on_public_routes(document):
    """Bearer credentials (access tokens, API keys) apply globally; exactly the public routes,
    login and refresh among them, opt out with security []."""
    assert document["security"] == [{"bearer": []}]
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    public = {(m, t) for m, t, op in operations(document) if op.get("security") == []}
    assert public == PUBLIC


def test_every_secured_operation_names_its_permission_and_its_refusals(document):
    """A secured operation names the permission it needs (``x-permission``, and who has it in
    its description) and documents 401 and 429, and 403 unless every caller has the
    permission; a public one names none."""
    for method, template, operation in operations(document):
        responses = operation["responses"]
        if (method, template) in PUBLIC:
            assert "x-permission" not in operation, (method, template)
            continue
        permission = operation["x-permission"]
        assert f"`{permission}`" in operation["description"], (method, template)
        assert {"401", "429"} <= set(responses), (method, template)
        if permission != "account:own":
            assert responses["403"] == {"$ref": "#/components/responses/Forbidden"}


def test_every_rate_limited_operation_documents_429_with_retry_after(document):
    """Every operation but the webhooks, public ones included, documents 429 with its
    Retry-After header; the webhooks, never rate limited, do not."""
    for method, template, operation in operations(document):
        documented = operation["responses"].get("429")
        if (method, template) in WEBHOOKS:
            assert documented is None, template
            continue
        assert documented is not None, (method, template)
        if "$ref" in documented:
            documented = lookup(document, documented["$ref"])
        assert "Retry-After" in documented["headers"], (method, template)

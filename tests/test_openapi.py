"""The OpenAPI 3.1 document at ``GET /api/openapi.json``: well formed, naming exactly the
routes the app serves, and true to what the real server answers, errors included."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from omnichannel_core.app import create_app
from omnichannel_core.channels.http import SIGNATURE_HEADER, sign
from omnichannel_core.config import Config
from omnichannel_core.web.channel_routes import GENERIC_ROUTES, UnknownChannel
from tests.conftest import WEBHOOK_SECRET
from tests.fixtures.distributions import install_distributions
from tests.support.fake_provider import FakeProvider, ScriptedResponse
from tests.support.server import API_KEY, ServerProcess, running_server

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
}
CHANNEL_ROUTE = re.compile(r"^/api/channels/(?P<channel>[^/{}]+)/(?P<rest>.+)$")

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


def escape(segment: str) -> str:
    return quote(segment.replace("~", "~0").replace("/", "~1"), safe="")


def lookup(document: dict, ref: str) -> Any:
    """What a local ``#/a/b`` reference points at; KeyError if nothing."""
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def walk_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from walk_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_refs(value)


def operations(document: dict) -> Iterator[tuple[str, str, dict]]:
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
        if method == "head":  # no body to check, and none documented
            assert response.content == b"", f"HEAD {template} answered a body"
            assert "content" not in documented, f"HEAD {template} {status} documents a body"
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


def signed(data: dict) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(data).encode()
    return raw, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(WEBHOOK_SECRET, raw)}


@pytest.fixture(scope="module")
def document(server: ServerProcess) -> dict:
    response = server.client(None).get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()


@pytest.fixture(scope="module")
def contract(document: dict) -> Contract:
    return Contract(document)


@pytest.fixture(scope="module")
def degraded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose ``http`` channel is not configured, beside a channel (``healthonly``,
    a real pip-installed fixture) that implements only ``health``."""
    site = install_distributions(tmp_path_factory.mktemp("site") / "packages", "healthonly")
    workdir = tmp_path_factory.mktemp("degraded")
    env = {"PYTHONPATH": str(site), "WEBHOOK_SECRET": "", "HTTP_CHANNEL_SEND_URL": ""}
    with running_server(workdir, env) as process:
        yield process


# the document itself -----------------------------------------------------------------------


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
    assert {"Page", "Error"} <= set(schemas)
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
    """Bearer API keys apply globally; exactly the public routes opt out with security []."""
    assert document["security"] == [{"bearer": []}]
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    public = {(m, t) for m, t, op in operations(document) if op.get("security") == []}
    assert public == PUBLIC_OPERATIONS


def served_routes(app: Any) -> dict[str, set[str]]:
    """URI template -> methods, from the app's compiled router; each channel's generic routes
    under ``/api/channels/{channel}/``, channel-contributed extras left out."""
    channels = _channel_names(app)
    served: dict[str, set[str]] = {}
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
        served.setdefault(template, set()).update(methods)
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


def test_documented_routes_are_the_routes_served(document, tmp_path: Path):
    """The app built by create_app serves exactly the documented paths and methods."""
    config = Config(
        data_dir=tmp_path,
        store_url=f"sqlite:///{tmp_path / 'store.db'}",
        api_keys=(API_KEY,),
        plugins_dir=tmp_path / "plugins",
    )
    served = served_routes(create_app(config))
    documented = {
        template: {m for m in OPERATIONS if m in item}
        for template, item in document["paths"].items()
    }
    assert served == documented


def test_routes_without_security_override_need_the_key(server, document):
    """Every operation the document secures answers 401 without a key, and the public ones
    do not."""
    anonymous = server.client(None)
    for method, template, _operation in operations(document):
        path = template.replace("{channel}", "http")
        path = re.sub(r"{[^}]+}", "missing", path)
        response = anonymous.request(method, path, json={} if method in ("post", "patch") else None)
        if (method, template) in PUBLIC_OPERATIONS:
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


# real responses ----------------------------------------------------------------------------


def test_every_operation_answers_as_documented(server, receiver: FakeProvider, contract):
    """A real session (signed webhook, list, search, get, patch, reply, replay, send, status
    callback) touches every documented operation, and each answer fits its documented
    schema."""
    client, anonymous = server.client(), server.client(None)
    token = hashlib.sha256(b"every-operation").hexdigest()[:10]
    sender = f"+1555{int(token, 16) % 10**7:07d}"

    contract.check(anonymous.get("/"), "get", "/")
    contract.check(anonymous.head("/"), "head", "/")
    contract.check(anonymous.get("/health"), "get", "/health")
    contract.check(anonymous.head("/health"), "head", "/health")
    contract.check(anonymous.get("/api/openapi.json"), "get", "/api/openapi.json")
    plugins = contract.check(client.get("/api/plugins"), "get", "/api/plugins")
    assert any(item["name"] == "http" for item in plugins["items"])

    for number in (1, 2):
        raw, headers = signed(
            {"id": f"{token}-{number}", "from": sender, "name": "Ada Lovelace", "text": "hi"}
        )
        response = anonymous.post("/api/channels/http/webhook", content=raw, headers=headers)
        assert response.status_code == 200
        contract.check(response, "post", "/api/channels/{channel}/webhook")

    contacts = contract.check(
        client.get("/api/contacts", params={"q": "ada"}), "get", "/api/contacts"
    )
    contact = next(c for c in contacts["items"] if c["identities"][0]["address"] == sender)
    contact_path = f"/api/contacts/{contact['id']}"
    contract.check(client.get(contact_path), "get", "/api/contacts/{contact_id}")
    changed = contract.check(
        client.patch(contact_path, json={"tags": ["vip"], "attributes": {"plan": "pro"}}),
        "patch",
        "/api/contacts/{contact_id}",
    )
    assert changed["tags"] == ["vip"]

    conversations = contract.check(
        client.get("/api/conversations", params={"channel": "http", "status": "open"}),
        "get",
        "/api/conversations",
    )
    conversation = next(c for c in conversations["items"] if c["contact_id"] == contact["id"])
    conversation_path = f"/api/conversations/{conversation['id']}"
    contract.check(client.get(conversation_path), "get", "/api/conversations/{conversation_id}")
    contract.check(
        client.patch(conversation_path, json={"status": "pending", "assignee": "agent-7"}),
        "patch",
        "/api/conversations/{conversation_id}",
    )

    messages_template = "/api/conversations/{conversation_id}/messages"
    first = contract.check(
        client.get(f"{conversation_path}/messages", params={"limit": 1}), "get", messages_template
    )
    assert first["next_cursor"]
    second = contract.check(
        client.get(f"{conversation_path}/messages", params={"cursor": first["next_cursor"]}),
        "get",
        messages_template,
    )
    assert [m["text"] for m in first["items"] + second["items"]] == ["hi", "hi"]

    key = {"Idempotency-Key": f"reply-{token}"}
    created = client.post(f"{conversation_path}/messages", json={"text": "hello"}, headers=key)
    assert created.status_code == 201
    reply = contract.check(created, "post", messages_template)
    replayed = client.post(f"{conversation_path}/messages", json={"text": "hello"}, headers=key)
    assert replayed.status_code == 200
    assert contract.check(replayed, "post", messages_template)["id"] == reply["id"]
    conflict = client.post(f"{conversation_path}/messages", json={"text": "other"}, headers=key)
    assert contract.check(conflict, "post", messages_template)["error"] == "conflict"

    raw, headers = signed({"id": reply["provider_message_id"], "status": "delivered"})
    response = anonymous.post("/api/channels/http/status", content=raw, headers=headers)
    assert response.status_code == 200
    contract.check(response, "post", "/api/channels/{channel}/status")
    message = contract.check(
        client.get(f"/api/messages/{reply['id']}"), "get", "/api/messages/{message_id}"
    )
    assert message["status"] == "delivered"

    sent = client.post("/api/channels/http/messages", json={"to": f"{sender}9", "text": "hey"})
    assert sent.status_code == 201
    contract.check(sent, "post", "/api/channels/{channel}/messages")
    health = client.get("/api/channels/http/health")
    assert health.status_code == 200
    contract.check(health, "get", "/api/channels/{channel}/health")

    exercised = {(method, template) for method, template, _ in contract.seen}
    documented = {(method, template) for method, template, _ in operations(contract.document)}
    assert exercised == documented


def test_client_errors_fit_documented_error_shape(server, contract):
    """400, 401, 404, 413 and 415 answers fit the document, and the Error schema even on
    routes it does not list."""
    client, anonymous = server.client(), server.client(None)
    contract.check_error(anonymous.get("/api/contacts"), 401)
    contract.check(anonymous.get("/api/contacts"), "get", "/api/contacts")
    wrong_key = server.client("not-the-key").get("/api/conversations")
    contract.check(wrong_key, "get", "/api/conversations")
    assert wrong_key.status_code == 401

    for path, template in (
        ("/api/contacts/missing", "/api/contacts/{contact_id}"),
        ("/api/conversations/missing", "/api/conversations/{conversation_id}"),
        ("/api/messages/missing", "/api/messages/{message_id}"),
        ("/api/conversations/missing/messages", "/api/conversations/{conversation_id}/messages"),
    ):
        contract.check_error(client.get(path), 404)
        contract.check(client.get(path), "get", template)
    unknown = client.post("/api/channels/nosuch/messages", json={"to": "x", "text": "t"})
    assert (
        contract.check(unknown, "post", "/api/channels/{channel}/messages")["channel"] == "nosuch"
    )
    contract.check_error(client.get("/api/no/such/route"), 404)
    no_conversation = client.post("/api/conversations/missing/messages", json={"text": "t"})
    contract.check_error(no_conversation, 404)
    contract.check(no_conversation, "post", "/api/conversations/{conversation_id}/messages")

    bad_limit = client.get("/api/contacts", params={"limit": 0})
    assert contract.check_error(bad_limit, 400)["field"] == "limit"
    contract.check(bad_limit, "get", "/api/contacts")
    bad_status = client.get("/api/conversations", params={"status": "closed"})
    contract.check_error(bad_status, 400)
    contract.check(bad_status, "get", "/api/conversations")
    bad_cursor = client.get("/api/contacts", params={"cursor": "!!"})
    contract.check_error(bad_cursor, 400)
    malformed = client.post(
        "/api/channels/http/messages",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    contract.check_error(malformed, 400)
    contract.check(malformed, "post", "/api/channels/{channel}/messages")
    bad_key = client.post(
        "/api/channels/http/messages",
        json={"to": "x", "text": "t"},
        headers={"Idempotency-Key": "has space"},
    )
    assert contract.check_error(bad_key, 400)["field"] == "Idempotency-Key"

    wrong_type = client.patch(
        "/api/contacts/missing", content=b"tags=a", headers={"Content-Type": "text/plain"}
    )
    contract.check_error(wrong_type, 415)
    contract.check(wrong_type, "patch", "/api/contacts/{contact_id}")
    too_large = client.post(
        "/api/channels/http/messages", json={"to": "x", "text": "x" * (1024 * 1024 + 1)}
    )
    assert contract.check_error(too_large, 413)["error"] == "content_too_large"
    contract.check(too_large, "post", "/api/channels/{channel}/messages")


def test_webhook_refusals_fit_documented_error_shape(server, contract):
    """A webhook with a wrong signature answers 403, one with a bad body 400, one for an
    unknown channel 404: each as documented."""
    anonymous = server.client(None)
    webhook = "/api/channels/{channel}/webhook"
    raw, headers = signed({"id": "x", "from": "y", "text": "z"})
    forged = anonymous.post(
        "/api/channels/http/webhook", content=raw, headers={**headers, SIGNATURE_HEADER: "sha256=0"}
    )
    assert contract.check_error(forged, 403)["error"] == "webhook_rejected"
    contract.check(forged, "post", webhook)
    raw, headers = signed({"from": "y", "text": "no id"})
    incomplete = anonymous.post("/api/channels/http/webhook", content=raw, headers=headers)
    contract.check_error(incomplete, 400)
    contract.check(incomplete, "post", webhook)
    unknown = anonymous.post("/api/channels/nosuch/webhook", content=raw, headers=headers)
    contract.check_error(unknown, 404)
    contract.check(unknown, "post", webhook)


def test_delivery_failures_fit_documented_shape(server, receiver: FakeProvider, contract):
    """A provider refusal answers 422 and an outage 502, each naming the stored, now failed
    message, as documented."""
    client = server.client()
    template = "/api/channels/{channel}/messages"
    receiver.queue(ScriptedResponse.json(400, {"error": "bad number"}))
    refused = client.post("/api/channels/http/messages", json={"to": "+15550100", "text": "t"})
    body = contract.check(refused, "post", template)
    assert (refused.status_code, body["error"]) == (422, "send_rejected")
    assert body["stored_message"]["status"] == "failed"

    receiver.queue(*[ScriptedResponse.json(503, {})] * 3)
    outage = client.post("/api/channels/http/messages", json={"to": "+15550100", "text": "t"})
    body = contract.check(outage, "post", template)
    assert (outage.status_code, body["error"]) == (502, "provider_unavailable")
    assert body["stored_message"]["id"] == body["message_id"]


def test_unconfigured_and_missing_hooks_fit_documented_shape(degraded_server, contract):
    """An unconfigured channel answers 503 and a channel lacking a hook 501, on every
    surface the document says they may; /health stays 200 and says degraded."""
    client, anonymous = degraded_server.client(), degraded_server.client(None)
    health = contract.check(anonymous.get("/health"), "get", "/health")
    assert health["status"] == "degraded"
    channel_health = client.get("/api/channels/http/health")
    assert channel_health.status_code == 503
    contract.check(channel_health, "get", "/api/channels/{channel}/health")

    raw = json.dumps({"id": "a", "from": "b", "text": "c"}).encode()
    json_type = {"Content-Type": "application/json"}
    for hook in ("webhook", "status"):
        template = f"/api/channels/{{channel}}/{hook}"
        unavailable = anonymous.post(f"/api/channels/http/{hook}", content=raw, headers=json_type)
        assert contract.check(unavailable, "post", template)["error"] == "channel_unavailable"
        assert unavailable.status_code == 503
        missing = anonymous.post(f"/api/channels/healthonly/{hook}", content=raw, headers=json_type)
        assert contract.check(missing, "post", template)["hook"] in ("receive", "status")
        assert missing.status_code == 501

    template = "/api/channels/{channel}/messages"
    sent = client.post("/api/channels/http/messages", json={"to": "+15550199", "text": "t"})
    assert sent.status_code == 503
    stored = contract.check(sent, "post", template)["stored_message"]
    missing = client.post("/api/channels/healthonly/messages", json={"to": "x", "text": "t"})
    assert missing.status_code == 501
    assert contract.check(missing, "post", template)["hook"] == "send"

    reply = client.post(
        f"/api/conversations/{stored['conversation_id']}/messages", json={"text": "t"}
    )
    assert reply.status_code == 503
    contract.check(reply, "post", "/api/conversations/{conversation_id}/messages")


SEND_BODIES = [
    ({"to": "+15550123", "text": "hi"}, True),
    ({"to": "+15550123", "name": "Bo", "media": ["https://example.com/a.png"]}, True),
    ({"to": "+15550123", "media": [{"url": "https://example.com/a.pdf", "filename": "a"}]}, True),
    ({"to": "+15550123", "text": "hi", "metadata": {"campaign": "x"}}, True),
    ({"text": "no recipient"}, False),
    ({"to": "+15550123", "text": "hi", "priority": "high"}, False),
    ({"to": "+15550123", "media": ["ftp://example.com/a.png"]}, False),
    ({"to": "+15550123", "text": 7}, False),
]


@pytest.mark.parametrize(("body", "accepted"), SEND_BODIES)
def test_send_request_schema_agrees_with_server(server, contract, body, accepted):
    """The documented ChannelSend schema accepts what the server accepts and rejects, by
    shape, what the server answers 400 to."""
    errors = contract.schema_errors("/components/schemas/ChannelSend", body)
    assert (not errors) is accepted, errors
    response = server.client().post("/api/channels/http/messages", json=body)
    assert response.status_code == (201 if accepted else 400), response.text
    contract.check(response, "post", "/api/channels/{channel}/messages")


UPDATE_BODIES = [
    ("ContactUpdate", "/api/contacts/{contact_id}", {"display_name": "Ada"}, True),
    ("ContactUpdate", "/api/contacts/{contact_id}", {"tags": ["a", "b"]}, True),
    ("ContactUpdate", "/api/contacts/{contact_id}", {}, False),
    ("ContactUpdate", "/api/contacts/{contact_id}", {"tags": [""]}, False),
    ("ContactUpdate", "/api/contacts/{contact_id}", {"nickname": "x"}, False),
    ("ConversationUpdate", "/api/conversations/{conversation_id}", {"status": "resolved"}, True),
    ("ConversationUpdate", "/api/conversations/{conversation_id}", {"assignee": None}, True),
    ("ConversationUpdate", "/api/conversations/{conversation_id}", {"status": "closed"}, False),
]


@pytest.mark.parametrize(("schema", "template", "body", "accepted"), UPDATE_BODIES)
def test_update_request_schemas_agree_with_server(
    server, contract, schema, template, body, accepted
):
    """The documented update schemas accept what PATCH accepts and reject what it answers
    400 to."""
    errors = contract.schema_errors(f"/components/schemas/{schema}", body)
    assert (not errors) is accepted, errors
    client = server.client()
    sent = client.post("/api/channels/http/messages", json={"to": "+15550124", "text": "x"})
    message = sent.json()
    record_id = message["contact_id" if "contact" in template else "conversation_id"]
    path = re.sub(r"{[^}]+}", record_id, template)
    response = client.patch(path, json=body)
    assert response.status_code == (200 if accepted else 400), response.text
    contract.check(response, "patch", template)

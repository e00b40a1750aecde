"""The OpenAPI 3.1 document of the HTTP API, served at ``GET /api/openapi.json``, generated
from the routes every plugin registered.

Each route's resource declares its operations (`omnichannel_core.routes.Operation`); the
document takes from them the paths and methods, who may call (the permission, and from the
policy which roles and scopes hold it), the query and header parameters and the request and
response bodies (JSON Schema of their classes, `omnichannel_core.bodies.schema`), and the
errors each may give (`web.openapi_errors`). OpenAPI 3.1 schemas are JSON Schema 2020-12, so
the tests validate real responses against them and fuzz the server with them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import attrs

from omnichannel_core import __version__
from omnichannel_core.bodies.fields import DESCRIPTION, wire_name
from omnichannel_core.bodies.schema import Mode, SchemaBook, field_types
from omnichannel_core.models import Message
from omnichannel_core.policy import Policy
from omnichannel_core.routes import (
    JSON,
    Operation,
    RateLimit,
    Response,
    Route,
    operations_of,
)
from omnichannel_core.web.openapi_errors import (
    AUTHENTICATED,
    BODY_ERRORS,
    HEAD_TOO_MANY_REQUESTS,
    Schema,
    error_responses,
    error_schemas,
    errors,
)

DESCRIPTION_TEXT = """\
One inbox for every channel: contacts, conversations and messages, answered through the
channel each customer wrote on. See docs/api.md for a guide.

Every `/api/` route needs `Authorization: Bearer <credential>` except the public ones marked
`security: []`: `/`, `/health`, this document, `POST /api/auth/login`,
`POST /api/auth/refresh`, and the webhook routes, which their channel authenticates itself.
The credential is a user's access token (from `POST /api/auth/login`, renewed with
`POST /api/auth/refresh`) or an API key. No credential, or a bad one, answers 401.

Each operation needs one permission (its description and `x-permission` name it). A user has
the permissions of their role (`admin`, `supervisor`, `agent`), an API key those of its
scopes; `GET /api/auth/me` lists the caller's. Without it the answer is 403 `forbidden`
naming the `permission`. An agent works only the conversations assigned to them or to nobody.

Every route but the webhooks is rate limited, per client address and per credential, and
login and refresh more strictly; too many failed logins lock an email for a while. Over a
limit the answer is 429 `too_many_requests` with a `Retry-After` header in seconds.

Every error is JSON: `{"error": "<code>", "message": "<what is wrong>", ...details}`. Lists
share one envelope, `{"items": [...], "next_cursor": "<opaque>" | null}`.

The routes under `/api/channels/{channel}/` are mounted once per loaded channel. A channel
may also contribute its own routes under that prefix (send routes, verification GETs,
WebSockets, inbound-parse endpoints). Those that declare what they take and answer are
listed here under the channel's own path (`/api/channels/twilio/send/sms`), with an
`operationId` that starts with the channel's name; the others are described by the
channel's own documentation.
"""

PATH_FIELD = re.compile(r"{([^}:]+)(?::[^}]*)?}")
PATH_DESCRIPTIONS = {"channel": "a loaded channel's name; any other answers 404"}
SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "`Authorization: Bearer <credential>`, the credential being either a "
    "user's access token (a short-lived JWT from `POST /api/auth/login`, renewed with "
    "`POST /api/auth/refresh`) or an API key (made with `POST /api/api-keys`, or the "
    "bootstrap key from OMNICHANNEL_API_KEY or generated on first start). See docs/api.md.",
}


def _either(names: list[str]) -> str:
    quoted = [f"`{name}`" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def who_may(permission: str, policy: Policy) -> str:
    """Who holds ``permission``, read from the policy itself so the document cannot drift."""
    if policy.specs[permission].everyone:
        return f"Any caller: every user and every API key has `{permission}`."
    roles = [role.value for role in policy.roles_holding(permission)]
    presets = policy.presets_giving(permission)
    return (
        f"Needs `{permission}`: a user with the role {_either(roles)}, or an API key"
        f" with the scope {_either([permission, *presets])}."
    )


def _path_parameter(name: str) -> Schema:
    described = PATH_DESCRIPTIONS.get(name)
    if described is None:
        thing = name.removesuffix("_id").replace("_", " ")
        described = f"the {thing}'s id" if name.endswith("_id") else f"the {thing}"
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": described,
        "schema": {"type": "string"},
    }


def _without_null(schema: Schema) -> Schema:
    """A parameter's schema: a query string or a header has no null."""
    kinds = schema.get("type")
    if isinstance(kinds, list) and "null" in kinds:
        rest = [kind for kind in kinds if kind != "null"]
        schema = {**schema, "type": rest[0] if len(rest) == 1 else rest}
    if "enum" in schema and None in schema["enum"]:
        schema = {**schema, "enum": [value for value in schema["enum"] if value is not None]}
    return schema


class DocumentBuilder:
    """Builds the document from routes, keeping one :class:`SchemaBook` for all of them."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.book = SchemaBook()
        self.tags: list[str] = []

    def parameters(self, cls: type, location: str) -> list[Schema]:
        hints = field_types(cls)
        found = []
        for attribute in attrs.fields(cls):
            schema = _without_null(
                self.book.field_schema(attribute, hints[attribute.name], Mode.REQUEST)
            )
            schema.pop("description", None)
            default = attribute.default
            if isinstance(default, str | int | bool) and not isinstance(default, type):
                schema["default"] = default
            parameter: Schema = {"name": wire_name(attribute), "in": location}
            if DESCRIPTION in attribute.metadata:
                parameter["description"] = attribute.metadata[DESCRIPTION]
            if attribute.default is attrs.NOTHING:
                parameter["required"] = True
            parameter["schema"] = schema
            found.append(parameter)
        return found

    def response(self, response: Response) -> Schema:
        answer: Schema = {"description": response.description}
        if response.headers:
            answer["headers"] = {
                name: {"schema": schema} for name, schema in response.headers.items()
            }
        schema = response.schema
        if response.body is not None:
            schema = self.book.reference(response.body, Mode.RESPONSE)
        if schema is not None:
            answer["content"] = {response.media_type: {"schema": schema}}
            for media_type, other in response.alternatives.items():
                answer["content"][media_type] = {"schema": other}
        return answer

    def operation(self, method: str, operation: Operation) -> Schema:
        document: Schema = {"summary": operation.summary}
        if operation.operation_id:
            document["operationId"] = operation.operation_id
        if operation.tags:
            document["tags"] = list(operation.tags)
            self.tags.extend(tag for tag in operation.tags if tag not in self.tags)
        notes = [operation.notes] if operation.notes else []
        if operation.public:
            document["security"] = []
            if notes:
                document["description"] = " ".join(notes)
        else:
            assert operation.permission is not None
            document["description"] = " ".join([who_may(operation.permission, self.policy), *notes])
            document["x-permission"] = operation.permission
        parameters: list[Schema] = []
        if operation.query is not None:
            parameters += self.parameters(operation.query, "query")
        if operation.headers is not None:
            parameters += self.parameters(operation.headers, "header")
        for extra in operation.parameters:
            parameters.append(
                {
                    "name": extra.name,
                    "in": extra.location,
                    "description": extra.description,
                    "schema": extra.schema,
                }
            )
        if parameters:
            document["parameters"] = parameters
        if operation.body is not None:
            document["requestBody"] = {
                "required": True,
                "content": {JSON: {"schema": self.book.reference(operation.body, Mode.REQUEST)}},
            }
        elif operation.raw_body is not None:
            document["requestBody"] = {
                "description": operation.raw_body,
                "content": {"*/*": {"schema": {}}},
            }
        document["responses"] = self.responses(method, operation)
        return document

    def responses(self, method: str, operation: Operation) -> Schema:
        answers: Schema = {
            str(status): self.response(response) for status, response in operation.responses.items()
        }
        names: list[str] = []
        if operation.body is not None or operation.query is not None:
            names += BODY_ERRORS if operation.body is not None else ["BadRequest"]
        names += list(operation.errors)
        if not operation.public:
            names += AUTHENTICATED
        elif operation.rate_limit is not RateLimit.NONE and method != "HEAD":
            names.append("TooManyRequests")
        if method == "HEAD":
            answers.update(HEAD_TOO_MANY_REQUESTS)
            names = [name for name in names if name != "TooManyRequests"]
        for name in dict.fromkeys(names):
            answers.update(errors(name))
        return answers

    def paths(self, routes: Iterable[Route]) -> dict[str, Schema]:
        paths: dict[str, Schema] = {}
        for route in routes:
            template = route.path if route.document_as is None else route.document_as
            if not template:
                continue
            operations = {
                method.lower(): operation
                for method, operation in operations_of(route.resource).items()
                if operation.documented and method != "WEBSOCKET"
            }
            if not operations:
                continue
            item = paths.setdefault(template, {})
            fields = PATH_FIELD.findall(template)
            if fields and "parameters" not in item:
                item["parameters"] = [_path_parameter(name) for name in fields]
            for method, operation in operations.items():
                if method not in item:
                    item[method] = self.operation(method.upper(), operation)
        return paths


def openapi_document(routes: Iterable[Route], policy: Policy) -> dict[str, Any]:
    """The whole document for ``routes``; built once per app."""
    builder = DocumentBuilder(policy)
    paths = builder.paths(routes)
    builder.book.reference(Message, Mode.RESPONSE)  # the error bodies of sends refer to it
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "omnichannel",
            "version": __version__,
            "description": DESCRIPTION_TEXT,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "security": [{"bearer": []}],
        "tags": [{"name": name} for name in builder.tags],
        "paths": paths,
        "components": {
            "schemas": {**builder.book.components, **error_schemas()},
            "responses": error_responses(),
            "securitySchemes": {"bearer": SECURITY_SCHEME},
        },
    }

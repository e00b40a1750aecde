"""The OpenAPI 3.1 document of the HTTP API, served at ``GET /api/openapi.json``.

Built in code as a plain dict: the schemas come from ``openapi_schemas``, the paths (with
their shared responses and parameters) from ``openapi_paths``, and the access API's paths
and schemas from ``openapi_access``; this module gathers them. OpenAPI 3.1 schemas are JSON
Schema 2020-12, so ``tests/test_openapi_responses.py`` validates real responses against them.
"""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi

from omnichannel_core import __version__
from omnichannel_core.web.openapi_access import access_paths, access_schemas
from omnichannel_core.web.openapi_paths import (
    channel_paths,
    error_responses,
    events_paths,
    inbox_paths,
    shared_parameters,
    system_paths,
)
from omnichannel_core.web.openapi_schemas import (
    Schema,
    envelope_schemas,
    model_schemas,
    report_schemas,
    request_schemas,
)

DESCRIPTION = """\
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
may also contribute its own routes under that prefix (verification GETs, WebSockets,
inbound-parse endpoints); those are channel specific and described by the channel's own
documentation, not here.
"""


TAGS = (
    "system",
    "auth",
    "users",
    "api-keys",
    "audit",
    "contacts",
    "conversations",
    "messages",
    "channels",
    "events",
)


def all_paths() -> dict[str, Schema]:
    return {
        **system_paths(),
        **access_paths(),
        **inbox_paths(),
        **channel_paths(),
        **events_paths(),
    }


def component_schemas() -> dict[str, Schema]:
    return {
        **model_schemas(),
        **envelope_schemas(),
        **report_schemas(),
        **request_schemas(),
        **access_schemas(),
    }


def openapi_document() -> dict[str, Any]:
    """The whole document; built once per app."""
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "omnichannel",
            "version": __version__,
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "security": [{"bearer": []}],
        "tags": [{"name": name} for name in TAGS],
        "paths": all_paths(),
        "components": {
            "schemas": component_schemas(),
            "responses": error_responses(),
            "parameters": shared_parameters(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer <credential>`, the credential "
                    "being either a user's access token (a short-lived JWT from "
                    "`POST /api/auth/login`, renewed with `POST /api/auth/refresh`) or an API "
                    "key (made with `POST /api/api-keys`, or the bootstrap key from "
                    "OMNICHANNEL_API_KEY or generated on first start). See docs/api.md.",
                }
            },
        },
    }


class OpenApiDocument:
    """``GET /api/openapi.json``"""

    public_methods = frozenset({"GET"})

    def __init__(self) -> None:
        self.document = openapi_document()

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = self.document

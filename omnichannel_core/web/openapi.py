"""The OpenAPI 3.1 document of the HTTP API, served at ``GET /api/openapi.json``.

Built in code as a plain dict: the schemas come from ``openapi_schemas``, the paths (with
their shared responses and parameters) from ``openapi_paths``. OpenAPI 3.1 schemas are JSON
Schema 2020-12, so ``tests/test_openapi_responses.py`` validates real responses against them.
"""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi

from omnichannel_core import __version__
from omnichannel_core.web.openapi_paths import all_paths, error_responses, shared_parameters
from omnichannel_core.web.openapi_schemas import component_schemas

DESCRIPTION = """\
One inbox for every channel: contacts, conversations and messages, answered through the
channel each customer wrote on. See docs/api.md for a guide.

Every `/api/` route needs `Authorization: Bearer <api key>` except the public ones marked
`security: []` (the webhook routes, which their channel authenticates itself). Every error
is JSON: `{"error": "<code>", "message": "<what is wrong>", ...details}`. Lists share one
envelope, `{"items": [...], "next_cursor": "<opaque>" | null}`.

The routes under `/api/channels/{channel}/` are mounted once per loaded channel. A channel
may also contribute its own routes under that prefix (verification GETs, WebSockets,
inbound-parse endpoints); those are channel specific and described by the channel's own
documentation, not here.
"""


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
        "tags": [
            {"name": name}
            for name in ("system", "contacts", "conversations", "messages", "channels")
        ],
        "paths": all_paths(),
        "components": {
            "schemas": component_schemas(),
            "responses": error_responses(),
            "parameters": shared_parameters(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from OMNICHANNEL_API_KEY (or the key the "
                    "server generated on first start): `Authorization: Bearer <key>`.",
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

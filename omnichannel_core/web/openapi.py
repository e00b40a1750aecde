"""The OpenAPI 3.1 document of the HTTP API, served at ``GET /api/openapi.json``."""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi

from omnichannel_core import __version__


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "omnichannel", "version": __version__},
        "paths": {},
    }


class OpenApiDocument:
    """``GET /api/openapi.json``"""

    public_methods = frozenset({"GET"})

    def __init__(self) -> None:
        self.document = openapi_document()

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = self.document

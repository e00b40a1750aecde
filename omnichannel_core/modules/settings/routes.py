"""``/api/settings``: the business's settings, and its canned responses
(docs/settings.md)."""

from __future__ import annotations

import falcon
import falcon.asgi

from omnichannel_core.module import (
    Config,
    Operation,
    PageOf,
    PageQuery,
    Response,
    Route,
    caller_address,
    to_json,
)
from omnichannel_core.modules.settings.bodies import (
    CannedResponseChange,
    NewCannedResponse,
    SettingsChange,
)
from omnichannel_core.modules.settings.permissions import SETTINGS_MANAGE, SETTINGS_READ
from omnichannel_core.modules.settings.records import CannedResponse
from omnichannel_core.modules.settings.service import SettingsService
from omnichannel_core.modules.settings.view import SettingsView

TAGS = ("settings",)
CHANGE_NOTES = (
    "Each part given replaces what it names (hours: the whole week; holidays: the whole"
    " list; away_messages: each channel given; channels: each variable given, null removing"
    " the stored value); parts left out stay. Nothing is stored unless the whole change is"
    " valid: 400 names the field at fault (a time zone that does not exist, overlapping"
    " hours, a channel not loaded, a variable no loaded channel declares). Every change is"
    " audited (settings.updated, secrets masked) and logged as settings.updated; every"
    " server uses a channel value within seconds."
)


class SettingsResource:
    """``GET`` and ``PATCH /api/settings``."""

    operations = {
        "GET": Operation(
            "Get the business's settings",
            permission=SETTINGS_READ,
            responses={200: Response(SettingsView, "The settings.")},
            notes="Everyone signed in may read them; the channels' variables (secrets masked)"
            " only a caller with settings:manage.",
            operation_id="getSettings",
            tags=TAGS,
        ),
        "PATCH": Operation(
            "Change the business's settings",
            permission=SETTINGS_MANAGE,
            body=SettingsChange,
            responses={200: Response(SettingsView, "The settings after the change.")},
            notes=CHANGE_NOTES,
            operation_id="updateSettings",
            tags=TAGS,
        ),
    }

    def __init__(self, settings: SettingsService, config: Config) -> None:
        self.settings = settings
        self.config = config

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = to_json(await self.settings.view(req.context.principal))

    async def on_patch(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        client = caller_address(req, self.config)
        view = await self.settings.change(req.context.body, req.context.principal, client)
        resp.media = to_json(view)


class CannedResponseList:
    """``GET`` and ``POST /api/settings/canned-responses``."""

    operations = {
        "GET": Operation(
            "List the canned responses, by shortcut",
            permission=SETTINGS_READ,
            query=PageQuery,
            responses={200: Response(PageOf(CannedResponse), "One page of canned responses.")},
            operation_id="listCannedResponses",
            tags=TAGS,
        ),
        "POST": Operation(
            "Create a canned response",
            permission=SETTINGS_MANAGE,
            body=NewCannedResponse,
            responses={201: Response(CannedResponse, "The canned response.")},
            errors=("Conflict",),
            notes="409 when its shortcut is another's (field shortcut), or when there are"
            " 1000 already.",
            operation_id="createCannedResponse",
            tags=TAGS,
        ),
    }

    def __init__(self, settings: SettingsService, config: Config) -> None:
        self.settings = settings
        self.config = config

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        query: PageQuery = req.context.query
        resp.media = to_json(await self.settings.canned_responses(query.cursor, query.limit))

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        client = caller_address(req, self.config)
        created = await self.settings.create_canned_response(
            req.context.body, req.context.principal, client
        )
        resp.status = falcon.HTTP_201
        resp.media = to_json(created)


class CannedResponseItem:
    """``GET``, ``PATCH`` and ``DELETE /api/settings/canned-responses/{response_id}``."""

    operations = {
        "GET": Operation(
            "Get a canned response",
            permission=SETTINGS_READ,
            responses={200: Response(CannedResponse, "The canned response.")},
            errors=("NotFound",),
            operation_id="getCannedResponse",
            tags=TAGS,
        ),
        "PATCH": Operation(
            "Change a canned response",
            permission=SETTINGS_MANAGE,
            body=CannedResponseChange,
            responses={200: Response(CannedResponse, "The canned response as changed.")},
            errors=("NotFound", "Conflict"),
            notes="409 when its new shortcut is another's.",
            operation_id="updateCannedResponse",
            tags=TAGS,
        ),
        "DELETE": Operation(
            "Delete a canned response",
            permission=SETTINGS_MANAGE,
            responses={204: Response(None, "Deleted.")},
            errors=("NotFound",),
            operation_id="deleteCannedResponse",
            tags=TAGS,
        ),
    }

    def __init__(self, settings: SettingsService, config: Config) -> None:
        self.settings = settings
        self.config = config

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, response_id: str
    ) -> None:
        resp.media = to_json(await self.settings.store.canned_response(response_id))

    async def on_patch(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, response_id: str
    ) -> None:
        client = caller_address(req, self.config)
        changed = await self.settings.change_canned_response(
            response_id, req.context.body, req.context.principal, client
        )
        resp.media = to_json(changed)

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, response_id: str
    ) -> None:
        client = caller_address(req, self.config)
        await self.settings.delete_canned_response(response_id, req.context.principal, client)
        resp.status = falcon.HTTP_204


def settings_routes(settings: SettingsService, config: Config) -> list[Route]:
    canned = "/api/settings/canned-responses"
    return [
        Route("/api/settings", SettingsResource(settings, config)),
        Route(canned, CannedResponseList(settings, config)),
        Route(canned + "/{response_id}", CannedResponseItem(settings, config)),
    ]

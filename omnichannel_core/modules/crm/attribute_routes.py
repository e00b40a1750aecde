"""``/api/crm/attributes``: the custom attributes contacts may have, which admins declare
(`omnichannel_core.modules.crm.attributes` checks values against them)."""

from __future__ import annotations

import falcon
import falcon.asgi

from omnichannel_core.module import Operation, Page, PageOf, Response, to_json
from omnichannel_core.modules.crm.bodies import AttributeChange, NewAttribute
from omnichannel_core.modules.crm.contacts import ContactResource
from omnichannel_core.modules.crm.permissions import ATTRIBUTES_MANAGE, CONTACTS_READ
from omnichannel_core.modules.crm.records import AttributeDefinition


class AttributeDefinitions(ContactResource):
    """``GET`` and ``POST /api/crm/attributes``."""

    operations = {
        "GET": Operation(
            "List the custom attributes contacts may have",
            permission=CONTACTS_READ,
            responses={200: Response(PageOf(AttributeDefinition), "Every definition, by key.")},
            operation_id="listAttributeDefinitions",
            tags=("crm",),
        ),
        "POST": Operation(
            "Declare a custom attribute",
            permission=ATTRIBUTES_MANAGE,
            body=NewAttribute,
            responses={201: Response(AttributeDefinition, "The definition.")},
            errors=("Conflict",),
            notes="Values already stored under the key stay as they are; from now on a value"
            " written must be of the type.",
            operation_id="declareAttribute",
            tags=("crm",),
        ),
    }

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        definitions = await self.crm.attributes.definitions()
        listed = sorted(definitions.values(), key=lambda definition: definition.key)
        resp.media = to_json(Page(listed, None))

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body: NewAttribute = req.context.body
        definition = await self.crm.attributes.declare(
            body.key, body.type, body.label, body.choices
        )
        resp.status = falcon.HTTP_201
        resp.media = to_json(definition)


class AttributeDefinitionItem(ContactResource):
    """``PATCH`` and ``DELETE /api/crm/attributes/{key}``."""

    operations = {
        "PATCH": Operation(
            "Change a custom attribute's label or choices",
            permission=ATTRIBUTES_MANAGE,
            body=AttributeChange,
            responses={200: Response(AttributeDefinition, "The definition as changed.")},
            errors=("NotFound",),
            notes="A key's type never changes: drop it and declare it again.",
            operation_id="updateAttribute",
            tags=("crm",),
        ),
        "DELETE": Operation(
            "Drop a custom attribute",
            permission=ATTRIBUTES_MANAGE,
            responses={204: Response(None, "Dropped.")},
            errors=("NotFound",),
            notes="Contacts keep their values, undeclared: readable, kept as they are, and"
            " cleared by writing the attributes without them.",
            operation_id="dropAttribute",
            tags=("crm",),
        ),
    }

    async def on_patch(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, key: str
    ) -> None:
        body: AttributeChange = req.context.body
        resp.media = to_json(await self.crm.attributes.change(key, **body.changes()))

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, key: str
    ) -> None:
        await self.crm.attributes.drop(key)
        resp.status = falcon.HTTP_204

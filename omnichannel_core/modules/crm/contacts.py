"""The contacts API: ``/api/contacts`` and what hangs off one contact (identities,
duplicates), and ``/api/crm/merges``. The contacts live in the inbox's store; this module
reaches them through the ``ContactBook`` service, checking what an agent may see
(`omnichannel_core.modules.crm.access`) and the values a profile may hold."""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi

from omnichannel_core.module import (
    Conflict,
    Contact,
    ContactBook,
    Identity,
    InvalidInput,
    Media,
    ModuleContext,
    Operation,
    PageOf,
    Principal,
    Response,
    audit_entry,
    caller_address,
    to_json,
)
from omnichannel_core.modules.crm.access import AGENTS_SEE_THEIRS, visible_contact
from omnichannel_core.modules.crm.bodies import (
    ContactsQuery,
    ContactUpdate,
    IdentityBody,
    IdentityQuery,
    Merge,
    NewContact,
)
from omnichannel_core.modules.crm.permissions import (
    CONTACTS_MERGE,
    CONTACTS_READ,
    CONTACTS_WRITE,
)
from omnichannel_core.modules.crm.profile import emails_of, phones_of
from omnichannel_core.modules.crm.service import Crm

CONTACT_PAGE = PageOf(Contact)
"""A page of contacts, as every list of them answers."""


class ContactResource:
    """What every contacts resource holds: the server's CRM and the module's context."""

    def __init__(self, crm: Crm, context: ModuleContext) -> None:
        self.crm = crm
        self.context = context

    @property
    def contacts(self) -> ContactBook:
        return self.crm.contacts

    def identity_of(self, body: IdentityBody) -> Identity:
        """The identity ``body`` names, on a channel this server has loaded."""
        if not self.context.channels.loaded(body.channel):
            raise InvalidInput(f"channel: no channel {body.channel!r} is loaded", field="channel")
        return body.identity()

    async def visible(self, req: falcon.asgi.Request, contact_id: str) -> Contact:
        return await visible_contact(self.contacts, req.context.principal, contact_id)

    async def checked_profile(
        self, req: falcon.asgi.Request, changes: dict[str, Any], stored: dict[str, Any]
    ) -> dict[str, Any]:
        """``changes`` with the attributes checked against their definitions and the avatar
        against the media store (an image the caller may read)."""
        if "attributes" in changes:
            changes["attributes"] = await self.crm.attributes.check(changes["attributes"], stored)
        if changes.get("avatar") is not None:
            principal: Principal = req.context.principal
            media = await self.crm.media.describe(Media(url="", id=changes["avatar"]), principal)
            if not (media.content_type or "").startswith("image/"):
                raise InvalidInput("avatar: the media item is not an image", field="avatar")
        return changes


class Contacts(ContactResource):
    """``GET /api/contacts?q=&cursor=&limit=`` and ``POST /api/contacts``."""

    operations = {
        "GET": Operation(
            "List contacts, newest first, or search them",
            permission=CONTACTS_READ,
            query=ContactsQuery,
            responses={200: Response(CONTACT_PAGE, "One page of contacts.")},
            notes="An agent gets only the contacts of conversations they can see.",
            operation_id="listContacts",
            tags=("contacts",),
        ),
        "POST": Operation(
            "Create a contact",
            permission=CONTACTS_WRITE,
            body=NewContact,
            responses={201: Response(Contact, "The contact.")},
            errors=("Conflict",),
            notes="Giving `identities` needs `contacts:merge` too (403 without). 409"
            " `conflict` when an identity is another contact's (its id in"
            " `details.contact_id`): add to that one, or merge them. An agent cannot see the"
            " contact they create until it has a conversation they can see.",
            operation_id="createContact",
            tags=("contacts",),
        ),
    }

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        query: ContactsQuery = req.context.query
        principal: Principal = req.context.principal
        visible_to = principal.id if principal.is_agent else None
        page = await self.contacts.list_contacts(query.q, query.cursor, query.limit, visible_to)
        resp.media = to_json(page)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body: NewContact = req.context.body
        if body.identities:  # it decides where those addresses' messages land, as a merge
            req.context.principal.require(CONTACTS_MERGE)
        profile = await self.checked_profile(req, body.changes(), {})
        identities = list(dict.fromkeys(self.identity_of(item) for item in body.identities))
        contact = await self.contacts.create_contact(identities, **profile)
        resp.status = falcon.HTTP_201
        resp.media = to_json(contact)


class ContactItem(ContactResource):
    """``GET`` and ``PATCH /api/contacts/{contact_id}``."""

    operations = {
        "GET": Operation(
            "Get a contact",
            permission=CONTACTS_READ,
            responses={200: Response(Contact, "The contact.")},
            errors=("NotFound",),
            notes=AGENTS_SEE_THEIRS
            + " A contact merged into another answers as that one: its `id` is the"
            " survivor's.",
            operation_id="getContact",
            tags=("contacts",),
        ),
        "PATCH": Operation(
            "Change a contact's profile, tags or custom attributes",
            permission=CONTACTS_WRITE,
            body=ContactUpdate,
            responses={200: Response(Contact, "The contact as changed.")},
            errors=("NotFound",),
            notes=AGENTS_SEE_THEIRS
            + " `attributes` replaces them all: each declared one must be of its type;"
            " an undeclared one may only be kept as it is stored (docs/crm.md).",
            operation_id="updateContact",
            tags=("contacts",),
        ),
    }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, contact_id: str
    ) -> None:
        resp.media = to_json(await self.visible(req, contact_id))

    async def on_patch(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, contact_id: str
    ) -> None:
        body: ContactUpdate = req.context.body
        contact = await self.visible(req, contact_id)
        changes = await self.checked_profile(req, body.changes(), contact.attributes)
        resp.media = to_json(await self.contacts.update_contact(contact.id, **changes))


class ContactIdentities(ContactResource):
    """``POST`` and ``DELETE /api/contacts/{contact_id}/identities``."""

    operations = {
        "POST": Operation(
            "Reach a contact at one more address",
            permission=CONTACTS_MERGE,
            body=IdentityBody,
            responses={200: Response(Contact, "The contact as changed.")},
            errors=("NotFound", "Conflict"),
            notes="The next message from that address is this contact's. 409 `conflict` when"
            " the address is another contact's (its id in `details.contact_id`): merge"
            " them instead.",
            operation_id="addContactIdentity",
            tags=("contacts",),
        ),
        "DELETE": Operation(
            "Stop reaching a contact at an address",
            permission=CONTACTS_MERGE,
            query=IdentityQuery,
            responses={200: Response(Contact, "The contact as changed.")},
            errors=("NotFound",),
            notes="The next message from that address makes a new contact; the contact's"
            " conversations keep their address.",
            operation_id="removeContactIdentity",
            tags=("contacts",),
        ),
    }

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, contact_id: str
    ) -> None:
        body: IdentityBody = req.context.body
        contact = await self.visible(req, contact_id)
        identity = self.identity_of(body)
        resp.media = to_json(await self.contacts.add_identity(contact.id, identity))

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, contact_id: str
    ) -> None:
        query: IdentityQuery = req.context.query
        contact = await self.visible(req, contact_id)
        identity = IdentityBody(query.channel, query.address).identity()
        resp.media = to_json(await self.contacts.remove_identity(contact.id, identity))


class ContactDuplicates(ContactResource):
    """``GET /api/contacts/{contact_id}/duplicates``."""

    operations = {
        "GET": Operation(
            "Suggest contacts that may be the same person",
            permission=CONTACTS_READ,
            responses={200: Response(CONTACT_PAGE, "The contacts suggested, oldest first.")},
            errors=("NotFound",),
            notes=AGENTS_SEE_THEIRS
            + " A contact is suggested when it shares an email address or a phone number"
            " (in its profile or as an identity's address); an agent is suggested only"
            " contacts they may see. One page, at most 20.",
            operation_id="listContactDuplicates",
            tags=("contacts",),
        ),
    }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, contact_id: str
    ) -> None:
        contact = await self.visible(req, contact_id)
        principal: Principal = req.context.principal
        found = await self.contacts.find(emails_of(contact), phones_of(contact), limit=21)
        others = [other for other in found if other.id != contact.id][:20]
        if principal.is_agent:
            others = [o for o in others if await self.contacts.visible_to(o.id, principal.id)]
        resp.media = {"items": to_json(others), "next_cursor": None}


class Merges(ContactResource):
    """``POST /api/crm/merges``."""

    operations = {
        "POST": Operation(
            "Merge two contacts into one",
            permission=CONTACTS_MERGE,
            body=Merge,
            responses={200: Response(Contact, "The survivor, as stored after the merge.")},
            errors=("NotFound", "Conflict"),
            notes="Everything of `merged_id` moves to `survivor_id` (docs/crm.md,"
            ' "Merging", has the rule for values both have); `merged_id` then answers as'
            " the survivor. Audited (`contact.merged`, with both ids). 409 `conflict`, with"
            " the survivor's id in `details.contact_id`, when `merged_id` was merged already.",
            operation_id="mergeContacts",
            tags=("crm",),
        ),
    }

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body: Merge = req.context.body
        if body.survivor_id == body.merged_id:
            raise InvalidInput(
                "merged_id: a contact cannot be merged into itself", field="merged_id"
            )
        merged = await self.contacts.get_contact(body.merged_id)
        if merged.id != body.merged_id:  # merged away already (a retry, or the pair reversed)
            raise Conflict(f"contact {body.merged_id!r} was merged already", contact_id=merged.id)
        survivor = await self.contacts.get_contact(body.survivor_id)  # the live one it names
        if survivor.id == merged.id:  # the survivor was merged into the other already
            raise Conflict(
                f"contact {body.survivor_id!r} was merged into {merged.id!r} already",
                contact_id=merged.id,
            )
        audit = audit_entry(
            req.context.principal,
            "contact.merged",
            "contact",
            survivor.id,
            {"merged_id": body.merged_id},
            caller_address(req, self.context.config),
        )
        resp.media = to_json(await self.contacts.merge(survivor.id, body.merged_id, audit))

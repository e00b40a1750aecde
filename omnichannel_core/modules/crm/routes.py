"""A contact's notes, timeline and avatar, and :func:`crm_routes`, every route of the CRM
but imports and exports (`omnichannel_core.modules.crm.transfer`'s): the contacts
(`contacts`), attribute definitions (`attribute_routes`), segments (`segment_routes`) and
privacy (`privacy`). Each resource that names a contact checks that the caller may see it
(`omnichannel_core.modules.crm.access`)."""

from __future__ import annotations

import falcon
import falcon.asgi

from omnichannel_core.module import (
    ModuleContext,
    NotFound,
    Operation,
    PageOf,
    PageQuery,
    Principal,
    Response,
    Route,
    to_json,
)
from omnichannel_core.modules.crm import privacy
from omnichannel_core.modules.crm.access import AGENTS_SEE_THEIRS
from omnichannel_core.modules.crm.attribute_routes import (
    AttributeDefinitionItem,
    AttributeDefinitions,
)
from omnichannel_core.modules.crm.bodies import (
    NoteBody,
)
from omnichannel_core.modules.crm.contacts import (
    ContactDuplicates,
    ContactIdentities,
    ContactItem,
    ContactResource,
    Contacts,
    Merges,
)
from omnichannel_core.modules.crm.permissions import (
    CONTACTS_READ,
    CONTACTS_WRITE,
)
from omnichannel_core.modules.crm.records import (
    Note,
    TimelineItem,
)
from omnichannel_core.modules.crm.segment_routes import (
    SegmentItem,
    SegmentMembers,
    Segments,
    SegmentSize,
    SegmentTrials,
)
from omnichannel_core.modules.crm.service import Crm

IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
"""How an avatar's bytes begin, by the type they are served as (the media store checked
them at upload; anything else is served as bytes)."""


def image_type(content: bytes) -> str:
    """The type an avatar's bytes are served as: the image they begin as, else bytes."""
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    kinds = (kind for start, kind in IMAGE_SIGNATURES if content.startswith(start))
    return next(kinds, "application/octet-stream")


class ContactNotes(ContactResource):
    """``GET`` and ``POST /api/contacts/{contact_id}/notes``."""

    operations = {
        "GET": Operation(
            "List a contact's notes, newest first",
            permission=CONTACTS_READ,
            query=PageQuery,
            responses={200: Response(PageOf(Note), "One page of notes.")},
            errors=("NotFound",),
            notes=AGENTS_SEE_THEIRS,
            operation_id="listContactNotes",
            tags=("contacts",),
        ),
        "POST": Operation(
            "Write a note on a contact",
            permission=CONTACTS_WRITE,
            body=NoteBody,
            responses={201: Response(Note, "The note.")},
            errors=("NotFound",),
            notes=AGENTS_SEE_THEIRS + " The caller is the note's author.",
            operation_id="createContactNote",
            tags=("contacts",),
        ),
    }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, contact_id: str
    ) -> None:
        query: PageQuery = req.context.query
        contact = await self.visible(req, contact_id)
        resp.media = to_json(await self.crm.notes.list(contact.id, query.cursor, query.limit))

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, contact_id: str
    ) -> None:
        body: NoteBody = req.context.body
        contact = await self.visible(req, contact_id)
        note = await self.crm.notes.write(contact.id, req.context.principal, body.text)
        resp.status = falcon.HTTP_201
        resp.media = to_json(note)


class ContactNote(ContactResource):
    """``PATCH`` and ``DELETE /api/contacts/{contact_id}/notes/{note_id}``."""

    operations = {
        "PATCH": Operation(
            "Change a note's text",
            permission=CONTACTS_WRITE,
            body=NoteBody,
            responses={200: Response(Note, "The note as changed.")},
            errors=("NotFound",),
            notes=AGENTS_SEE_THEIRS + " Only the note's author, or an admin, may change it.",
            operation_id="updateContactNote",
            tags=("contacts",),
        ),
        "DELETE": Operation(
            "Delete a note",
            permission=CONTACTS_WRITE,
            responses={200: Response(Note, "The note as it was.")},
            errors=("NotFound",),
            notes=AGENTS_SEE_THEIRS + " Only the note's author, or an admin, may delete it.",
            operation_id="deleteContactNote",
            tags=("contacts",),
        ),
    }

    async def on_patch(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, contact_id: str, note_id: str
    ) -> None:
        body: NoteBody = req.context.body
        await self._note_of(req, contact_id, note_id)
        resp.media = to_json(await self.crm.notes.edit(note_id, req.context.principal, body.text))

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, contact_id: str, note_id: str
    ) -> None:
        await self._note_of(req, contact_id, note_id)
        resp.media = to_json(await self.crm.notes.delete(note_id, req.context.principal))

    async def _note_of(self, req: falcon.asgi.Request, contact_id: str, note_id: str) -> Note:
        """The note, when it is on this (visible) contact: another contact's is NotFound."""
        contact = await self.visible(req, contact_id)
        note = await self.crm.notes.get(note_id)
        if note.contact_id != contact.id:
            raise NotFound(f"no note {note_id!r} on this contact", id=note_id)
        return note


class ContactTimeline(ContactResource):
    """``GET /api/contacts/{contact_id}/timeline``."""

    operations = {
        "GET": Operation(
            "List everything about a contact, newest first",
            permission=CONTACTS_READ,
            query=PageQuery,
            responses={200: Response(PageOf(TimelineItem), "One page of the timeline.")},
            errors=("NotFound",),
            notes=AGENTS_SEE_THEIRS
            + " Messages (with their text as it is now), delivery statuses, conversation"
            " changes, profile changes, merges and notes, across every channel. An agent"
            " is not shown the entries of conversations they cannot see: a page may come"
            " back short, its `next_cursor` going on.",
            operation_id="listContactTimeline",
            tags=("contacts",),
        ),
    }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, contact_id: str
    ) -> None:
        query: PageQuery = req.context.query
        principal: Principal = req.context.principal
        contact = await self.visible(req, contact_id)
        agent = principal.id if principal.is_agent else None
        page = await self.crm.timeline.page(contact.id, query.cursor, query.limit, agent)
        resp.media = to_json(page)


class ContactAvatar(ContactResource):
    """``GET /api/contacts/{contact_id}/avatar``."""

    operations = {
        "GET": Operation(
            "Get a contact's picture",
            permission=CONTACTS_READ,
            responses={
                200: Response(
                    None,
                    "The image's bytes.",
                    schema={"type": "string", "format": "binary"},
                    media_type="image/*",
                )
            },
            errors=("NotFound",),
            notes=AGENTS_SEE_THEIRS + " 404 when the contact has no picture.",
            operation_id="getContactAvatar",
            tags=("contacts",),
        ),
    }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, contact_id: str
    ) -> None:
        contact = await self.visible(req, contact_id)
        if contact.avatar is None:
            raise NotFound("the contact has no picture", id=contact.id)
        content = await self.crm.media.read(contact.avatar)
        resp.content_type = image_type(content)
        resp.set_header("Cache-Control", "private, max-age=300")
        resp.data = content


def crm_routes(crm: Crm, context: ModuleContext) -> list[Route]:
    """The contacts API and the CRM's (besides imports and exports)."""
    resources: dict[str, type[ContactResource]] = {
        "/api/contacts": Contacts,
        "/api/contacts/{contact_id}": ContactItem,
        "/api/contacts/{contact_id}/identities": ContactIdentities,
        "/api/contacts/{contact_id}/duplicates": ContactDuplicates,
        "/api/contacts/{contact_id}/notes": ContactNotes,
        "/api/contacts/{contact_id}/notes/{note_id}": ContactNote,
        "/api/contacts/{contact_id}/timeline": ContactTimeline,
        "/api/contacts/{contact_id}/avatar": ContactAvatar,
        "/api/contacts/{contact_id}/export": privacy.ContactExportResource,
        "/api/contacts/{contact_id}/erase": privacy.ContactErasure,
        "/api/crm/merges": Merges,
        "/api/crm/attributes": AttributeDefinitions,
        "/api/crm/attributes/{key}": AttributeDefinitionItem,
        "/api/crm/segments": Segments,
        "/api/crm/segments/preview": SegmentTrials,
        "/api/crm/segments/{segment_id}": SegmentItem,
        "/api/crm/segments/{segment_id}/contacts": SegmentMembers,
        "/api/crm/segments/{segment_id}/count": SegmentSize,
    }
    return [Route(path, resource(crm, context)) for path, resource in resources.items()]

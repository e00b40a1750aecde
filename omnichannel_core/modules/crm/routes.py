"""The CRM's API besides the contacts themselves (`omnichannel_core.modules.crm.contacts`):
a contact's notes, timeline and avatar, and under ``/api/crm/`` custom attribute
definitions and segments (imports and exports are `omnichannel_core.modules.crm.transfer`'s).
Each resource that names a contact checks that the caller may see it
(`omnichannel_core.modules.crm.access`)."""

from __future__ import annotations

from datetime import datetime

import attrs
import falcon
import falcon.asgi

from omnichannel_core.module import (
    Contact,
    ModuleContext,
    NotFound,
    Operation,
    Page,
    PageOf,
    PageQuery,
    Principal,
    Response,
    Route,
    new_id,
    to_json,
    utcnow,
)
from omnichannel_core.modules.crm import privacy
from omnichannel_core.modules.crm.access import AGENTS_SEE_THEIRS
from omnichannel_core.modules.crm.bodies import (
    AttributeChange,
    NewAttribute,
    NewSegment,
    NoteBody,
    SegmentChange,
    SegmentPreview,
)
from omnichannel_core.modules.crm.contacts import (
    CONTACT_PAGE,
    ContactDuplicates,
    ContactIdentities,
    ContactItem,
    ContactResource,
    Contacts,
    Merges,
)
from omnichannel_core.modules.crm.filters import parse_filter
from omnichannel_core.modules.crm.permissions import (
    ATTRIBUTES_MANAGE,
    CONTACTS_READ,
    CONTACTS_WRITE,
    SEGMENTS_READ,
    SEGMENTS_WRITE,
)
from omnichannel_core.modules.crm.records import (
    SEGMENT_PREFIX,
    AttributeDefinition,
    Note,
    Segment,
    TimelineItem,
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


@attrs.frozen
class SegmentCount:
    """How many contacts a segment holds now."""

    count: int
    counted_at: datetime


@attrs.frozen
class SegmentTrial:
    """What a filter holds now: how many, and the first members."""

    count: int
    items: list[Contact]
    """The first members."""


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


class Segments(ContactResource):
    """``GET`` and ``POST /api/crm/segments``."""

    operations = {
        "GET": Operation(
            "List segments, newest first",
            permission=SEGMENTS_READ,
            query=PageQuery,
            responses={200: Response(PageOf(Segment), "One page of segments.")},
            operation_id="listSegments",
            tags=("crm",),
        ),
        "POST": Operation(
            "Save a segment",
            permission=SEGMENTS_WRITE,
            body=NewSegment,
            responses={201: Response(Segment, "The segment, its filter in normal form.")},
            notes="400 naming the JSON path of the fault for a filter the language refuses.",
            operation_id="createSegment",
            tags=("crm",),
        ),
    }

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        query: PageQuery = req.context.query
        resp.media = to_json(await self.crm.store.list_segments(query.cursor, query.limit))

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body: NewSegment = req.context.body
        now = utcnow()
        segment = Segment(
            id=new_id(SEGMENT_PREFIX),
            name=body.name.strip(),
            description=body.description,
            filter=parse_filter(body.filter).to_json(),
            created_by=req.context.principal.id,
            created_at=now,
            updated_at=now,
        )
        await self.crm.store.add_segment(segment)
        resp.status = falcon.HTTP_201
        resp.media = to_json(segment)


class SegmentItem(ContactResource):
    """``GET``, ``PATCH`` and ``DELETE /api/crm/segments/{segment_id}``."""

    operations = {
        "GET": Operation(
            "Get a segment",
            permission=SEGMENTS_READ,
            responses={200: Response(Segment, "The segment.")},
            errors=("NotFound",),
            operation_id="getSegment",
            tags=("crm",),
        ),
        "PATCH": Operation(
            "Change a segment's name, description or filter",
            permission=SEGMENTS_WRITE,
            body=SegmentChange,
            responses={200: Response(Segment, "The segment as changed.")},
            errors=("NotFound",),
            operation_id="updateSegment",
            tags=("crm",),
        ),
        "DELETE": Operation(
            "Delete a segment",
            permission=SEGMENTS_WRITE,
            responses={204: Response(None, "Deleted.")},
            errors=("NotFound",),
            operation_id="deleteSegment",
            tags=("crm",),
        ),
    }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, segment_id: str
    ) -> None:
        resp.media = to_json(await self.crm.store.get_segment(segment_id))

    async def on_patch(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, segment_id: str
    ) -> None:
        changes = req.context.body.changes()
        if "filter" in changes:
            changes["filter"] = parse_filter(changes["filter"]).to_json()
        if "name" in changes:
            changes["name"] = changes["name"].strip()
        segment = await self.crm.store.update_segment(segment_id, utcnow(), **changes)
        resp.media = to_json(segment)

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, segment_id: str
    ) -> None:
        await self.crm.store.delete_segment(segment_id)
        resp.status = falcon.HTTP_204


class SegmentMembers(ContactResource):
    """``GET /api/crm/segments/{segment_id}/contacts``."""

    operations = {
        "GET": Operation(
            "List the contacts a segment holds now",
            permission=SEGMENTS_READ,
            query=PageQuery,
            responses={200: Response(CONTACT_PAGE, "One page of contacts.")},
            errors=("NotFound",),
            notes="In the store's scan order (by id). Each request reads at most 5,000"
            " contacts: a page may come back short, even empty, with a `next_cursor` to go"
            ' on from; only the last page has none (docs/crm.md, "Segments").',
            operation_id="listSegmentContacts",
            tags=("crm",),
        ),
    }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, segment_id: str
    ) -> None:
        query: PageQuery = req.context.query
        segment = await self.crm.store.get_segment(segment_id)
        page = await self.crm.segments().members(
            parse_filter(segment.filter), query.cursor, query.limit
        )
        resp.media = to_json(page)


class SegmentSize(ContactResource):
    """``GET /api/crm/segments/{segment_id}/count``."""

    operations = {
        "GET": Operation(
            "Count the contacts a segment holds now",
            permission=SEGMENTS_READ,
            responses={200: Response(SegmentCount, "The count.")},
            errors=("NotFound",),
            notes='Reads every contact (docs/crm.md, "Segments", has the figures).',
            operation_id="countSegment",
            tags=("crm",),
        ),
    }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, segment_id: str
    ) -> None:
        segment = await self.crm.store.get_segment(segment_id)
        now = utcnow()
        count = await self.crm.segments().count(parse_filter(segment.filter))
        resp.media = to_json(SegmentCount(count, now))


class SegmentTrials(ContactResource):
    """``POST /api/crm/segments/preview``."""

    operations = {
        "POST": Operation(
            "Try a filter: how many contacts it holds, and the first of them",
            permission=SEGMENTS_READ,
            body=SegmentPreview,
            responses={200: Response(SegmentTrial, "The count and the first members.")},
            notes="Saves nothing. Reads every contact, as a count does.",
            operation_id="previewSegment",
            tags=("crm",),
        ),
    }

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body: SegmentPreview = req.context.body
        checked = parse_filter(body.filter)
        first: list[Contact] = []
        count = 0
        async for contact in self.crm.segments().iterate(checked):
            count += 1
            if len(first) < body.limit:
                first.append(contact)
        resp.media = to_json(SegmentTrial(count, first))


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

"""``/api/crm/segments``: saved filters over the contacts (the language:
`omnichannel_core.modules.crm.filters`), their members and counts, and a filter tried
before it is saved."""

from __future__ import annotations

from datetime import datetime

import attrs
import falcon
import falcon.asgi

from omnichannel_core.module import (
    Contact,
    Operation,
    PageOf,
    PageQuery,
    Response,
    new_id,
    to_json,
    utcnow,
)
from omnichannel_core.modules.crm.bodies import NewSegment, SegmentChange, SegmentPreview
from omnichannel_core.modules.crm.contacts import CONTACT_PAGE, ContactResource
from omnichannel_core.modules.crm.filters import parse_filter
from omnichannel_core.modules.crm.permissions import SEGMENTS_READ, SEGMENTS_WRITE
from omnichannel_core.modules.crm.records import SEGMENT_PREFIX, Segment


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

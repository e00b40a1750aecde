"""The import and export API: ``/api/crm/imports`` (start, follow, list and cancel CSV
imports, worked by the ``crm.imports`` job) and ``/api/crm/exports/contacts`` (every
contact, or a segment's, as CSV or JSON, streamed).

An import is started with a file uploaded first through ``POST /api/media`` (as
``text/csv``: at most ``OMNICHANNEL_MEDIA_MAX_BYTES``, 25 MiB by default). The route reads
its header and checks the mapping against it, so a column the file lacks, a field that does
not exist or a file that is not UTF-8 CSV answer 400 at once; the rows are the job's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import falcon
import falcon.asgi
import structlog

from omnichannel_core.module import (
    UNSET,
    Contact,
    ContactBook,
    CorsPolicy,
    InvalidInput,
    Media,
    MediaKeeper,
    ModuleContext,
    Operation,
    PageOf,
    PageQuery,
    Principal,
    Response,
    Route,
    RoutePolicy,
    audit_entry,
    caller_address,
    to_json,
    utcnow,
)
from omnichannel_core.modules.crm.permissions import CONTACTS_EXPORT, CONTACTS_IMPORT
from omnichannel_core.modules.crm.transfer.bodies import ExportFormat, ExportQuery, NewImport
from omnichannel_core.modules.crm.transfer.exporting import WRITERS, every_contact
from omnichannel_core.modules.crm.transfer.importing import AttributeRules, text_attributes
from omnichannel_core.modules.crm.transfer.records import ContactImport, ImportState
from omnichannel_core.modules.crm.transfer.starting import new_import
from omnichannel_core.modules.crm.transfer.store import ImportStore

log = structlog.get_logger("omnichannel.crm")

CSV_TYPES = frozenset(
    {
        "text/csv",
        "text/plain",
        "application/csv",
        "text/comma-separated-values",
        "text/tab-separated-values",
        "application/vnd.ms-excel",  # what some browsers on Windows call a .csv
    }
)
"""The media types a file to import may have been uploaded as."""

SegmentContacts = Callable[[str], Awaitable[AsyncIterator[Contact]]]
"""``await segment_contacts(segment_id)``: the segment's members (NotFound for an unknown
segment, raised before the response starts)."""

EXPORT_POLICY = RoutePolicy(
    cors=CorsPolicy(
        expose_headers="X-Request-ID, Retry-After, Preference-Applied, Content-Disposition"
    )
)

IMPORT_NOTES = (
    "Upload the file first (`POST /api/media` with `Content-Type: text/csv`), then name it"
    " here. The header is read now: a mapping naming a column the file lacks (or has twice),"
    " a field that does not exist, an attribute not declared, a channel not loaded, a"
    " `dedupe` the mapping gives nothing to match by, or a file that is not CSV in UTF-8"
    " answers 400. The rows are read by the `crm.imports` job, 200 at a time: follow it with"
    " `GET /api/crm/imports/{import_id}` (`state`, `rows_read`, `created`, `updated`,"
    " `skipped`, `failed`, the first 200 `errors` as `{row, column, message}`). Emails are"
    " lowercased and checked, phones made E.164 (`+` and the country code), `locale` a"
    " language tag, `timezone` an IANA zone; `tags`, `email`, `phone` and `identity.*`"
    " cells may hold several values separated by `;`; an empty cell changes nothing. A row"
    " with a cell refused is not written. `email` is a profile email, not an identity: map"
    " a column to `identity.email` to reach the contact by email."
)


class _Resource:
    def __init__(self, store: ImportStore, context: ModuleContext) -> None:
        self.store = store
        self.context = context

    async def _audit(
        self, req: falcon.asgi.Request, action: str, import_id: str, details: dict[str, Any]
    ) -> None:
        address = caller_address(req, self.context.config)
        entry = audit_entry(req.context.principal, action, "import", import_id, details, address)
        await self.context.audit.append(entry)


class Imports(_Resource):
    """``GET`` and ``POST /api/crm/imports``"""

    operations = {
        "GET": Operation(
            "List contact imports, newest first",
            permission=CONTACTS_IMPORT,
            query=PageQuery,
            responses={200: Response(PageOf(ContactImport), "One page of imports.")},
            operation_id="listContactImports",
            tags=("crm",),
        ),
        "POST": Operation(
            "Import contacts from a CSV file",
            permission=CONTACTS_IMPORT,
            body=NewImport,
            responses={202: Response(ContactImport, "Started: the import, pending.")},
            notes=IMPORT_NOTES,
            operation_id="startContactImport",
            tags=("crm",),
        ),
    }

    def __init__(
        self, store: ImportStore, context: ModuleContext, attributes: AttributeRules
    ) -> None:
        super().__init__(store, context)
        self.attributes = attributes

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        query: PageQuery = req.context.query
        resp.media = to_json(await self.store.list_imports(query.cursor, query.limit))

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body: NewImport = req.context.body
        principal: Principal = req.context.principal
        media = self.context.service(MediaKeeper)
        described = await media.describe(Media(url="", id=body.media_id), principal)
        kind = (described.content_type or "").split(";", 1)[0].strip().lower()
        if kind not in CSV_TYPES:
            raise InvalidInput(
                f"media_id: {body.media_id} is {kind or 'of no type'}, not a CSV file: upload"
                " it as text/csv",
                field="media_id",
            )
        content = await media.read(body.media_id)
        record = new_import(
            content,
            body.media_id,
            body.mapping,
            f"{principal.kind}:{principal.id}",
            await self.attributes(),
            self.context.channels.loaded,
            dedupe=None if body.dedupe is UNSET else body.dedupe,
            on_match=body.on_match,
            dry_run=body.dry_run,
            delimiter=body.delimiter,
        )
        await self.store.add_import(record)
        details = {"media_id": body.media_id, "dry_run": body.dry_run, "dedupe": str(record.dedupe)}
        await self._audit(req, "contacts.import_started", record.id, details)
        self.context.news.tell()  # a runner in this process starts on it at once
        resp.status = falcon.HTTP_202
        resp.media = to_json(record)


class ImportItem(_Resource):
    """``GET /api/crm/imports/{import_id}``"""

    operations = {
        "GET": Operation(
            "Get a contact import: how far it is, and the rows it refused",
            permission=CONTACTS_IMPORT,
            responses={200: Response(ContactImport, "The import.")},
            errors=("NotFound",),
            operation_id="getContactImport",
            tags=("crm",),
        )
    }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, import_id: str
    ) -> None:
        resp.media = to_json(await self.store.get_import(import_id))


class ImportCancel(_Resource):
    """``POST /api/crm/imports/{import_id}/cancel``"""

    operations = {
        "POST": Operation(
            "Cancel a contact import",
            permission=CONTACTS_IMPORT,
            responses={200: Response(ContactImport, "The import: cancelled, or as it ended.")},
            errors=("NotFound",),
            notes="The rows imported so far stay. An import that ended already is answered as"
            " it is.",
            operation_id="cancelContactImport",
            tags=("crm",),
        )
    }

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, import_id: str
    ) -> None:
        cancelled = await self.store.cancel_import(import_id)
        if cancelled.state is ImportState.CANCELLED and not cancelled.dry_run:
            await self.context.service(MediaKeeper).forget([cancelled.media_id])
        await self._audit(
            req, "contacts.import_cancelled", import_id, {"state": str(cancelled.state)}
        )
        resp.media = to_json(cancelled)


EXPORT_NOTES = (
    "Streamed, a page of contacts at a time, as a download (`Content-Disposition:"
    " attachment`). `format=csv` (the default): a header then a row per contact, UTF-8;"
    " lists joined with `;`, identities as `channel:address`, times RFC 3339, `attributes`"
    " one column of JSON; a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage"
    " return gets a `'` before it, so no spreadsheet runs it as a formula (phones read"
    " `'+34...`; an import takes the `'` off). `format=json`: a JSON array of contacts. An"
    " export that fails midway is cut short (JSON then does not parse)."
)


class ContactExport:
    """``GET /api/crm/exports/contacts?format=&segment_id=``"""

    operations = {
        "GET": Operation(
            "Export contacts as CSV or JSON",
            permission=CONTACTS_EXPORT,
            query=ExportQuery,
            responses={
                200: Response(
                    None,
                    "The contacts: CSV (`text/csv`), or with `format=json` a JSON array of"
                    " contacts (`application/json`).",
                    schema={"type": "string"},
                    media_type="text/csv",
                    headers={"Content-Disposition": {"type": "string"}},
                    alternatives={
                        "application/json": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Contact"},
                        }
                    },
                )
            },
            errors=("NotFound",),
            notes=EXPORT_NOTES,
            operation_id="exportContacts",
            tags=("crm",),
        )
    }

    def __init__(self, context: ModuleContext, segment_contacts: SegmentContacts | None) -> None:
        self.context = context
        self.segment_contacts = segment_contacts

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        query: ExportQuery = req.context.query
        contacts: AsyncIterator[Contact]
        if query.segment_id is None:
            contacts = every_contact(self.context.service(ContactBook))
        elif self.segment_contacts is None:
            raise InvalidInput("segment_id: this server has no segments", field="segment_id")
        else:
            contacts = await self.segment_contacts(query.segment_id)
        write, content_type = WRITERS[str(query.format)]
        details = {"format": str(query.format), "segment_id": query.segment_id}
        address = caller_address(req, self.context.config)
        await self.context.audit.append(
            audit_entry(
                req.context.principal, "contacts.exported", "contacts", None, details, address
            )
        )
        stamp = utcnow().strftime("%Y%m%d-%H%M%S")
        extension = "json" if query.format is ExportFormat.JSON else "csv"
        resp.content_type = content_type
        resp.set_header(
            "Content-Disposition", f'attachment; filename="contacts-{stamp}.{extension}"'
        )
        resp.stream = _logged(write(contacts), query)


async def _logged(chunks: AsyncIterator[bytes], query: ExportQuery) -> AsyncIterator[bytes]:
    """``chunks``, with a log line when they fail midway (the response is then cut short)."""
    try:
        async for chunk in chunks:
            yield chunk
    except Exception:
        log.exception("crm_export_failed", format=str(query.format), segment_id=query.segment_id)
        raise


def transfer_routes(
    context: ModuleContext,
    segment_contacts: SegmentContacts | None = None,
    attributes: AttributeRules = text_attributes,
) -> list[Route]:
    """The routes of imports and exports. ``segment_contacts`` gives a segment's members
    (``?segment_id=``; None: the parameter answers 400); ``attributes`` the reader of
    custom attributes an import checks its mapping with."""
    store = context.store(ImportStore)
    return [
        Route("/api/crm/imports", Imports(store, context, attributes)),
        Route("/api/crm/imports/{import_id}", ImportItem(store, context)),
        Route("/api/crm/imports/{import_id}/cancel", ImportCancel(store, context)),
        Route("/api/crm/exports/contacts", ContactExport(context, segment_contacts), EXPORT_POLICY),
    ]

"""Privacy (GDPR): ``GET /api/contacts/{contact_id}/export``, everything stored about one
person, and ``POST /api/contacts/{contact_id}/erase``, the right to be forgotten.

The export is answered whole (one JSON document built in memory): the contact, its
conversations, every message of them and every one it sent in others' conversations, its
notes and timeline entries, and the definitions of its attributes. Its size is that of the
person's history (messages' texts and metadata, not media bytes: an item is named by its
id, read through ``GET /api/media/{id}``).

Erasing is the inbox's (``ContactBook.erase``: docs/crm.md, "Erasure"); the CRM's notes and
timeline entries of the contact go when the ``crm.timeline`` subscriber reads
``contact.erased``, soon after (in log order). The audit entry ``contact.erased`` holds the
contact's id and counts, nothing personal.
"""

from __future__ import annotations

from typing import Any

import attrs
import falcon
import falcon.asgi

from omnichannel_core.module import (
    Contact,
    Conversation,
    InvalidInput,
    Message,
    Operation,
    Response,
    audit_entry,
    caller_address,
    field,
    to_json,
)
from omnichannel_core.modules.crm.contacts import ContactResource
from omnichannel_core.modules.crm.permissions import CONTACTS_ERASE, CONTACTS_EXPORT
from omnichannel_core.modules.crm.records import AttributeDefinition, Note, TimelineEntry

PAGE = 200
"""Notes and timeline entries read per call, building an export."""


@attrs.frozen
class ContactRecords:
    """Everything stored about one contact."""

    contact: Contact
    conversations: list[Conversation] = attrs.field(
        metadata={"description": "Its conversations, oldest first."}
    )
    messages: list[Message] = attrs.field(
        metadata={
            "description": "Every message of its conversations, and every one it sent in"
            " another's conversation (an email thread), oldest first."
        }
    )
    notes: list[Note] = attrs.field(metadata={"description": "Notes on it, newest first."})
    timeline: list[TimelineEntry] = attrs.field(
        metadata={"description": "Its timeline entries as stored (ids), newest first."}
    )
    attributes: list[AttributeDefinition] = attrs.field(
        metadata={"description": "The definitions of the custom attributes it has a value of."}
    )


@attrs.frozen
class EraseBody:
    confirm: str = field(
        min_length=1,
        max_length=200,
        description="The contact's id again: nothing is erased unless it matches the path's.",
    )


@attrs.frozen
class ErasedCounts:
    """What an erasure did (this call: a repeat finishing an interrupted one counts what
    was left)."""

    contact_id: str
    messages: int = attrs.field(metadata={"description": "Messages redacted."})
    conversations: int = attrs.field(metadata={"description": "Conversations redacted."})
    identities: int = attrs.field(metadata={"description": "Identities removed."})
    media: int = attrs.field(metadata={"description": "Media items forgotten."})


class ContactExportResource(ContactResource):
    """``GET /api/contacts/{contact_id}/export``."""

    operations = {
        "GET": Operation(
            "Export everything stored about a contact",
            permission=CONTACTS_EXPORT,
            responses={200: Response(ContactRecords, "All about the contact, whole.")},
            errors=("NotFound",),
            notes="The answer is built whole (no paging): the contact's profile, its"
            " conversations and all their messages, notes, timeline entries and attribute"
            " definitions. Media are named by id (`GET /api/media/{media_id}` reads them).",
            operation_id="exportContact",
            tags=("contacts",),
        ),
    }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, contact_id: str
    ) -> None:
        contact = await self.visible(req, contact_id)
        contact, conversations, messages = await self.contacts.contact_data(contact.id)
        notes: list[Any] = await _all(lambda c: self.crm.store.list_notes(contact.id, c, PAGE))
        timeline: list[Any] = await _all(
            lambda c: self.crm.store.list_timeline(contact.id, c, PAGE)
        )
        definitions = await self.crm.attributes.definitions()
        attributes = [definitions[key] for key in sorted(contact.attributes) if key in definitions]
        export = ContactRecords(contact, conversations, messages, notes, timeline, attributes)
        resp.media = to_json(export)


async def _all(page_of: Any) -> list[Any]:
    """Every item of a paged list, page after page."""
    items: list[Any] = []
    cursor: str | None = None
    while True:
        page = await page_of(cursor)
        items.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return items


class ContactErasure(ContactResource):
    """``POST /api/contacts/{contact_id}/erase``."""

    operations = {
        "POST": Operation(
            "Erase a contact and all about them (GDPR)",
            permission=CONTACTS_ERASE,
            body=EraseBody,
            responses={200: Response(ErasedCounts, "What was erased.")},
            errors=("NotFound", "Conflict"),
            notes="`confirm` must repeat the contact's id (400 otherwise, erasing nothing)."
            " The profile and identities go; conversations and messages are redacted in"
            " place (their ids stay); media only their messages hold are deleted; notes and"
            ' timeline entries go soon after (docs/crm.md, "Erasure"). The audit keeps'
            " the fact, who did it, and counts. Erasing again finishes an interrupted"
            " erasure (counting what was left: zeros once finished), while every other"
            " route answers 404 for the contact. 409 `conflict` for a contact merged into"
            " another (its id in `details.contact_id`): erase that one.",
            operation_id="eraseContact",
            tags=("contacts",),
        ),
    }

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, contact_id: str
    ) -> None:
        body: EraseBody = req.context.body
        if body.confirm != contact_id:
            raise InvalidInput("confirm: repeat the contact's id to erase it", field="confirm")
        audit = audit_entry(
            req.context.principal,
            "contact.erased",
            "contact",
            contact_id,
            {},
            caller_address(req, self.context.config),
        )
        counts = await self.contacts.erase(contact_id, audit)
        # Now, not only when the timeline's subscriber reads contact.erased (it does too:
        # a note written meanwhile goes then), so notes never outlive the answer.
        await self.crm.store.forget_contact(contact_id)
        resp.media = to_json(ErasedCounts(contact_id=contact_id, **counts))

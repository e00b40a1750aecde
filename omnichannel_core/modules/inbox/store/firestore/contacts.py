"""Contacts on Firestore: changes made through the API, and the list, plain or searched
(`firestore_search` has how a search reads), perhaps only those visible to an agent.

A tombstone (a contact merged away) has no ``created_at`` nor ``search_prefixes``, so the
list's queries never meet one; a change naming one changes the survivor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import attrs
from google.cloud.firestore_v1 import DocumentSnapshot, FieldFilter, Or

from omnichannel_core.module import Contact, Page, encode_cursor, format_timestamp, utcnow
from omnichannel_core.module.firestore import (
    KeysetQuery,
    Transaction,
    is_record_id,
    json_text,
    log_event,
)
from omnichannel_core.modules.inbox import events
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.store.firestore.documents import (
    Layout,
    contact_fields,
    live_contact_in,
    read_contact,
)
from omnichannel_core.modules.inbox.store.firestore.search import SCAN_LIMIT, index_token
from omnichannel_core.modules.inbox.store.profiles import changed_fields
from omnichannel_core.modules.inbox.store.search import matches


async def update_contact(
    transaction: Transaction, layout: Layout, contact_id: str, changes: dict[str, Any]
) -> Contact:
    """Change the given profile fields (search words and reach follow) and log
    ``contact.updated`` with those that changed; write nothing when none did."""
    [snapshot] = await transaction.get(layout.contact(contact_id))
    snapshot = await live_contact_in(transaction, layout, snapshot)
    before = read_contact(snapshot)
    contact = attrs.evolve(before, **changes)
    changed = changed_fields(before, contact)
    if not changed:
        return before
    contact = attrs.evolve(contact, updated_at=utcnow())
    transaction.set(snapshot.reference, contact_fields(contact))
    log_event(
        transaction,
        layout.database,
        InboxEvent.CONTACT_UPDATED,
        contact.id,
        data=events.contact_changes(changed),
    )
    return contact


async def add_contact_attributes(
    transaction: Transaction, layout: Layout, contact_id: str, attributes: Mapping[str, Any]
) -> Contact:
    """Set each of ``attributes`` the contact does not have yet, keeping the others, and log
    ``contact.updated`` (``fields``: ``["attributes"]``); write nothing when it has them
    all. One transaction: an agent's change in between makes it read again."""
    [snapshot] = await transaction.get(layout.contact(contact_id))
    snapshot = await live_contact_in(transaction, layout, snapshot)
    before = read_contact(snapshot)
    missing = {name: value for name, value in attributes.items() if name not in before.attributes}
    if not missing:
        return before
    contact = attrs.evolve(before, attributes={**before.attributes, **missing}, updated_at=utcnow())
    transaction.update(
        snapshot.reference,
        {"attributes_json": json_text(contact.attributes), "updated_at": contact.updated_at},
    )
    log_event(
        transaction,
        layout.database,
        InboxEvent.CONTACT_UPDATED,
        contact.id,
        data=events.contact_changes(["attributes"]),
    )
    return contact


async def visible_to(layout: Layout, contact_id: str, user_id: str) -> bool:
    """Whether a conversation of the contact (a live one's id) is assigned to ``user_id``
    or to nobody: one query, equality filters only (single-field indexes)."""
    query = layout.conversations.where(filter=FieldFilter("contact_id", "==", contact_id)).where(
        filter=Or([FieldFilter("assignee", "==", user_id), FieldFilter("assignee", "==", None)])
    )
    return any([True async for _ in query.limit(1).stream()])


async def audience(layout: Layout, contact_id: str) -> frozenset[str | None]:
    """The assignees of the contact's conversations: one query on ``contact_id`` (a
    single-field index), reading the ``assignee`` field only."""
    if not is_record_id(contact_id, "ct"):
        return frozenset()
    query = layout.conversations.where(filter=FieldFilter("contact_id", "==", contact_id))
    return frozenset(
        [snapshot.get("assignee") async for snapshot in query.select(["assignee"]).stream()]
    )


def _position(snapshot: DocumentSnapshot) -> str:
    return encode_cursor(format_timestamp(snapshot.get("created_at")), snapshot.id)


async def list_contacts(
    layout: Layout,
    search: str | None,
    cursor: str | None,
    limit: int,
    scan_limit: int = SCAN_LIMIT,
    visible_to_user: str | None = None,
) -> Page:
    """Contacts newest first; with a search, one token through the index and every token
    checked in memory, reading at most ``scan_limit`` contacts per page. With
    ``visible_to_user``, each contact read is then asked :func:`visible_to` (one query
    each, at once), within the same bound."""
    token, tokens = index_token(search)
    query: Any = layout.contacts
    if token is not None:
        query = query.where(filter=FieldFilter("search_prefixes", "array_contains", token))
    keyset = KeysetQuery(layout.contacts, query, "created_at", descending=True, id_prefix="ct")
    if visible_to_user is None:
        if token is None:
            return await keyset.page(cursor, limit, read_contact)
        return await keyset.filtered_page(
            cursor,
            limit,
            lambda snapshot: matches(snapshot.get("search_words"), tokens),
            read_contact,
            scan_limit,
        )
    kept: list[DocumentSnapshot] = []
    position, budget = cursor, max(scan_limit, limit + 1)
    while True:
        page = await keyset.filtered_page(
            position,
            limit + 1,
            lambda snapshot: matches(snapshot.get("search_words"), tokens),
            lambda snapshot: snapshot,
            budget,
        )
        shown = await asyncio.gather(
            *(visible_to(layout, snapshot.id, visible_to_user) for snapshot in page.items)
        )
        for snapshot, visible in zip(page.items, shown, strict=True):
            if visible:
                kept.append(snapshot)
                if len(kept) > limit:
                    return Page([read_contact(s) for s in kept[:limit]], _position(kept[-2]))
        budget -= max(len(page.items), limit + 1)  # at least what a full page reads
        if page.next_cursor is None or budget <= 0:
            return Page([read_contact(s) for s in kept], page.next_cursor)
        position = page.next_cursor

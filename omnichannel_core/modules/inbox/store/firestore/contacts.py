"""Contacts on Firestore: changes made through the API, and the list, plain or searched
(`firestore_search` has how a search reads)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from google.cloud.firestore_v1 import FieldFilter

from omnichannel_core.module import UNSET, Contact, Page, utcnow
from omnichannel_core.module.firestore import KeysetQuery, Transaction, json_text, log_event
from omnichannel_core.modules.inbox import events
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.store.firestore.documents import (
    Layout,
    contact_fields,
    read_contact,
)
from omnichannel_core.modules.inbox.store.firestore.search import SCAN_LIMIT, index_token
from omnichannel_core.modules.inbox.store.search import matches


async def update_contact(
    transaction: Transaction,
    layout: Layout,
    contact_id: str,
    display_name: str | None = UNSET,
    tags: tuple[str, ...] = UNSET,
    attributes: dict[str, Any] = UNSET,
) -> Contact:
    """Change the given fields (search words follow the name) and log ``contact.updated``."""
    reference = layout.contact(contact_id)
    [snapshot] = await transaction.get(reference)
    changes: dict[str, Any] = {"updated_at": utcnow()}
    if display_name is not UNSET:
        changes["display_name"] = display_name
    if tags is not UNSET:
        changes["tags"] = tuple(tags)
    if attributes is not UNSET:
        changes["attributes"] = dict(attributes)
    before = read_contact(snapshot)
    contact = attrs.evolve(before, **changes)
    transaction.set(reference, contact_fields(contact))
    changed = [
        field
        for field in ("display_name", "tags", "attributes")
        if getattr(before, field) != getattr(contact, field)
    ]
    log_event(
        transaction,
        layout.database,
        InboxEvent.CONTACT_UPDATED,
        contact_id,
        data=events.contact_changes(changed),
    )
    return contact


async def add_contact_attributes(
    transaction: Transaction, layout: Layout, contact_id: str, attributes: Mapping[str, Any]
) -> Contact:
    """Set each of ``attributes`` the contact does not have yet, keeping the others, and log
    ``contact.updated`` (``fields``: ``["attributes"]``); write nothing when it has them
    all. One transaction: an agent's change in between makes it read again."""
    reference = layout.contact(contact_id)
    [snapshot] = await transaction.get(reference)
    before = read_contact(snapshot)
    missing = {name: value for name, value in attributes.items() if name not in before.attributes}
    if not missing:
        return before
    contact = attrs.evolve(before, attributes={**before.attributes, **missing}, updated_at=utcnow())
    transaction.update(
        reference,
        {"attributes_json": json_text(contact.attributes), "updated_at": contact.updated_at},
    )
    log_event(
        transaction,
        layout.database,
        InboxEvent.CONTACT_UPDATED,
        contact_id,
        data=events.contact_changes(["attributes"]),
    )
    return contact


async def list_contacts(
    layout: Layout, search: str | None, cursor: str | None, limit: int, scan_limit: int = SCAN_LIMIT
) -> Page:
    """Contacts newest first; with a search, one token through the index and every token
    checked in memory, reading at most ``scan_limit`` contacts per page."""
    token, tokens = index_token(search)
    if token is None:
        keyset = KeysetQuery(
            layout.contacts, layout.contacts, "created_at", descending=True, id_prefix="ct"
        )
        return await keyset.page(cursor, limit, read_contact)
    indexed = FieldFilter("search_prefixes", "array_contains", token)
    query = layout.contacts.where(filter=indexed)
    keyset = KeysetQuery(layout.contacts, query, "created_at", descending=True, id_prefix="ct")
    return await keyset.filtered_page(
        cursor,
        limit,
        lambda snapshot: matches(snapshot.get("search_words"), tokens),
        read_contact,
        scan_limit,
    )

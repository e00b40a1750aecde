"""Contacts on Firestore: changes made through the API, and the list, plain or searched
(`firestore_search` has how a search reads)."""

from __future__ import annotations

from typing import Any

import attrs
from google.cloud.firestore_v1 import FieldFilter

from omnichannel_core.events.records import EventType
from omnichannel_core.models import Contact, Page, utcnow
from omnichannel_core.store import UNSET
from omnichannel_core.store.firestore_documents import Layout, contact_fields, read_contact
from omnichannel_core.store.firestore_events import log_event
from omnichannel_core.store.firestore_paging import KeysetQuery
from omnichannel_core.store.firestore_search import SCAN_LIMIT, index_token
from omnichannel_core.store.firestore_transaction import Transaction
from omnichannel_core.store.search import matches


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
    contact = attrs.evolve(read_contact(snapshot), **changes)
    transaction.set(reference, contact_fields(contact))
    log_event(transaction, layout, EventType.CONTACT_UPDATED, contact_id, None, ())
    return contact


async def list_contacts(
    layout: Layout, search: str | None, cursor: str | None, limit: int, scan_limit: int = SCAN_LIMIT
) -> Page:
    """Contacts newest first; with a search, one token through the index and every token
    checked in memory, reading at most ``scan_limit`` contacts per page."""
    token, tokens = index_token(search)
    if token is None:
        keyset = KeysetQuery(layout.contacts, layout.contacts, "created_at", descending=True)
        return await keyset.page(cursor, limit, read_contact)
    indexed = FieldFilter("search_prefixes", "array_contains", token)
    query = layout.contacts.where(filter=indexed)
    keyset = KeysetQuery(layout.contacts, query, "created_at", descending=True)
    return await keyset.filtered_page(
        cursor,
        limit,
        lambda snapshot: matches(snapshot.get("search_words"), tokens),
        read_contact,
        scan_limit,
    )

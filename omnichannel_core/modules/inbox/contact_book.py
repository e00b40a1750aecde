"""The inbox's contacts for the CRM module (:class:`omnichannel_core.module.ContactBook`):
the contract's calls, over the inbox's store, which does each in its own transactions
(`omnichannel_core.modules.inbox.store`: ``create_contact``, ``merge_contacts``...).

Erasing (:meth:`StoreContactBook.erase`) is the one call that spans two stores: the inbox's
store redacts the contact's records and keeps, on the contact's tombstone, the media ids
they named; the media store then forgets those no other contact's message holds; then the
tombstone drops them. Interrupted anywhere, erasing again finishes it."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import structlog

from omnichannel_core.module import (
    AuditEntry,
    Contact,
    ContactActivity,
    Conversation,
    Identity,
    InvalidInput,
    MediaKeeper,
    Message,
    Page,
)
from omnichannel_core.modules.inbox.store import InboxStore

log = structlog.get_logger("omnichannel.inbox")


class StoreContactBook:
    """:class:`~omnichannel_core.module.ContactBook` over the inbox's store; ``media``
    gives the media store (looked up when a contact is erased)."""

    def __init__(self, store: InboxStore, media: Callable[[], MediaKeeper] | None = None) -> None:
        self.store = store
        self._media = media

    async def get_contact(self, contact_id: str) -> Contact:
        return await self.store.get_contact(contact_id)

    async def list_contacts(
        self, search: str | None, cursor: str | None, limit: int, visible_to: str | None = None
    ) -> Page:
        return await self.store.list_contacts(search, cursor, limit, visible_to)

    async def visible_to(self, contact_id: str, user_id: str) -> bool:
        return await self.store.contact_visible_to(contact_id, user_id)

    async def scan(self, cursor: str | None, limit: int) -> Page:
        return await self.store.scan_contacts(cursor, limit)

    async def activity(self, contact_ids: Collection[str]) -> dict[str, ContactActivity]:
        return await self.store.contact_activity(contact_ids)

    async def find(
        self, emails: Collection[str] = (), phones: Collection[str] = (), limit: int = 20
    ) -> list[Contact]:
        return await self.store.find_contacts(emails, phones, limit)

    async def create_contact(
        self, identities: Collection[Identity] = (), **profile: Any
    ) -> Contact:
        return await self.store.create_contact(tuple(identities), profile)

    async def update_contact(self, contact_id: str, **changes: Any) -> Contact:
        return await self.store.update_contact(contact_id, **changes)

    async def add_identity(self, contact_id: str, identity: Identity) -> Contact:
        return await self.store.add_identity(contact_id, identity)

    async def remove_identity(self, contact_id: str, identity: Identity) -> Contact:
        return await self.store.remove_identity(contact_id, identity)

    async def merge(
        self, survivor_id: str, merged_id: str, audit: AuditEntry | None = None
    ) -> Contact:
        if survivor_id == merged_id:
            raise InvalidInput("a contact cannot be merged into itself", contact_id=merged_id)
        return await self.store.merge_contacts(survivor_id, merged_id, audit)

    async def erase(self, contact_id: str, audit: AuditEntry | None = None) -> dict[str, int]:
        if self._media is None:
            raise RuntimeError("this contact book was made without the media store")
        erased = await self.store.erase_contact(contact_id, audit)
        forgotten = 0
        if erased.media_ids:
            forgotten = await self._media().forget(
                erased.media_ids, erased.message_ids, keep_shared=True
            )
        await self.store.finish_erasure(erased.contact_id)
        counts = {
            "messages": erased.messages,
            "conversations": erased.conversations,
            "identities": erased.identities,
            "media": forgotten,
        }
        log.info("contact_erased", contact_id=erased.contact_id, **counts)
        return counts

    async def contact_data(
        self, contact_id: str
    ) -> tuple[Contact, list[Conversation], list[Message]]:
        return await self.store.contact_records(contact_id)

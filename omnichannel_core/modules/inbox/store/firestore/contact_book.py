"""The CRM's side of contacts on Firestore (`omnichannel_core.services.ContactBook` over the
inbox's store): contacts made through the API, identities added and removed, merges, and
the reads a whole pass or a lookup needs.

**Merging.** A transaction cannot query, and one commit takes at most 500 writes, so a merge
is two steps:

1. one transaction reads both contacts and every identity document of either, and writes
   the survivor (`store.profiles.merged_profile`), the merged contact as a tombstone
   (``merged_into``), each identity document pointing at the survivor (and at the newest
   conversation of either on its channel), and ``contact.merged``. An ingest that read one
   of those documents conflicts with it: it either committed before (and what it wrote is
   swept below) or runs again after, and then finds the survivor;
2. a sweep moves, by queries, every conversation, message and message key still naming the
   merged contact to the survivor, :data:`SWEEP_BATCH` documents per transaction (which
   reads them again by reference, so a writer of one of them meanwhile makes it run
   again rather than fail), again and again until a whole pass finds none. Nothing new
   can name the merged contact after step 1 but a reply stored in a conversation not yet
   moved, which the same pass (or the next) moves: messages are swept after
   conversations.

A crash between the two leaves the tombstone with documents to move: the merge retried
answers Conflict (merged already) after sweeping them. Reads never wait for the sweep:
every reader of a contact by id (``get_contact``, a duplicate webhook's answer, the
outbox's opt-out check) follows the tombstone.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import datetime
from typing import Any

import attrs
from google.cloud.firestore_v1 import (
    AsyncCollectionReference,
    AsyncDocumentReference,
    DocumentSnapshot,
    FieldFilter,
)
from google.cloud.firestore_v1.base_query import BaseQuery

from omnichannel_core.module import (
    AuditEntry,
    Conflict,
    Contact,
    ContactActivity,
    Conversation,
    ConversationStatus,
    Identity,
    InvalidInput,
    Message,
    NotFound,
    Page,
    utcnow,
)
from omnichannel_core.module.firestore import (
    FirestoreDatabase,
    Transaction,
    exact_time,
    existing,
    is_record_id,
    log_event,
    queue_audit,
)
from omnichannel_core.modules.inbox import events
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.store.erasure import Erasure
from omnichannel_core.modules.inbox.store.firestore import contacts, erasure
from omnichannel_core.modules.inbox.store.firestore.documents import (
    Layout,
    contact_fields,
    is_erased,
    live_contact,
    live_contact_in,
    merged_into,
    read_contact,
    tombstone_fields,
)
from omnichannel_core.modules.inbox.store.firestore.ingest import identity_fields
from omnichannel_core.modules.inbox.store.profiles import (
    merged_profile,
    new_contact,
    profile_changes,
    scan_cursor,
    scan_position,
    sorted_identities,
    wanted_reach,
)

SWEEP_BATCH = 400
"""Documents moved per commit by a merge's sweep (a commit takes at most 500 writes)."""
IN_LIMIT = 30
"""Values per ``in`` / ``array_contains_any`` filter (Firestore's limit)."""

_Newest = tuple[datetime, str]
"""A conversation's (``created_at``, id): the larger is the newer, as on SQLite."""


async def newest_conversation(
    layout: Layout, contact_id: str, channel: str
) -> tuple[str, _Newest] | None:
    """The contact's most recently created conversation on ``channel`` (a query: composite
    index ``contact_id``, ``channel``, ``created_at`` desc), as (channel, key), or None."""
    query = (
        layout.conversations.where(filter=FieldFilter("contact_id", "==", contact_id))
        .where(filter=FieldFilter("channel", "==", channel))
        .order_by("created_at", direction=BaseQuery.DESCENDING)
        .order_by("__name__", direction=BaseQuery.DESCENDING)
        .limit(1)
    )
    async for snapshot in query.stream():
        return channel, (exact_time(snapshot.get("created_at")), snapshot.id)
    return None


async def create(
    transaction: Transaction,
    layout: Layout,
    identities: tuple[Identity, ...],
    profile: dict[str, Any],
) -> Contact:
    """A new contact; Conflict when one of ``identities`` is held (read in the
    transaction, created by its commit: the claim, as an ingest's)."""
    references = [layout.identity(i.channel, i.address) for i in identities]
    held = await transaction.get(*references) if references else []
    for identity, snapshot in zip(identities, held, strict=True):
        if snapshot.exists:
            raise Conflict(
                f"{identity.channel} address {identity.address!r} is another contact's",
                contact_id=snapshot.get("contact_id"),
            )
    contact = new_contact(identities, profile, utcnow())
    for identity, reference in zip(identities, references, strict=True):
        transaction.create(reference, identity_fields(identity, contact.id, None))
    transaction.create(layout.contact(contact.id), contact_fields(contact))
    log_event(
        transaction,
        layout.database,
        InboxEvent.CONTACT_CREATED,
        contact.id,
        data=events.contact_created(list(profile)),
    )
    return contact


def _identities_changed(
    transaction: Transaction, layout: Layout, snapshot: DocumentSnapshot, contact: Contact
) -> Contact:
    transaction.set(snapshot.reference, contact_fields(contact))
    log_event(
        transaction,
        layout.database,
        InboxEvent.CONTACT_UPDATED,
        contact.id,
        data=events.contact_changes(["identities"]),
    )
    return contact


async def add_identity(
    transaction: Transaction,
    layout: Layout,
    contact_id: str,
    identity: Identity,
    newest: tuple[str, tuple[str, _Newest] | None],
) -> Contact:
    """``identity`` made the contact's. The conversation its document names is the one
    every identity of the contact on that channel names (they all name the newest), or,
    with none there, ``newest``: (the live contact's id, its newest conversation on the
    channel), queried before the transaction (a conversation of a contact on a channel is
    made only through an identity there, so none can appear meanwhile)."""
    reference = layout.identity(identity.channel, identity.address)
    snapshot, held = await transaction.get(layout.contact(contact_id), reference)
    snapshot = await live_contact_in(transaction, layout, snapshot)
    contact = read_contact(snapshot)
    if held.exists:
        if held.get("contact_id") == contact.id:
            return contact
        raise Conflict(
            f"{identity.channel} address {identity.address!r} is another contact's;"
            " merge the two instead",
            contact_id=held.get("contact_id"),
        )
    conversation_id = None
    siblings = [known for known in contact.identities if known.channel == identity.channel]
    if siblings:
        [sibling] = await transaction.get(layout.identity(siblings[0].channel, siblings[0].address))
        conversation_id = sibling.get("conversation_id") if sibling.exists else None
    queried_for, found = newest
    if conversation_id is None and queried_for == contact.id and found is not None:
        conversation_id = found[1][1]
    transaction.create(reference, identity_fields(identity, contact.id, conversation_id))
    changed = attrs.evolve(
        contact,
        identities=sorted_identities([*contact.identities, identity]),
        updated_at=utcnow(),
    )
    return _identities_changed(transaction, layout, snapshot, changed)


async def remove_identity(
    transaction: Transaction, layout: Layout, contact_id: str, identity: Identity
) -> Contact:
    reference = layout.identity(identity.channel, identity.address)
    snapshot, held = await transaction.get(layout.contact(contact_id), reference)
    snapshot = await live_contact_in(transaction, layout, snapshot)
    contact = read_contact(snapshot)
    if identity not in contact.identities:
        raise NotFound(
            f"contact {contact.id!r} has no {identity.channel} identity {identity.address!r}",
            id=contact.id,
        )
    if held.exists and held.get("contact_id") == contact.id:
        transaction.delete(reference)
    kept = tuple(known for known in contact.identities if known != identity)
    changed = attrs.evolve(contact, identities=kept, updated_at=utcnow())
    return _identities_changed(transaction, layout, snapshot, changed)


async def merge_step(
    transaction: Transaction,
    layout: Layout,
    survivor_id: str,
    merged_id: str,
    queried: list[tuple[str, _Newest]],
    audit: AuditEntry | None = None,
) -> Contact:
    """Step 1 of a merge (the module's docstring): ``queried`` holds the newest
    conversation per channel of either contact as found before the transaction; ``audit``
    is appended in it."""
    survivor_snapshot, merged_snapshot = await transaction.get(
        layout.contact(survivor_id), layout.contact(merged_id)
    )
    existing(merged_snapshot, "contact")
    if is_erased(merged_snapshot):
        raise NotFound(f"contact {merged_id!r} not found (erased)", id=merged_id)
    if (already := merged_into(merged_snapshot)) is not None:
        raise Conflict(f"contact {merged_id!r} was merged already", contact_id=already)
    if is_erased(survivor_snapshot):
        raise NotFound(f"contact {survivor_id!r} not found (erased)", id=survivor_id)
    if (moved := merged_into(survivor_snapshot)) is not None:
        raise Conflict(f"contact {survivor_id!r} was merged meanwhile", contact_id=moved)
    survivor, merged = read_contact(survivor_snapshot), read_contact(merged_snapshot)
    identities = sorted_identities([*survivor.identities, *merged.identities])
    references = [layout.identity(i.channel, i.address) for i in identities]
    held = await transaction.get(*references) if references else []
    cached = {
        snapshot.get("conversation_id")
        for snapshot in held
        if snapshot.exists and snapshot.get("conversation_id")
    }
    candidates: list[tuple[str, _Newest]] = list(queried)
    to_read = [layout.conversation(cid) for cid in sorted(cached)]
    for snapshot in await transaction.get(*to_read) if to_read else []:
        if snapshot.exists:
            key = (exact_time(snapshot.get("created_at")), snapshot.id)
            candidates.append((snapshot.get("channel"), key))
    newest: dict[str, _Newest] = {}
    for channel, key in candidates:
        if channel not in newest or key > newest[channel]:
            newest[channel] = key
    now = utcnow()
    after = merged_profile(survivor, merged, now)
    transaction.set(survivor_snapshot.reference, contact_fields(after))
    transaction.set(merged_snapshot.reference, tombstone_fields(survivor.id, now))
    for identity, reference, snapshot in zip(identities, references, held, strict=True):
        newest_there = newest.get(identity.channel)
        conversation_id = newest_there[1] if newest_there else None
        if snapshot.exists:
            changes = {"contact_id": survivor.id, "conversation_id": conversation_id}
            transaction.update(reference, changes)
        else:  # listed, not stored (never the case, but then it is now)
            transaction.set(reference, identity_fields(identity, survivor.id, conversation_id))
    if audit is not None:
        queue_audit(transaction, layout.database, audit)
    log_event(
        transaction,
        layout.database,
        InboxEvent.CONTACT_MERGED,
        survivor.id,
        data=events.contact_merged(merged_id),
    )
    return after


Transact = Callable[[tuple[str, ...], Callable[[Transaction], Awaitable[Any]]], Awaitable[Any]]
"""A store's ``_transact``: a transaction on a key, retried while Firestore aborts it."""


async def _move_batch(
    transaction: Transaction,
    references: list[AsyncDocumentReference],
    merged_id: str,
    survivor_id: str,
) -> int:
    """Point each of ``references`` still naming ``merged_id`` at ``survivor_id``, read and
    written in one transaction (a concurrent writer of one of them makes it run again)."""
    moved = 0
    for snapshot in await transaction.get(*references):
        if snapshot.exists and snapshot.get("contact_id") == merged_id:
            transaction.update(snapshot.reference, {"contact_id": survivor_id})
            moved += 1
    return moved


async def _move(
    transact: Transact,
    collection: AsyncCollectionReference,
    merged_id: str,
    survivor_id: str,
) -> int:
    """Point every document of ``collection`` naming ``merged_id`` at ``survivor_id``, a
    batch of :data:`SWEEP_BATCH` per transaction; how many were moved."""
    moved = 0
    query = collection.where(filter=FieldFilter("contact_id", "==", merged_id))
    while True:
        found = [snapshot.reference async for snapshot in query.limit(SWEEP_BATCH).stream()]
        if not found:
            return moved
        move = functools.partial(
            _move_batch, references=found, merged_id=merged_id, survivor_id=survivor_id
        )
        moved += await transact(("merge", merged_id), move)


async def sweep(transact: Transact, layout: Layout, merged_id: str, survivor_id: str) -> None:
    """Step 2 of a merge: conversations, then messages, then message keys, until a whole
    pass moves nothing."""
    while True:
        moved = 0
        for collection in (layout.conversations, layout.messages, layout.message_keys):
            moved += await _move(transact, collection, merged_id, survivor_id)
        if not moved:
            return


async def find(
    layout: Layout, emails: Collection[str], phones: Collection[str], limit: int
) -> list[Contact]:
    """Contacts whose ``reach`` holds any of the values (``array_contains_any``, 30 values
    a query, oldest first: composite index ``reach`` contains, ``created_at``)."""
    values = wanted_reach(emails, phones)
    if not values or limit < 1:
        return []
    found: dict[str, DocumentSnapshot] = {}
    for start in range(0, len(values), IN_LIMIT):
        query = (
            layout.contacts.where(
                filter=FieldFilter("reach", "array_contains_any", values[start : start + IN_LIMIT])
            )
            .order_by("created_at")
            .order_by("__name__")
            .limit(limit)
        )
        async for snapshot in query.stream():
            found[snapshot.id] = snapshot
    ordered = sorted(found.values(), key=lambda s: (exact_time(s.get("created_at")), s.id))
    return [read_contact(snapshot) for snapshot in ordered[:limit]]


async def scan(layout: Layout, cursor: str | None, limit: int) -> Page:
    """Live contacts by id, reading past tombstones."""
    position = scan_position(cursor)
    kept: list[DocumentSnapshot] = []
    while True:
        query = layout.contacts.order_by("__name__")
        if position is not None:
            query = query.start_after({"__name__": layout.contacts.document(position)})
        documents = [snapshot async for snapshot in query.limit(limit + 1).stream()]
        for snapshot in documents:
            if merged_into(snapshot) is None and not is_erased(snapshot):
                kept.append(snapshot)
                if len(kept) > limit:
                    items = [read_contact(s) for s in kept[:limit]]
                    return Page(items, scan_cursor(items[-1].id))
        if len(documents) <= limit:
            return Page([read_contact(s) for s in kept], None)
        position = documents[-1].id


async def activity(layout: Layout, contact_ids: list[str]) -> dict[str, ContactActivity]:
    """Each id's activity, from its conversations (``in`` queries of 30 ids)."""
    latest: dict[str, datetime] = {}
    statuses: dict[str, set[str]] = {}
    channels: dict[str, set[str]] = {}
    asked = [contact_id for contact_id in contact_ids if is_record_id(contact_id, "ct")]
    for start in range(0, len(asked), IN_LIMIT):  # an id no contact can have has none
        chunk = asked[start : start + IN_LIMIT]
        query = layout.conversations.where(filter=FieldFilter("contact_id", "in", chunk))
        query = query.select(["contact_id", "status", "channel", "last_activity_at"])
        async for snapshot in query.stream():
            owner = snapshot.get("contact_id")
            at = exact_time(snapshot.get("last_activity_at"))
            latest[owner] = max(latest.get(owner, at), at)
            statuses.setdefault(owner, set()).add(snapshot.get("status"))
            channels.setdefault(owner, set()).add(snapshot.get("channel"))
    return {
        contact_id: ContactActivity(
            last_activity_at=latest[contact_id],
            statuses=tuple(ConversationStatus(s) for s in sorted(statuses[contact_id])),
            channels=tuple(sorted(channels[contact_id])),
        )
        if contact_id in latest
        else ContactActivity()
        for contact_id in contact_ids
    }


class FirestoreContacts:
    """The contacts' methods of :class:`FirestoreInboxStore` (a part of it)."""

    database: FirestoreDatabase
    search_scan_limit: int

    @property
    def layout(self) -> Layout:  # pragma: no cover - the store's
        raise NotImplementedError

    async def _transact(self, key: tuple[str, ...], body: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    async def get_contact(self, contact_id: str) -> Contact:
        return read_contact(await live_contact(self.layout, contact_id))

    async def update_contact(self, contact_id: str, **changes: Any) -> Contact:
        layout, wanted = self.layout, profile_changes(changes)
        return await self._transact(
            ("contact", contact_id),
            lambda t: contacts.update_contact(t, layout, contact_id, wanted),
        )

    async def create_contact(
        self, identities: Collection[Identity] = (), profile: Mapping[str, Any] | None = None
    ) -> Contact:
        layout, wanted = self.layout, profile_changes(profile or {})
        unique = tuple(dict.fromkeys(identities))
        key = ("identity", unique[0].channel, unique[0].address) if unique else ("contact",)
        return await self._transact(key, lambda t: create(t, layout, unique, wanted))

    async def add_identity(self, contact_id: str, identity: Identity) -> Contact:
        layout = self.layout
        live = await live_contact(layout, contact_id)
        found = await newest_conversation(layout, live.id, identity.channel)
        return await self._transact(
            ("identity", identity.channel, identity.address),
            lambda t: add_identity(t, layout, contact_id, identity, (live.id, found)),
        )

    async def remove_identity(self, contact_id: str, identity: Identity) -> Contact:
        layout = self.layout
        return await self._transact(
            ("identity", identity.channel, identity.address),
            lambda t: remove_identity(t, layout, contact_id, identity),
        )

    async def merge_contacts(
        self, survivor_id: str, merged_id: str, audit: AuditEntry | None = None
    ) -> Contact:
        layout = self.layout
        survivor = await live_contact(layout, survivor_id)
        merged = await layout.contact(merged_id).get()
        existing(merged, "contact")
        if is_erased(merged):
            raise NotFound(f"contact {merged_id!r} not found (erased)", id=merged_id)
        if merged_into(merged) is not None:  # a merge retried: finish its sweep first
            holder = await live_contact(layout, merged_id)
            await sweep(self._transact, layout, merged_id, holder.id)
            raise Conflict(f"contact {merged_id!r} was merged already", contact_id=holder.id)
        if survivor.id == merged_id:
            raise InvalidInput("a contact cannot be merged into itself", contact_id=merged_id)
        both = (read_contact(survivor), read_contact(merged))
        channels = sorted({i.channel for contact in both for i in contact.identities})
        found = await asyncio.gather(
            *(
                newest_conversation(layout, contact.id, channel)
                for contact in both
                for channel in channels
            )
        )
        queried = [newest for newest in found if newest is not None]
        after: Contact = await self._transact(
            ("contact", survivor.id),
            lambda t: merge_step(t, layout, survivor.id, merged_id, queried, audit),
        )
        await sweep(self._transact, layout, merged_id, survivor.id)
        return after

    async def erase_contact(self, contact_id: str, audit: AuditEntry | None = None) -> Erasure:
        return await erasure.erase(self._transact, self.layout, contact_id, audit)

    async def finish_erasure(self, contact_id: str) -> None:
        await erasure.finish(self._transact, self.layout, contact_id)

    async def contact_records(
        self, contact_id: str
    ) -> tuple[Contact, list[Conversation], list[Message]]:
        return await erasure.records(self.layout, contact_id)

    async def find_contacts(
        self, emails: Collection[str] = (), phones: Collection[str] = (), limit: int = 20
    ) -> list[Contact]:
        return await find(self.layout, emails, phones, limit)

    async def contact_visible_to(self, contact_id: str, user_id: str) -> bool:
        live = await live_contact(self.layout, contact_id)
        return await contacts.visible_to(self.layout, live.id, user_id)

    async def contact_audience(self, contact_id: str) -> frozenset[str | None]:
        return await contacts.audience(self.layout, contact_id)

    async def scan_contacts(self, cursor: str | None, limit: int) -> Page:
        return await scan(self.layout, cursor, limit)

    async def contact_activity(self, contact_ids: Collection[str]) -> dict[str, ContactActivity]:
        return await activity(self.layout, list(dict.fromkeys(contact_ids)))

    async def list_contacts(
        self, search: str | None, cursor: str | None, limit: int, visible_to: str | None = None
    ) -> Page:
        return await contacts.list_contacts(
            self.layout, search, cursor, limit, self.search_scan_limit, visible_to
        )

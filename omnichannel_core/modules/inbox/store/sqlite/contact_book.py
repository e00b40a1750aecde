"""The CRM's side of contacts on SQLite (`omnichannel_core.services.ContactBook` over the
inbox's store): profile changes, identities added and removed, merges, and the reads a
whole pass or a lookup needs.

Every write is one ``database.write``, so one transaction under the database's one write
lock: a merge moves the merged contact's identities, conversations and messages in the same
step as it leaves the tombstone (``merged_into``), and no ingest can run in between, so none
can land on the merged contact afterwards (or read it half-moved).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Mapping
from typing import Any

import attrs

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
    compact_json,
    decode_list_cursor,
    format_timestamp,
    parse_timestamp,
    utcnow,
)
from omnichannel_core.module.sqlite import SqliteDatabase, append_audit, append_event, keyset_page
from omnichannel_core.modules.inbox import events
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.store.erasure import Erasure
from omnichannel_core.modules.inbox.store.profiles import (
    changed_fields,
    merged_profile,
    new_contact,
    profile_changes,
    reach,
    scan_cursor,
    scan_position,
    search_addresses,
    wanted_reach,
)
from omnichannel_core.modules.inbox.store.sqlite import erasure
from omnichannel_core.modules.inbox.store.sqlite.contacts import (
    search_clause,
    search_text,
    store_reach,
)
from omnichannel_core.modules.inbox.store.sqlite.rows import (
    fetch_contact,
    live_contact_row,
    load_contact,
    load_contacts,
)

VISIBLE = (
    "EXISTS (SELECT 1 FROM conversations AS visible WHERE visible.contact_id = contacts.id"
    " AND (visible.assignee = ? OR visible.assignee IS NULL))"
)
"""A contact with a conversation assigned to the user bound, or to nobody."""


def write_contact(connection: sqlite3.Connection, contact: Contact, reach_changed: bool) -> None:
    """Store every field of ``contact`` (its search words recomputed; its reach too when
    ``reach_changed``)."""
    connection.execute(
        "UPDATE contacts SET display_name = ?, tags = ?, attributes = ?, search_terms = ?,"
        " opted_out = ?, emails = ?, phones = ?, company = ?, locale = ?, timezone = ?,"
        " avatar = ?, created_at = ?, updated_at = ? WHERE id = ?",
        (
            contact.display_name,
            json.dumps(list(contact.tags)),
            compact_json(contact.attributes),
            search_text(contact.display_name, search_addresses(contact)),
            json.dumps(list(contact.opted_out)),
            json.dumps(list(contact.emails)),
            json.dumps(list(contact.phones)),
            contact.company,
            contact.locale,
            contact.timezone,
            contact.avatar,
            format_timestamp(contact.created_at),
            format_timestamp(contact.updated_at),
            contact.id,
        ),
    )
    if reach_changed:
        store_reach(connection, contact.id, reach(contact))


def _holder(connection: sqlite3.Connection, identity: Identity) -> str | None:
    row = connection.execute(
        "SELECT contact_id FROM identities WHERE channel = ? AND address = ?",
        (identity.channel, identity.address),
    ).fetchone()
    return None if row is None else str(row["contact_id"])


def update(connection: sqlite3.Connection, contact_id: str, changes: dict[str, Any]) -> Contact:
    """Change the given profile fields; log ``contact.updated`` with those that changed,
    and write nothing when none did."""
    before = fetch_contact(connection, contact_id)
    after = attrs.evolve(before, **changes)
    changed = changed_fields(before, after)
    if not changed:
        return before
    now = utcnow()
    after = attrs.evolve(after, updated_at=now)
    write_contact(connection, after, reach_changed=bool({"emails", "phones"} & set(changed)))
    append_event(
        connection,
        InboxEvent.CONTACT_UPDATED,
        after.id,
        at=format_timestamp(now),
        data=events.contact_changes(changed),
    )
    return fetch_contact(connection, after.id)


def create(
    connection: sqlite3.Connection, identities: tuple[Identity, ...], profile: dict[str, Any]
) -> Contact:
    """A new contact with ``identities`` and ``profile``; Conflict when an identity is
    another contact's."""
    for identity in identities:
        holder = _holder(connection, identity)
        if holder is not None:
            raise Conflict(
                f"{identity.channel} address {identity.address!r} is another contact's",
                contact_id=holder,
            )
    now = utcnow()
    contact = new_contact(identities, profile, now)
    stamp = format_timestamp(now)
    connection.execute(
        "INSERT INTO contacts (id, created_at, updated_at) VALUES (?, ?, ?)",
        (contact.id, stamp, stamp),
    )
    connection.executemany(
        "INSERT INTO identities (channel, address, contact_id) VALUES (?, ?, ?)",
        [(identity.channel, identity.address, contact.id) for identity in identities],
    )
    write_contact(connection, contact, reach_changed=True)
    append_event(
        connection,
        InboxEvent.CONTACT_CREATED,
        contact.id,
        at=stamp,
        data=events.contact_created(list(profile)),
    )
    return fetch_contact(connection, contact.id)


def _identities_changed(connection: sqlite3.Connection, contact_id: str) -> Contact:
    """After an identity was added or removed: the search words, reach and ``updated_at``
    follow, and ``contact.updated`` (``fields``: ``["identities"]``) is logged."""
    now = utcnow()
    contact = attrs.evolve(fetch_contact(connection, contact_id), updated_at=now)
    write_contact(connection, contact, reach_changed=True)
    append_event(
        connection,
        InboxEvent.CONTACT_UPDATED,
        contact_id,
        at=format_timestamp(now),
        data=events.contact_changes(["identities"]),
    )
    return contact


def add_identity(connection: sqlite3.Connection, contact_id: str, identity: Identity) -> Contact:
    contact = fetch_contact(connection, contact_id)
    holder = _holder(connection, identity)
    if holder == contact.id:
        return contact
    if holder is not None:
        raise Conflict(
            f"{identity.channel} address {identity.address!r} is another contact's;"
            " merge the two instead",
            contact_id=holder,
        )
    connection.execute(
        "INSERT INTO identities (channel, address, contact_id) VALUES (?, ?, ?)",
        (identity.channel, identity.address, contact.id),
    )
    return _identities_changed(connection, contact.id)


def remove_identity(connection: sqlite3.Connection, contact_id: str, identity: Identity) -> Contact:
    contact = fetch_contact(connection, contact_id)
    removed = connection.execute(
        "DELETE FROM identities WHERE channel = ? AND address = ? AND contact_id = ?",
        (identity.channel, identity.address, contact.id),
    )
    if removed.rowcount == 0:
        raise NotFound(
            f"contact {contact.id!r} has no {identity.channel} identity {identity.address!r}",
            id=contact.id,
        )
    return _identities_changed(connection, contact.id)


def merge(
    connection: sqlite3.Connection,
    survivor_id: str,
    merged_id: str,
    audit: AuditEntry | None = None,
) -> Contact:
    """Move everything of ``merged_id`` to ``survivor_id`` and leave ``merged_id`` as a
    tombstone pointing at it, with ``audit``, in this one transaction."""
    survivor = fetch_contact(connection, survivor_id)
    merged_row = connection.execute("SELECT * FROM contacts WHERE id = ?", (merged_id,)).fetchone()
    if merged_row is None or merged_row["erased_at"] is not None:
        raise NotFound(f"contact {merged_id!r} not found", id=merged_id)
    if merged_row["merged_into"] is not None:
        raise Conflict(
            f"contact {merged_id!r} was merged already",
            contact_id=live_contact_row(connection, merged_id)["id"],
        )
    if survivor.id == merged_id:
        raise InvalidInput("a contact cannot be merged into itself", contact_id=merged_id)
    merged = load_contact(connection, merged_row)
    now = utcnow()
    moved = (survivor.id, merged_id)
    connection.execute("UPDATE identities SET contact_id = ? WHERE contact_id = ?", moved)
    connection.execute("UPDATE conversations SET contact_id = ? WHERE contact_id = ?", moved)
    connection.execute("UPDATE messages SET contact_id = ? WHERE contact_id = ?", moved)
    connection.execute("DELETE FROM contact_reach WHERE contact_id = ?", (merged_id,))
    connection.execute(
        "UPDATE contacts SET merged_into = ?, search_terms = '', updated_at = ? WHERE id = ?",
        (survivor.id, format_timestamp(now), merged_id),
    )
    write_contact(connection, merged_profile(survivor, merged, now), reach_changed=True)
    append_event(
        connection,
        InboxEvent.CONTACT_MERGED,
        survivor.id,
        at=format_timestamp(now),
        data=events.contact_merged(merged_id),
    )
    if audit is not None:
        append_audit(connection, audit)
    return fetch_contact(connection, survivor.id)


def _activity(rows: list[sqlite3.Row]) -> dict[str, ContactActivity]:
    found: dict[str, ContactActivity] = {}
    for row in rows:
        found[row["contact_id"]] = ContactActivity(
            last_activity_at=parse_timestamp(row["last_activity_at"]),
            statuses=tuple(ConversationStatus(s) for s in sorted(json.loads(row["statuses"]))),
            channels=tuple(sorted(json.loads(row["channels"]))),
        )
    return found


class SqliteContacts:
    """The contacts' methods of :class:`SqliteInboxStore` (a part of it)."""

    database: SqliteDatabase

    async def get_contact(self, contact_id: str) -> Contact:
        return await self.database.read(lambda c: fetch_contact(c, contact_id))

    async def update_contact(self, contact_id: str, **changes: Any) -> Contact:
        wanted = profile_changes(changes)
        return await self.database.write(lambda c: update(c, contact_id, wanted))

    async def create_contact(
        self, identities: Collection[Identity] = (), profile: Mapping[str, Any] | None = None
    ) -> Contact:
        wanted = profile_changes(profile or {})
        unique = tuple(dict.fromkeys(identities))
        return await self.database.write(lambda c: create(c, unique, wanted))

    async def add_identity(self, contact_id: str, identity: Identity) -> Contact:
        return await self.database.write(lambda c: add_identity(c, contact_id, identity))

    async def remove_identity(self, contact_id: str, identity: Identity) -> Contact:
        return await self.database.write(lambda c: remove_identity(c, contact_id, identity))

    async def merge_contacts(
        self, survivor_id: str, merged_id: str, audit: AuditEntry | None = None
    ) -> Contact:
        return await self.database.write(lambda c: merge(c, survivor_id, merged_id, audit))

    async def list_contacts(
        self, search: str | None, cursor: str | None, limit: int, visible_to: str | None = None
    ) -> Page:
        after = decode_list_cursor(cursor, "ct") if cursor else None

        def read(connection: sqlite3.Connection) -> Page:
            clause, params = search_clause(search)
            select = "SELECT * FROM contacts WHERE merged_into IS NULL AND erased_at IS NULL"
            select += clause  # one LIKE per token, values bound
            if visible_to is not None:
                select += f" AND {VISIBLE}"
                params.append(visible_to)
            return keyset_page(
                connection,
                select,
                params,
                after,
                ("created_at", "id"),
                descending=True,
                limit=limit,
                build=lambda row: load_contact(connection, row),
            )

        return await self.database.read(read)

    async def erase_contact(self, contact_id: str, audit: AuditEntry | None = None) -> Erasure:
        return await self.database.write(lambda c: erasure.erase(c, contact_id, audit))

    async def finish_erasure(self, contact_id: str) -> None:
        await self.database.write(lambda c: erasure.finish(c, contact_id))

    async def contact_records(
        self, contact_id: str
    ) -> tuple[Contact, list[Conversation], list[Message]]:
        return await self.database.read(lambda c: erasure.records(c, contact_id))

    async def contact_visible_to(self, contact_id: str, user_id: str) -> bool:
        def read(connection: sqlite3.Connection) -> bool:
            row = fetch_contact(connection, contact_id)
            visible = connection.execute(
                "SELECT 1 FROM conversations WHERE contact_id = ?"
                " AND (assignee = ? OR assignee IS NULL) LIMIT 1",
                (row.id, user_id),
            ).fetchone()
            return visible is not None

        return await self.database.read(read)

    async def contact_audience(self, contact_id: str) -> frozenset[str | None]:
        def read(connection: sqlite3.Connection) -> frozenset[str | None]:
            rows = connection.execute(
                "SELECT DISTINCT assignee FROM conversations WHERE contact_id = ?", (contact_id,)
            ).fetchall()
            return frozenset(row["assignee"] for row in rows)

        return await self.database.read(read)

    async def scan_contacts(self, cursor: str | None, limit: int) -> Page:
        after = scan_position(cursor) or ""

        def read(connection: sqlite3.Connection) -> Page:
            rows = connection.execute(
                "SELECT * FROM contacts WHERE id > ? AND merged_into IS NULL"
                " AND erased_at IS NULL ORDER BY id LIMIT ?",
                (after, limit + 1),
            ).fetchall()
            items = load_contacts(connection, rows[:limit])
            more = len(rows) > limit
            return Page(items, scan_cursor(items[-1].id) if more else None)

        return await self.database.read(read)

    async def contact_activity(self, contact_ids: Collection[str]) -> dict[str, ContactActivity]:
        wanted = list(dict.fromkeys(contact_ids))

        def read(connection: sqlite3.Connection) -> dict[str, ContactActivity]:
            rows = connection.execute(
                "SELECT contact_id, max(last_activity_at) AS last_activity_at,"
                " json_group_array(DISTINCT status) AS statuses,"
                " json_group_array(DISTINCT channel) AS channels"
                " FROM conversations WHERE contact_id IN (SELECT value FROM json_each(?))"
                " GROUP BY contact_id",
                (json.dumps(wanted),),
            ).fetchall()
            return _activity(rows)

        found = await self.database.read(read)
        return {contact_id: found.get(contact_id, ContactActivity()) for contact_id in wanted}

    async def find_contacts(
        self, emails: Collection[str] = (), phones: Collection[str] = (), limit: int = 20
    ) -> list[Contact]:
        values = wanted_reach(emails, phones)
        if not values or limit < 1:
            return []

        def read(connection: sqlite3.Connection) -> list[Contact]:
            rows = connection.execute(
                "SELECT * FROM contacts WHERE id IN (SELECT contact_id FROM contact_reach"
                " WHERE value IN (SELECT value FROM json_each(?))) AND merged_into IS NULL"
                " ORDER BY created_at, id LIMIT ?",
                (json.dumps(values), limit),
            ).fetchall()
            return [load_contact(connection, row) for row in rows]

        return await self.database.read(read)

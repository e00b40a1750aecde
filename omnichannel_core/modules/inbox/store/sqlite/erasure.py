"""Erasing a contact on SQLite (`omnichannel_core.modules.inbox.store.erasure` says what is
erased), and the reads of everything stored about one (the per-contact export).

An erasure is one ``database.write``: one transaction under the one write lock, so no
ingest runs in the middle of it, and the tombstone, the redactions, the audit entry and
``contact.erased`` commit together. The rows keep their ids; the database file keeps no
old bytes of them either, with ``secure_delete`` on (`omnichannel_core.store.sqlite.runner`).
"""

from __future__ import annotations

import json
import sqlite3

from omnichannel_core.module import (
    AuditEntry,
    Conflict,
    Contact,
    Conversation,
    ConversationStatus,
    DeliveryStatus,
    Message,
    NotFound,
    compact_json,
    format_timestamp,
    parse_timestamp,
    utcnow,
)
from omnichannel_core.module.sqlite import append_audit, append_event
from omnichannel_core.modules.inbox import events
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.store.erasure import (
    ERASED_ADDRESS,
    ERASED_METADATA,
    Erasure,
    erased_key,
    is_erased_key,
    kept_media_ids,
    with_counts,
)
from omnichannel_core.modules.inbox.store.history import resolved_by_erasure
from omnichannel_core.modules.inbox.store.sqlite.history import insert_change
from omnichannel_core.modules.inbox.store.sqlite.rows import (
    conversation_from_row,
    fetch_contact,
    message_from_row,
)


def _erased_ids(connection: sqlite3.Connection, contact_id: str) -> list[str]:
    """``contact_id`` and every contact merged into it, directly or through another."""
    found = [contact_id]
    for known in found:
        rows = connection.execute(
            "SELECT id FROM contacts WHERE merged_into = ?", (known,)
        ).fetchall()
        found.extend(row["id"] for row in rows if row["id"] not in found)
    return found


def _in(values: list[str]) -> str:
    """The one parameter of ``IN (SELECT value FROM json_each(?))``."""
    return json.dumps(values)


def erase(connection: sqlite3.Connection, contact_id: str, audit: AuditEntry | None) -> Erasure:
    """Erase the contact and all about it, in this one transaction; on a contact erased
    already, erase what is left (nothing, here) and answer the media still to forget."""
    row = connection.execute("SELECT * FROM contacts WHERE id = ?", (contact_id,)).fetchone()
    if row is None:
        raise NotFound(f"contact {contact_id!r} not found", id=contact_id)
    if row["merged_into"] is not None and row["erased_at"] is None:
        survivor = row["merged_into"]
        raise Conflict(
            f"contact {contact_id!r} was merged into {survivor!r}: erase that one",
            contact_id=survivor,
        )
    ids = _erased_ids(connection, contact_id)
    ids_json = _in(ids)
    now = format_timestamp(utcnow())
    first = row["erased_at"] is None
    addresses = [
        r["address"]
        for r in connection.execute(
            "SELECT address FROM identities WHERE contact_id IN (SELECT value FROM json_each(?))",
            (ids_json,),
        ).fetchall()
    ]
    conversations = connection.execute(
        "SELECT * FROM conversations WHERE contact_id IN (SELECT value FROM json_each(?))",
        (ids_json,),
    ).fetchall()
    own = [c["id"] for c in conversations]
    own_json = _in(own)
    messages = connection.execute(
        "SELECT * FROM messages WHERE contact_id IN (SELECT value FROM json_each(?))"
        " OR conversation_id IN (SELECT value FROM json_each(?))",
        (ids_json, own_json),
    ).fetchall()
    media: dict[str, None] = dict.fromkeys(json.loads(row["erased_media"] or "[]"))
    shared = (
        row["avatar"]
        and connection.execute(  # the same picture set on another contact
            "SELECT 1 FROM contacts WHERE avatar = ? AND id != ? LIMIT 1",
            (row["avatar"], row["id"]),
        ).fetchone()
    )
    if row["avatar"] and not shared:
        media[row["avatar"]] = None
    redacted = 0
    elsewhere: dict[str, None] = {}
    for message in messages:
        media.update(dict.fromkeys(kept_media_ids(json.loads(message["media"]))))
        if message["conversation_id"] not in own:
            elsewhere[message["conversation_id"]] = None
        if json.loads(message["metadata"]) == ERASED_METADATA and message["text"] is None:
            continue
        redacted += 1
        connection.execute(
            "UPDATE messages SET text = NULL, media = '[]', metadata = ?, error_message = NULL,"
            " error_details = '{}', provider_message_id = ?, idempotency_key = ?,"
            " updated_at = ? WHERE id = ?",
            (
                compact_json(ERASED_METADATA),
                _erased(message, "provider_message_id"),
                _erased(message, "idempotency_key"),
                now,
                message["id"],
            ),
        )
    message_ids = [message["id"] for message in messages]
    unsent = connection.execute(
        "DELETE FROM outbox WHERE message_id IN (SELECT value FROM json_each(?))"
        " RETURNING message_id",
        (json.dumps(message_ids),),
    ).fetchall()
    connection.executemany(  # never sent now: the address it was going to is gone
        "UPDATE messages SET status = ?, in_doubt = 0 WHERE id = ?",
        [(DeliveryStatus.CANCELLED, entry["message_id"]) for entry in unsent],
    )
    for conversation_row in conversations:  # each resolved by the erasure: kept in its history
        conversation = conversation_from_row(conversation_row)
        change = resolved_by_erasure(conversation, parse_timestamp(now), audit)
        if change is not None:
            insert_change(connection, change)
            append_event(
                connection,
                InboxEvent.CONVERSATION_UPDATED,
                change.conversation_id,
                change.conversation_id,
                (change.assignee,),
                now,
                events.conversation_changes(
                    conversation.channel,
                    {"status": change.previous_status},
                    {"status": change.status},
                    change,
                ),
            )
    redacted_conversations = connection.execute(
        "UPDATE conversations SET address = ?, participants = '[]', status = ?,"
        " unread_count = 0, updated_at = ? WHERE id IN (SELECT value FROM json_each(?))"
        " AND (address != ? OR participants != '[]' OR status != ?)",
        (
            ERASED_ADDRESS,
            ConversationStatus.RESOLVED,
            now,
            own_json,
            ERASED_ADDRESS,
            ConversationStatus.RESOLVED,
        ),
    ).rowcount
    addresses += [c["address"] for c in conversations]
    addresses += json.loads(row["emails"]) + json.loads(row["phones"])
    _leave_participants(connection, list(elsewhere), addresses, now)
    identities = connection.execute(
        "DELETE FROM identities WHERE contact_id IN (SELECT value FROM json_each(?))", (ids_json,)
    ).rowcount
    connection.execute(
        "DELETE FROM contact_reach WHERE contact_id IN (SELECT value FROM json_each(?))",
        (ids_json,),
    )
    connection.execute(
        "UPDATE contacts SET display_name = NULL, tags = '[]', attributes = '{}',"
        " search_terms = '', opted_out = '[]', emails = '[]', phones = '[]', company = NULL,"
        " locale = NULL, timezone = NULL, avatar = NULL, erased_at = coalesce(erased_at, ?),"
        " erased_media = '[]', updated_at = ? WHERE id IN (SELECT value FROM json_each(?))",
        (now, now, ids_json),
    )
    connection.execute(
        "UPDATE contacts SET erased_media = ? WHERE id = ?", (json.dumps(list(media)), contact_id)
    )
    erased = Erasure(
        contact_id,
        messages=redacted,
        conversations=redacted_conversations,
        identities=identities,
        media_ids=tuple(media),
        message_ids=tuple(message_ids),
    )
    if first:
        append_event(connection, InboxEvent.CONTACT_ERASED, contact_id, at=now, data={})
        if audit is not None:
            append_audit(connection, with_counts(audit, erased))
    return erased


def _erased(message: sqlite3.Row, column: str) -> str | None:
    value: str | None = message[column]
    if value is None or is_erased_key(value):
        return value
    return erased_key(message["channel"], message["direction"], value)


def _leave_participants(
    connection: sqlite3.Connection, conversation_ids: list[str], addresses: list[str], now: str
) -> None:
    """Take ``addresses`` out of the participants of others' conversations."""
    gone = set(addresses)
    for conversation_id in conversation_ids:
        row = connection.execute(
            "SELECT participants FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        if row is None:
            continue
        participants = json.loads(row["participants"])
        kept = [address for address in participants if address not in gone]
        if kept != participants:
            connection.execute(
                "UPDATE conversations SET participants = ?, updated_at = ? WHERE id = ?",
                (json.dumps(kept), now, conversation_id),
            )


def finish(connection: sqlite3.Connection, contact_id: str) -> None:
    """The media of the erasure of ``contact_id`` were forgotten: forget their ids too."""
    connection.execute(
        "UPDATE contacts SET erased_media = '[]' WHERE id = ? AND erased_at IS NOT NULL",
        (contact_id,),
    )


def records(
    connection: sqlite3.Connection, contact_id: str
) -> tuple[Contact, list[Conversation], list[Message]]:
    """The contact (the survivor, for one merged away), its conversations (oldest first)
    and every message of those, or that it sent in another's, oldest first."""
    contact = fetch_contact(connection, contact_id)
    ids = [
        row["id"]
        for row in connection.execute(
            "SELECT id FROM contacts WHERE merged_into = ?", (contact.id,)
        ).fetchall()
    ]
    ids_json = _in([contact.id, *ids])
    conversations = connection.execute(
        "SELECT * FROM conversations WHERE contact_id IN (SELECT value FROM json_each(?))"
        " ORDER BY created_at, id",
        (ids_json,),
    ).fetchall()
    own_json = _in([c["id"] for c in conversations])
    messages = connection.execute(
        "SELECT * FROM messages WHERE contact_id IN (SELECT value FROM json_each(?))"
        " OR conversation_id IN (SELECT value FROM json_each(?)) ORDER BY created_at, id",
        (ids_json, own_json),
    ).fetchall()
    return (
        contact,
        [conversation_from_row(row) for row in conversations],
        [message_from_row(row) for row in messages],
    )

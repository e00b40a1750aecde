"""SQLite rows and the models made of them, and the reads every query shares.

Writes return rows; models are built from them outside the write lock.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from omnichannel_core.module import (
    Contact,
    Conversation,
    ConversationStatus,
    DeliveryStatus,
    Direction,
    Identity,
    Media,
    Message,
    NotFound,
    parse_timestamp,
)
from omnichannel_core.module.sqlite import fetch_one
from omnichannel_core.modules.inbox.store import Ingested
from omnichannel_core.modules.inbox.store.erasure import erased_key
from omnichannel_core.modules.inbox.store.history import author_from

ContactRows = tuple[sqlite3.Row, list[Any]]
"""A contact's row and its identities' rows: read in the writer, made a model outside it."""


def live_contact_row(connection: sqlite3.Connection, contact_id: str) -> sqlite3.Row:
    """The contact's row, or the survivor's for a contact merged away (its ``merged_into``
    followed); NotFound for an unknown id."""
    row = fetch_one(connection, "SELECT * FROM contacts WHERE id = ?", (contact_id,), "contact")
    while row["merged_into"] is not None:  # a merge only ever points at a live contact
        row = fetch_one(
            connection, "SELECT * FROM contacts WHERE id = ?", (row["merged_into"],), "contact"
        )
    return row


def contact_rows(connection: sqlite3.Connection, row: sqlite3.Row) -> ContactRows:
    identities = connection.execute(
        "SELECT channel, address FROM identities WHERE contact_id = ? ORDER BY channel, address",
        (row["id"],),
    ).fetchall()
    return row, identities


def load_contact(connection: sqlite3.Connection, row: sqlite3.Row) -> Contact:
    return contact_from_rows(contact_rows(connection, row))


def load_contacts(connection: sqlite3.Connection, rows: list[sqlite3.Row]) -> list[Contact]:
    """The contacts of ``rows``, their identities read in one query for all (a page of a
    scan: one query per contact made a count of 100,000 contacts read 100,001 times)."""
    held: dict[str, list[sqlite3.Row]] = {row["id"]: [] for row in rows}
    identities = connection.execute(
        "SELECT contact_id, channel, address FROM identities"
        " WHERE contact_id IN (SELECT value FROM json_each(?)) ORDER BY channel, address",
        (json.dumps(list(held)),),
    ).fetchall()
    for identity in identities:
        held[identity["contact_id"]].append(identity)
    return [contact_from_rows((row, held[row["id"]])) for row in rows]


def contact_from_rows(rows: ContactRows) -> Contact:
    row, identities = rows
    return Contact(
        id=row["id"],
        display_name=row["display_name"],
        identities=tuple(Identity(i["channel"], i["address"]) for i in identities),
        tags=tuple(json.loads(row["tags"])),
        attributes=json.loads(row["attributes"]),
        opted_out=tuple(json.loads(row["opted_out"])),
        created_at=parse_timestamp(row["created_at"]),
        updated_at=parse_timestamp(row["updated_at"]),
        emails=tuple(json.loads(row["emails"])),
        phones=tuple(json.loads(row["phones"])),
        company=row["company"],
        locale=row["locale"],
        timezone=row["timezone"],
        avatar=row["avatar"],
    )


def conversation_from_row(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=row["id"],
        contact_id=row["contact_id"],
        channel=row["channel"],
        address=row["address"],
        status=ConversationStatus(row["status"]),
        assignee=row["assignee"],
        unread_count=row["unread_count"],
        last_activity_at=parse_timestamp(row["last_activity_at"]),
        created_at=parse_timestamp(row["created_at"]),
        updated_at=parse_timestamp(row["updated_at"]),
        participants=tuple(json.loads(row["participants"])),
        last_inbound_at=_optional_time(row["last_inbound_at"]),
    )


def _optional_time(value: str | None) -> datetime | None:
    return None if value is None else parse_timestamp(value)


def message_from_row(row: sqlite3.Row) -> Message:
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        contact_id=row["contact_id"],
        channel=row["channel"],
        direction=Direction(row["direction"]),
        status=DeliveryStatus(row["status"]),
        text=row["text"],
        media=tuple(Media(**item) for item in json.loads(row["media"])),
        provider_message_id=row["provider_message_id"],
        idempotency_key=row["idempotency_key"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        metadata=json.loads(row["metadata"]),
        created_at=parse_timestamp(row["created_at"]),
        updated_at=parse_timestamp(row["updated_at"]),
        in_doubt=bool(row["in_doubt"]),
        send_at=None if row["send_at"] is None else parse_timestamp(row["send_at"]),
        attempts=row["attempts"],
        error_details=json.loads(row["error_details"]),
        author=author_from(json.loads(row["author"] or "null")),
    )


def fetch_contact(connection: sqlite3.Connection, contact_id: str) -> Contact:
    """The contact (the survivor, for one merged away), or NotFound (for one erased too)."""
    row = live_contact_row(connection, contact_id)
    if row["erased_at"] is not None:
        raise NotFound(f"contact {contact_id!r} not found (erased)", id=contact_id)
    return load_contact(connection, row)


def fetch_conversation(connection: sqlite3.Connection, conversation_id: str) -> Conversation:
    row = fetch_one(
        connection, "SELECT * FROM conversations WHERE id = ?", (conversation_id,), "conversation"
    )
    return conversation_from_row(row)


def fetch_message(connection: sqlite3.Connection, message_id: str) -> Message:
    row = fetch_one(connection, "SELECT * FROM messages WHERE id = ?", (message_id,), "message")
    return message_from_row(row)


InboundRows = tuple[sqlite3.Row, ContactRows, sqlite3.Row, bool]
"""What storing an inbound message read: message, contact, conversation rows, and whether
the message is new. Writes return rows; models are built off the write lock."""


def stored_inbound(
    connection: sqlite3.Connection, channel: str, provider_message_id: str
) -> InboundRows | None:
    """The message already stored under (channel, provider id), with its contact and
    conversation, as a duplicate's answer; None when there is none. An erased message is
    found by the key its provider id became (`store.erasure.erased_key`); its contact is
    the erased tombstone, read as a contact with nothing."""
    row = connection.execute(
        "SELECT * FROM messages"
        " WHERE channel = ? AND direction = 'inbound' AND provider_message_id IN (?, ?)",
        (channel, provider_message_id, erased_key(channel, "inbound", provider_message_id)),
    ).fetchone()
    if row is None:
        return None
    contact = live_contact_row(connection, row["contact_id"])  # merged away: the survivor
    conversation = fetch_one(
        connection,
        "SELECT * FROM conversations WHERE id = ?",
        (row["conversation_id"],),
        "conversation",
    )
    return row, contact_rows(connection, contact), conversation, False


def ingested_from_rows(rows: InboundRows) -> Ingested:
    """The result of an ingest; its models are built only if someone reads them."""
    message, contact, conversation, created = rows

    def build() -> tuple[Message, Contact, Conversation]:
        return (
            message_from_row(message),
            contact_from_rows(contact),
            conversation_from_row(conversation),
        )

    return Ingested(
        created=created,
        message_id=message["id"],
        conversation_id=conversation["id"],
        build=build,
    )

"""Storing one inbound message in SQLite, in as few statements as the common case allows.

A message from a known sender takes three statements: one read of the sender's contact, its
identities and its conversation on the channel; the message insert, which is also the dedupe
(a duplicate inserts nothing and writes nothing else); and the conversation update. A new
sender adds the inserts of its contact, identity and conversation. Every statement runs in
the writer's transaction, under the write lock, so the whole ingest is one atomic step.
"""

from __future__ import annotations

import json
import sqlite3

from omnichannel_core.hooktypes import InboundMessage
from omnichannel_core.ids import new_id
from omnichannel_core.models import ConversationStatus, DeliveryStatus, Direction
from omnichannel_core.serialization import format_timestamp
from omnichannel_core.store.sqlite_contacts import apply_consent, search_text
from omnichannel_core.store.sqlite_rows import (
    ContactRows,
    InboundRows,
    json_text,
    stored_inbound,
)

SENDER = """
SELECT contacts.*,
    (SELECT json_group_array(json_array(channel, address)) FROM (
        SELECT channel, address FROM identities AS known
        WHERE known.contact_id = contacts.id ORDER BY channel, address
    )) AS identity_list,
    conversations.id AS conversation_id,
    conversations.address AS conversation_address
FROM identities
JOIN contacts ON contacts.id = identities.contact_id
LEFT JOIN conversations
    ON conversations.contact_id = contacts.id AND conversations.channel = identities.channel
WHERE identities.channel = ? AND identities.address = ?
"""


def ingest(
    connection: sqlite3.Connection, channel: str, inbound: InboundMessage, now: str
) -> InboundRows:
    """Store ``inbound`` (deduped), creating or updating its contact and conversation."""
    sender = connection.execute(SENDER, (channel, inbound.sender)).fetchone()
    contact_id = sender["id"] if sender else new_id("ct")
    conversation_id = (sender and sender["conversation_id"]) or new_id("cv")
    message = _insert_message(connection, channel, inbound, contact_id, conversation_id, now)
    if message is None:  # a duplicate: nothing else is touched
        stored = stored_inbound(connection, channel, inbound.provider_message_id)
        assert stored is not None
        return stored
    if sender is None:
        contact = _insert_contact(connection, channel, inbound, contact_id, now)
    else:
        contact = _known_contact(connection, sender, inbound.sender_name, now)
    contact = apply_consent(connection, contact, channel, inbound.consent, now)
    address = inbound.reply_to or inbound.sender
    if sender is None or sender["conversation_id"] is None:
        conversation = connection.execute(
            "INSERT INTO conversations (id, contact_id, channel, address, status, unread_count,"
            " last_activity_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)"
            " RETURNING *",
            (conversation_id, contact_id, channel, address, ConversationStatus.OPEN, now, now, now),
        ).fetchone()
    else:
        conversation = connection.execute(
            "UPDATE conversations SET unread_count = unread_count + 1, address = ?,"
            " last_activity_at = ?, updated_at = ?,"
            " status = CASE status WHEN 'resolved' THEN 'open' ELSE status END"
            " WHERE id = ? RETURNING *",
            (address, now, now, conversation_id),
        ).fetchone()
    return message, contact, conversation, True


def _insert_message(
    connection: sqlite3.Connection,
    channel: str,
    inbound: InboundMessage,
    contact_id: str,
    conversation_id: str,
    now: str,
) -> sqlite3.Row | None:
    """The new message's row, or None when (channel, provider id) is already stored."""
    metadata = dict(inbound.metadata)
    if inbound.sent_at is not None:
        metadata["sent_at"] = format_timestamp(inbound.sent_at)
    return connection.execute(
        "INSERT INTO messages (id, conversation_id, contact_id, channel, direction,"
        " status, text, media, provider_message_id, metadata, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING *",
        (
            new_id("msg"),
            conversation_id,
            contact_id,
            channel,
            Direction.INBOUND,
            DeliveryStatus.RECEIVED,
            inbound.text,
            json_text(inbound.media),
            inbound.provider_message_id,
            json.dumps(metadata, separators=(",", ":")),
            now,
            now,
        ),
    ).fetchone()


def _insert_contact(
    connection: sqlite3.Connection,
    channel: str,
    inbound: InboundMessage,
    contact_id: str,
    now: str,
) -> ContactRows:
    row = connection.execute(
        "INSERT INTO contacts (id, display_name, search_terms, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?) RETURNING *",
        (
            contact_id,
            inbound.sender_name,
            search_text(inbound.sender_name, [inbound.sender]),
            now,
            now,
        ),
    ).fetchone()
    connection.execute(
        "INSERT INTO identities (channel, address, contact_id) VALUES (?, ?, ?)",
        (channel, inbound.sender, contact_id),
    )
    return row, [{"channel": channel, "address": inbound.sender}]


def _known_contact(
    connection: sqlite3.Connection, sender: sqlite3.Row, name: str | None, now: str
) -> ContactRows:
    """The sender's contact rows, with the name filled in when it had none."""
    identities = [
        {"channel": channel, "address": address}
        for channel, address in json.loads(sender["identity_list"])
    ]
    if not name or sender["display_name"] is not None:
        return sender, identities
    addresses = [identity["address"] for identity in identities]
    row = connection.execute(
        "UPDATE contacts SET display_name = ?, search_terms = ?, updated_at = ?"
        " WHERE id = ? RETURNING *",
        (name, search_text(name, addresses), now, sender["id"]),
    ).fetchone()
    return row, identities

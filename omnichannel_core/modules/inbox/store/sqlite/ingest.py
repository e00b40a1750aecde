"""Storing one inbound message in SQLite, in as few statements as the common case allows.

A message from a known sender takes four statements: one read of the sender's contact, its
identities and its conversation on the channel; the message insert, which is also the dedupe
(a duplicate inserts nothing and writes nothing else); the conversation update; and the
``message.created`` event. A new sender adds the inserts of its contact, identity and
conversation. Every statement runs in
the writer's transaction, under the write lock, so the whole ingest is one atomic step.
"""

from __future__ import annotations

import sqlite3

from omnichannel_core.channel import InboundMessage
from omnichannel_core.module import (
    ConversationStatus,
    DeliveryStatus,
    Direction,
    compact_json,
    format_timestamp,
    new_id,
    parse_timestamp,
)
from omnichannel_core.module.sqlite import append_event, json_text
from omnichannel_core.modules.inbox import events
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.store import wrote_at
from omnichannel_core.modules.inbox.store.sqlite.contacts import (
    apply_consent,
    find_sender,
    insert_contact,
    known_contact,
)
from omnichannel_core.modules.inbox.store.sqlite.rows import InboundRows, stored_inbound


def ingest(
    connection: sqlite3.Connection, channel: str, inbound: InboundMessage, now: str
) -> InboundRows:
    """Store ``inbound`` (deduped), creating or updating its contact and conversation."""
    sender = find_sender(connection, channel, inbound.sender)
    contact_id = sender["id"] if sender else new_id("ct")
    conversation_id = (sender and sender["conversation_id"]) or new_id("cv")
    message = _insert_message(connection, channel, inbound, contact_id, conversation_id, now)
    if message is None:  # a duplicate: nothing else is touched
        stored = stored_inbound(connection, channel, inbound.provider_message_id)
        assert stored is not None
        return stored
    if sender is None:
        contact = insert_contact(
            connection, channel, inbound.sender, inbound.sender_name, contact_id, now
        )
    else:
        contact = known_contact(connection, sender, inbound.sender_name, now)
    consented = apply_consent(connection, contact, channel, inbound.consent, now)
    if consented is not contact:
        append_event(
            connection,
            InboxEvent.CONTACT_UPDATED,
            contact_id,
            at=now,
            data=events.contact_changes(["opted_out"]),
        )
    contact = consented
    address = inbound.reply_to or inbound.sender
    wrote = (
        now
        if inbound.sent_at is None
        else format_timestamp(wrote_at(inbound, parse_timestamp(now)))
    )
    if sender is None or sender["conversation_id"] is None:
        conversation = connection.execute(
            "INSERT INTO conversations (id, contact_id, channel, address, status, unread_count,"
            " last_activity_at, created_at, updated_at, last_inbound_at)"
            " VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?) RETURNING *",
            (
                conversation_id,
                contact_id,
                channel,
                address,
                ConversationStatus.OPEN,
                now,
                now,
                now,
                wrote,
            ),
        ).fetchone()
    else:
        # Timestamps are fixed-width text, so max() is the later one ('' below any).
        conversation = connection.execute(
            "UPDATE conversations SET unread_count = unread_count + 1, address = ?,"
            " last_activity_at = ?, updated_at = ?,"
            " last_inbound_at = max(coalesce(last_inbound_at, ''), ?),"
            " status = CASE status WHEN 'resolved' THEN 'open' ELSE status END"
            " WHERE id = ? RETURNING *",
            (address, now, now, wrote, conversation_id),
        ).fetchone()
    append_event(
        connection,
        InboxEvent.MESSAGE_CREATED,
        message["id"],
        conversation_id,
        (conversation["assignee"],),
        now,
        events.message_created(channel, Direction.INBOUND, contact_id),
    )
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
            compact_json(metadata),
            now,
            now,
        ),
    ).fetchone()

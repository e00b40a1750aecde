"""Storing one inbound message in SQLite, in as few statements as the common case allows.

A message from a known sender takes four statements: one read of the sender's contact, its
identities and its conversation on the channel; the message insert, which is also the dedupe
(a duplicate inserts nothing and writes nothing else); the conversation update; and the
``message.created`` event. A message that reopens a resolved conversation adds the entry
of its history and its ``conversation.updated`` event (the status it had comes with the read
that found the conversation). A new sender adds the inserts of its contact, identity and
conversation. A message that names a thread
(`omnichannel_core.modules.inbox.store.threads`) adds one read of the messages its refs name
and one of their conversation. Every statement runs in the writer's transaction, under the
write lock, so the whole ingest is one atomic step.
"""

from __future__ import annotations

import json
import sqlite3

import attrs

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
from omnichannel_core.modules.inbox.store import stored_media, wrote_at
from omnichannel_core.modules.inbox.store.erasure import erased_key
from omnichannel_core.modules.inbox.store.history import reopened
from omnichannel_core.modules.inbox.store.sqlite.contacts import (
    apply_consent,
    find_sender,
    insert_contact,
    known_contact,
)
from omnichannel_core.modules.inbox.store.sqlite.history import insert_change
from omnichannel_core.modules.inbox.store.sqlite.rows import InboundRows, stored_inbound
from omnichannel_core.modules.inbox.store.threads import (
    belongs,
    first_known,
    inbound_metadata,
    thread_message_ids,
    thread_refs,
    with_participants,
)


@attrs.frozen
class _Place:
    """Where a new inbound message goes: the id of the conversation it joins (None: a new
    one) and its status before the message (read with the row that found it, so telling
    whether the message reopens it costs no statement), that conversation's row when a
    thread was looked up, and whether a known thread refused its sender."""

    conversation_id: str | None
    status: str | None = None
    thread_row: sqlite3.Row | None = None
    refused: bool = False


def _place(
    connection: sqlite3.Connection,
    channel: str,
    inbound: InboundMessage,
    sender: sqlite3.Row | None,
) -> _Place:
    """The conversation ``inbound`` joins, by the rule of `store.threads`."""
    if inbound.thread is None:
        if sender is None:
            return _Place(None)
        return _Place(sender["conversation_id"], sender["conversation_status"])
    refs = thread_refs(inbound.thread)
    ours = thread_message_ids(inbound.thread)
    row = _thread_conversation(connection, channel, refs, ours) if refs or ours else None
    if row is None:
        return _Place(None)
    participants = json.loads(row["participants"])
    sender_contact = sender["id"] if sender is not None else None
    if belongs(inbound.sender, sender_contact, (row["contact_id"], row["address"], participants)):
        return _Place(row["id"], row["status"], row)
    return _Place(None, refused=True)


def _thread_conversation(
    connection: sqlite3.Connection, channel: str, refs: tuple[str, ...], ours: tuple[str, ...]
) -> sqlite3.Row | None:
    """The conversation of the first of ``ours`` that is an outbound message of
    ``channel`` (by id), else of the first of ``refs`` a message of ``channel`` holds as its
    provider id (either direction, through the provider id index), or None."""
    named = connection.execute(
        "SELECT id, direction, conversation_id FROM messages WHERE channel = ?"
        " AND direction = 'outbound' AND id IN (SELECT value FROM json_each(?))",
        (channel, json.dumps(ours)),
    ).fetchall()
    conversation_id = first_known((tuple(row) for row in named), ours)
    if conversation_id is None:
        found = connection.execute(
            "SELECT provider_message_id, direction, conversation_id FROM messages"
            " WHERE channel = ? AND direction IN ('outbound', 'inbound')"
            " AND provider_message_id IN (SELECT value FROM json_each(?))",
            (channel, json.dumps(refs)),
        ).fetchall()
        conversation_id = first_known((tuple(row) for row in found), refs)
    if conversation_id is None:
        return None
    row: sqlite3.Row | None = connection.execute(
        "SELECT * FROM conversations WHERE id = ?", (conversation_id,)
    ).fetchone()
    return row


def ingest(
    connection: sqlite3.Connection, channel: str, inbound: InboundMessage, now: str
) -> InboundRows:
    """Store ``inbound`` (deduped), creating or updating its contact and conversation."""
    sender = find_sender(connection, channel, inbound.sender)
    contact_id = sender["id"] if sender else new_id("ct")
    place = _place(connection, channel, inbound, sender)
    conversation_id = place.conversation_id or new_id("cv")
    message = _insert_message(
        connection, channel, inbound, contact_id, conversation_id, now, place.refused
    )
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
    if place.conversation_id is None:
        participants = with_participants((), inbound.thread, (address, inbound.sender))
        conversation = connection.execute(
            "INSERT INTO conversations (id, contact_id, channel, address, status, unread_count,"
            " last_activity_at, created_at, updated_at, last_inbound_at, participants)"
            " VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?) RETURNING *",
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
                json.dumps(list(participants)),
            ),
        ).fetchone()
    else:
        joined, changed = place.thread_row, None
        if joined is not None:
            # A message joining a thread never moves where answers go: a Reply-To in a
            # reply (forgeable, like its From) joins the participants instead.
            address = joined["address"]
            current = json.loads(joined["participants"])
            merged = with_participants(current, inbound.thread, (address, inbound.sender))
            if list(merged) != current:
                changed = json.dumps(list(merged))
        # Timestamps are fixed-width text, so max() is the later one ('' below any).
        conversation = connection.execute(
            "UPDATE conversations SET unread_count = unread_count + 1, address = ?,"
            " last_activity_at = ?, updated_at = ?,"
            " last_inbound_at = max(coalesce(last_inbound_at, ''), ?),"
            " participants = coalesce(?, participants),"
            " status = CASE status WHEN 'resolved' THEN 'open' ELSE status END"
            " WHERE id = ? RETURNING *",
            (address, now, now, wrote, changed, conversation_id),
        ).fetchone()
    append_event(
        connection,
        InboxEvent.MESSAGE_CREATED,
        message["id"],
        conversation_id,
        (conversation["assignee"],),
        now,
        events.message_created(
            channel,
            Direction.INBOUND,
            contact_id,
            parse_timestamp(now),
            automated=inbound.automated,
        ),
    )
    # A message into a resolved conversation reopens it (the UPDATE above): the change is
    # logged after the message, as it happened, so whoever follows the conversation learns
    # it is open again. Only then: an ordinary message logs no conversation.updated.
    if place.status == ConversationStatus.RESOLVED:
        change = reopened(conversation_id, conversation["assignee"], parse_timestamp(now))
        insert_change(connection, change)
        append_event(
            connection,
            InboxEvent.CONVERSATION_UPDATED,
            conversation_id,
            conversation_id,
            (conversation["assignee"],),
            now,
            events.conversation_changes(
                channel, {"status": place.status}, {"status": conversation["status"]}, change
            ),
        )
    return message, contact, conversation, True


def _insert_message(
    connection: sqlite3.Connection,
    channel: str,
    inbound: InboundMessage,
    contact_id: str,
    conversation_id: str,
    now: str,
    refused: bool,
) -> sqlite3.Row | None:
    """The new message's row, or None when (channel, provider id) is already stored, or
    was, by a message erased since (`store.erasure.erased_key`)."""
    metadata = inbound_metadata(inbound, refused)
    row: sqlite3.Row | None = connection.execute(
        "INSERT INTO messages (id, conversation_id, contact_id, channel, direction,"
        " status, text, media, provider_message_id, metadata, created_at, updated_at)"
        " SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM messages"
        " WHERE channel = ? AND direction = 'inbound' AND provider_message_id = ?)"
        " ON CONFLICT DO NOTHING RETURNING *",
        (
            new_id("msg"),
            conversation_id,
            contact_id,
            channel,
            Direction.INBOUND,
            DeliveryStatus.RECEIVED,
            inbound.text,
            json_text(stored_media(inbound)),
            inbound.provider_message_id,
            compact_json(metadata),
            now,
            now,
            channel,
            erased_key(channel, Direction.INBOUND, inbound.provider_message_id),
        ),
    ).fetchone()
    return row

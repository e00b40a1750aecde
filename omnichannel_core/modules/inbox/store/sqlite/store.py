"""The inbox on the SQLite database: contacts, conversations and messages.

Each method is one write (or read) of the shared database (`omnichannel_core.module.sqlite`),
so one transaction; the SQL is in the modules beside this one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from omnichannel_core.channel import InboundMessage, StatusUpdate
from omnichannel_core.module import (
    UNSET,
    AuditEntry,
    Author,
    Conflict,
    Contact,
    Conversation,
    ConversationChange,
    ConversationRecord,
    ConversationStatus,
    DeliveryStatus,
    Direction,
    Media,
    Message,
    Page,
    compact_json,
    decode_list_cursor,
    format_timestamp,
    new_id,
    utcnow,
)
from omnichannel_core.module.sqlite import (
    SqliteDatabase,
    append_audit,
    append_event,
    fetch_one,
    json_text,
    keyset_page,
)
from omnichannel_core.modules.inbox import events
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.store import (
    PARKED_STATUS_TTL,
    WATERMARK_BATCH,
    Ingested,
    StatusApplied,
)
from omnichannel_core.modules.inbox.store.history import (
    CHANGE_PREFIX,
    author_fields,
    change_of,
)
from omnichannel_core.modules.inbox.store.outbox import REPLY
from omnichannel_core.modules.inbox.store.sqlite.contact_book import SqliteContacts
from omnichannel_core.modules.inbox.store.sqlite.contacts import (
    find_sender,
    upsert_contact,
    upsert_conversation,
)
from omnichannel_core.modules.inbox.store.sqlite.history import (
    insert_change,
    page_changes,
    read_changes,
    scan,
)
from omnichannel_core.modules.inbox.store.sqlite.ingest import ingest
from omnichannel_core.modules.inbox.store.sqlite.media import replace_media
from omnichannel_core.modules.inbox.store.sqlite.outbox import SqliteOutbox, enqueue
from omnichannel_core.modules.inbox.store.sqlite.rows import (
    InboundRows,
    contact_from_rows,
    conversation_from_row,
    fetch_contact,
    fetch_conversation,
    fetch_message,
    ingested_from_rows,
    message_from_row,
)
from omnichannel_core.modules.inbox.store.sqlite.status import (
    advance,
    apply_status,
    apply_watermark,
)
from omnichannel_core.modules.inbox.store.sqlite.status import (
    settle as settle_entry,
)


class SqliteInboxStore(SqliteContacts, SqliteOutbox):
    """:class:`omnichannel_core.modules.inbox.store.InboxStore` on the SQLite database."""

    def __init__(self, database: SqliteDatabase) -> None:
        self.database = database
        self.parked_status_ttl = PARKED_STATUS_TTL
        self.watermark_batch = WATERMARK_BATCH

    async def ingest_inbound(self, channel: str, inbound: InboundMessage) -> Ingested:
        def write(connection: sqlite3.Connection) -> InboundRows:
            return ingest(connection, channel, inbound, format_timestamp(utcnow()))

        return ingested_from_rows(await self.database.write(write))

    async def resolve_recipient(
        self,
        channel: str,
        address: str,
        display_name: str | None = None,
        reply_to: str | None = None,
        new_conversation: bool = False,
    ) -> tuple[Contact, Conversation]:
        def write(connection: sqlite3.Connection) -> tuple[Contact, Conversation]:
            now = format_timestamp(utcnow())
            contact = upsert_contact(connection, channel, address, display_name, now)
            conversation_id = upsert_conversation(
                connection, contact[0]["id"], channel, reply_to or address, now, new_conversation
            )
            return contact_from_rows(contact), fetch_conversation(connection, conversation_id)

        return await self.database.write(write)

    async def find_conversation(self, channel: str, address: str) -> Conversation | None:
        def read(connection: sqlite3.Connection) -> Conversation | None:
            sender = find_sender(connection, channel, address)
            if sender is None or sender["conversation_id"] is None:
                return None
            return fetch_conversation(connection, sender["conversation_id"])

        return await self.database.read(read)

    async def create_outbound(
        self,
        conversation_id: str,
        text: str | None,
        media: tuple[Media, ...],
        metadata: dict[str, Any],
        idempotency_key: str | None,
        expected_assignee: str | None = UNSET,
        send_at: datetime | None = None,
        priority: int = REPLY,
        author: Author | None = None,
    ) -> tuple[Message, bool]:
        scheduled = None if send_at is None else format_timestamp(send_at)
        author_json = None if author is None else compact_json(author_fields(author))

        def write(connection: sqlite3.Connection) -> tuple[Message, bool]:
            if idempotency_key is not None:
                row = connection.execute(
                    "SELECT * FROM messages WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if row is not None:
                    return message_from_row(row), False
            conversation = fetch_conversation(connection, conversation_id)
            if expected_assignee is not UNSET and conversation.assignee != expected_assignee:
                raise Conflict(
                    "the conversation's assignee changed meanwhile; read it again",
                    assignee=conversation.assignee,
                )
            moment = utcnow()
            now = format_timestamp(moment)
            message_id = new_id("msg")
            connection.execute(
                "INSERT INTO messages (id, conversation_id, contact_id, channel, direction,"
                " status, text, media, idempotency_key, metadata, created_at, updated_at,"
                " send_at, author) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message_id,
                    conversation.id,
                    conversation.contact_id,
                    conversation.channel,
                    Direction.OUTBOUND,
                    DeliveryStatus.QUEUED,
                    text,
                    json_text(media),
                    idempotency_key,
                    compact_json(metadata),
                    now,
                    now,
                    scheduled,
                    author_json,
                ),
            )
            enqueue(connection, message_id, conversation.id, max(scheduled or now, now), priority)
            connection.execute(
                "UPDATE conversations SET last_activity_at = ?, updated_at = ? WHERE id = ?",
                (now, now, conversation.id),
            )
            append_event(
                connection,
                InboxEvent.MESSAGE_CREATED,
                message_id,
                conversation.id,
                (conversation.assignee,),
                now,
                events.message_created(
                    conversation.channel,
                    Direction.OUTBOUND,
                    conversation.contact_id,
                    moment,
                    author,
                ),
            )
            return fetch_message(connection, message_id), True

        return await self.database.write(write)

    async def find_by_provider_id(
        self, channel: str, direction: Direction, provider_message_id: str
    ) -> Message | None:
        def read(connection: sqlite3.Connection) -> Message | None:
            row = connection.execute(
                "SELECT * FROM messages WHERE channel = ? AND direction = ?"
                " AND provider_message_id = ?",
                (channel, str(direction), provider_message_id),
            ).fetchone()
            return None if row is None else message_from_row(row)

        return await self.database.read(read)

    async def find_by_idempotency_key(self, idempotency_key: str) -> Message | None:
        def read(connection: sqlite3.Connection) -> Message | None:
            row = connection.execute(
                "SELECT * FROM messages WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
            return None if row is None else message_from_row(row)

        return await self.database.read(read)

    async def advance_message(
        self,
        message_id: str,
        status: DeliveryStatus,
        provider_message_id: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        settle: bool = False,
    ) -> StatusApplied:
        def write(connection: sqlite3.Connection) -> StatusApplied:
            row = fetch_one(
                connection, "SELECT * FROM messages WHERE id = ?", (message_id,), "message"
            )
            applied = advance(
                connection,
                row,
                status,
                provider_message_id,
                error_code,
                error_message,
                self.parked_status_ttl,
            )
            if not settle:
                return applied
            settle_entry(connection, message_id)
            connection.execute(
                "UPDATE messages SET error_code = NULL, error_message = NULL, error_details = '{}'"
                " WHERE id = ? AND status NOT IN ('failed', 'undelivered')",
                (message_id,),
            )
            return attrs.evolve(applied, message=fetch_message(connection, message_id))

        return await self.database.write(write)

    async def apply_status(self, channel: str, update: StatusUpdate) -> StatusApplied:
        ttl = self.parked_status_ttl
        return await self.database.write(lambda c: apply_status(c, channel, update, ttl))

    async def apply_watermark(
        self, channel: str, recipient: str, status: DeliveryStatus, up_to: datetime
    ) -> list[Message]:
        status, until = DeliveryStatus(status), format_timestamp(up_to)
        ttl, limit = self.parked_status_ttl, self.watermark_batch
        moved: list[Message] = []
        while True:  # one batch per write: other writers get their turn between them
            batch = await self.database.write(
                lambda c: apply_watermark(c, channel, recipient, status, until, ttl, limit)
            )
            moved += batch
            if len(batch) < limit:
                return sorted(moved, key=lambda message: (message.created_at, message.id))

    async def get_message(self, message_id: str) -> Message:
        return await self.database.read(lambda c: fetch_message(c, message_id))

    async def list_messages(self, conversation_id: str, cursor: str | None, limit: int) -> Page:
        after = decode_list_cursor(cursor, "msg") if cursor else None  # bad: InvalidInput

        def read(connection: sqlite3.Connection) -> Page:
            fetch_conversation(connection, conversation_id)
            return keyset_page(
                connection,
                "SELECT * FROM messages WHERE conversation_id = ?",
                [conversation_id],
                after,
                ("created_at", "id"),
                descending=False,
                limit=limit,
                build=message_from_row,
            )

        return await self.database.read(read)

    async def replace_media(
        self, message_id: str, index: int, provider_url: str, media: Media
    ) -> Message | None:
        return await self.database.write(
            lambda c: replace_media(c, message_id, index, provider_url, media)
        )

    async def add_contact_attributes(
        self, contact_id: str, attributes: Mapping[str, Any]
    ) -> Contact:
        wanted = dict(attributes)

        def write(connection: sqlite3.Connection) -> Contact:
            contact = fetch_contact(connection, contact_id)
            missing = {
                name: value for name, value in wanted.items() if name not in contact.attributes
            }
            if not missing:
                return contact
            now = format_timestamp(utcnow())
            connection.execute(
                "UPDATE contacts SET attributes = ?, updated_at = ? WHERE id = ?",
                (compact_json({**contact.attributes, **missing}), now, contact.id),
            )
            append_event(
                connection,
                InboxEvent.CONTACT_UPDATED,
                contact.id,
                at=now,
                data=events.contact_changes(["attributes"]),
            )
            return fetch_contact(connection, contact.id)

        return await self.database.write(write)

    async def get_conversation(self, conversation_id: str) -> Conversation:
        return await self.database.read(lambda c: fetch_conversation(c, conversation_id))

    async def log_typing(
        self, conversation_id: str, by: str, user_id: str | None, until: datetime
    ) -> None:
        def write(connection: sqlite3.Connection) -> None:
            conversation = fetch_conversation(connection, conversation_id)
            append_event(
                connection,
                InboxEvent.CONVERSATION_TYPING,
                conversation_id,
                conversation_id,
                (conversation.assignee,),
                data=events.typing(by, user_id, until),
            )

        await self.database.write(write)

    async def update_conversation(
        self,
        conversation_id: str,
        status: ConversationStatus = UNSET,
        assignee: str | None = UNSET,
        unread_count: int = UNSET,
        expected_assignee: str | None = UNSET,
        audit: AuditEntry | None = None,
        by: Author | None = None,
    ) -> Conversation:
        def write(connection: sqlite3.Connection) -> Conversation:
            current = fetch_conversation(connection, conversation_id)
            if expected_assignee is not UNSET and current.assignee != expected_assignee:
                raise Conflict(
                    "the conversation's assignee changed meanwhile; read it again",
                    assignee=current.assignee,
                )
            if audit is not None:
                append_audit(connection, audit)
            moment = utcnow()
            now = format_timestamp(moment)
            new_assignee = current.assignee if assignee is UNSET else assignee
            status_after = current.status if status is UNSET else ConversationStatus(status)
            after = {
                "status": status_after,
                "assignee": new_assignee,
                "unread_count": current.unread_count if unread_count is UNSET else unread_count,
            }
            before = {
                "status": current.status,
                "assignee": current.assignee,
                "unread_count": current.unread_count,
            }
            connection.execute(
                "UPDATE conversations SET status = ?, assignee = ?, unread_count = ?,"
                " updated_at = ? WHERE id = ?",
                (after["status"], after["assignee"], after["unread_count"], now, conversation_id),
            )
            change = change_of(current, status_after, new_assignee, moment, by)
            insert_change(connection, change)
            assignees = (new_assignee, current.assignee)
            append_event(
                connection,
                InboxEvent.CONVERSATION_UPDATED,
                conversation_id,
                conversation_id,
                assignees if new_assignee != current.assignee else (new_assignee,),
                now,
                events.conversation_changes(current.channel, before, after, change),
            )
            return fetch_conversation(connection, conversation_id)

        return await self.database.write(write)

    async def conversation_changes(self, conversation_id: str) -> tuple[ConversationChange, ...]:
        def read(connection: sqlite3.Connection) -> tuple[ConversationChange, ...]:
            fetch_conversation(connection, conversation_id)  # NotFound for an unknown id
            return read_changes(connection, conversation_id)

        return await self.database.read(read)

    async def list_changes(self, conversation_id: str, cursor: str | None, limit: int) -> Page:
        after = decode_list_cursor(cursor, CHANGE_PREFIX) if cursor else None

        def read(connection: sqlite3.Connection) -> Page:
            fetch_conversation(connection, conversation_id)  # NotFound for an unknown id
            return page_changes(connection, conversation_id, after, limit)

        return await self.database.read(read)

    async def scan_history(
        self, cursor: str | None, limit: int
    ) -> tuple[list[ConversationRecord], str | None]:
        return await self.database.read(lambda connection: scan(connection, cursor, limit))

    async def list_conversations(
        self,
        status: ConversationStatus | None,
        channel: str | None,
        assignee: str | None,
        cursor: str | None,
        limit: int,
        assigned_to_or_unassigned: str | None = None,
    ) -> Page:
        after = decode_list_cursor(cursor, "cv") if cursor else None

        def read(connection: sqlite3.Connection) -> Page:
            select = "SELECT * FROM conversations WHERE 1 = 1"
            params: list[Any] = []
            for column, value in (("status", status), ("channel", channel), ("assignee", assignee)):
                if value is not None:
                    select += f" AND {column} = ?"
                    params.append(str(value))
            if assigned_to_or_unassigned is not None:
                select += " AND (assignee = ? OR assignee IS NULL)"
                params.append(assigned_to_or_unassigned)
            return keyset_page(
                connection,
                select,
                params,
                after,
                ("last_activity_at", "id"),
                descending=True,
                limit=limit,
                build=conversation_from_row,
            )

        return await self.database.read(read)

"""The embedded default store: SQLite in WAL mode, zero set-up."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from omnichannel_core.hooktypes import InboundMessage, StatusUpdate
from omnichannel_core.ids import new_id
from omnichannel_core.models import (
    Contact,
    Conversation,
    ConversationStatus,
    DeliveryStatus,
    Direction,
    Media,
    Message,
    Page,
    utcnow,
)
from omnichannel_core.serialization import format_timestamp
from omnichannel_core.store import UNSET, Ingested, StatusApplied
from omnichannel_core.store.cursor import decode_cursor
from omnichannel_core.store.search import search_terms
from omnichannel_core.store.sqlite_rows import (
    ContactRows,
    InboundRows,
    contact_from_rows,
    contact_rows,
    conversation_from_row,
    fetch_contact,
    fetch_conversation,
    fetch_message,
    fetch_one,
    ingested_from_rows,
    json_text,
    keyset_page,
    load_contact,
    message_from_row,
    stored_inbound,
)
from omnichannel_core.store.sqlite_runner import SqliteRunner, connect
from omnichannel_core.store.sqlite_schema import MIGRATIONS, migrate


def _upsert_contact(
    connection: sqlite3.Connection, channel: str, address: str, display_name: str | None, now: str
) -> ContactRows:
    """The contact reached at ``address`` on ``channel``, created if new; a name given when
    the contact has none fills it in."""
    row = connection.execute(
        "SELECT contacts.* FROM identities JOIN contacts ON contacts.id = identities.contact_id"
        " WHERE identities.channel = ? AND identities.address = ?",
        (channel, address),
    ).fetchone()
    if row is None:
        contact_id = new_id("ct")
        row = connection.execute(
            "INSERT INTO contacts (id, display_name, search_terms, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?) RETURNING *",
            (contact_id, display_name, search_terms(display_name, [address]), now, now),
        ).fetchone()
        connection.execute(
            "INSERT INTO identities (channel, address, contact_id) VALUES (?, ?, ?)",
            (channel, address, contact_id),
        )
        return row, [{"channel": channel, "address": address}]
    row, identities = contact_rows(connection, row)
    if display_name and row["display_name"] is None:
        addresses = [identity["address"] for identity in identities]
        row = connection.execute(
            "UPDATE contacts SET display_name = ?, search_terms = ?, updated_at = ?"
            " WHERE id = ? RETURNING *",
            (display_name, search_terms(display_name, addresses), now, row["id"]),
        ).fetchone()
    return row, identities


def _upsert_conversation(
    connection: sqlite3.Connection, contact_id: str, channel: str, address: str, now: str
) -> str:
    """The id of the contact's conversation on ``channel``, opened if new; it answers to the
    address the contact last wrote from."""
    row = connection.execute(
        "SELECT id, address FROM conversations WHERE contact_id = ? AND channel = ?",
        (contact_id, channel),
    ).fetchone()
    if row is not None:
        if row["address"] != address:
            connection.execute(
                "UPDATE conversations SET address = ? WHERE id = ?", (address, row["id"])
            )
        return row["id"]
    conversation_id = new_id("cv")
    connection.execute(
        "INSERT INTO conversations (id, contact_id, channel, address, status, unread_count,"
        " last_activity_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
        (conversation_id, contact_id, channel, address, ConversationStatus.OPEN, now, now, now),
    )
    return conversation_id


def _advance(
    connection: sqlite3.Connection,
    row: sqlite3.Row,
    status: DeliveryStatus,
    provider_message_id: str | None,
    error_code: str | None,
    error_message: str | None,
) -> StatusApplied:
    current = DeliveryStatus(row["status"])
    moves = row["direction"] == Direction.OUTBOUND and current.can_move_to(status)
    sets_provider_id = provider_message_id is not None and row["provider_message_id"] is None
    if not moves and not sets_provider_id:
        return StatusApplied(message_from_row(row), changed=False)
    now = format_timestamp(utcnow())
    if moves:
        connection.execute(
            "UPDATE messages SET status = ?, error_code = coalesce(?, error_code),"
            " error_message = coalesce(?, error_message), updated_at = ? WHERE id = ?",
            (status, error_code, error_message, now, row["id"]),
        )
    if sets_provider_id:
        connection.execute(
            "UPDATE messages SET provider_message_id = ?, updated_at = ? WHERE id = ?",
            (provider_message_id, now, row["id"]),
        )
    return StatusApplied(fetch_message(connection, row["id"]), changed=moves)


class SqliteStore:
    """The :class:`omnichannel_core.store.Store` contract on one SQLite file."""

    backend = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._runner = SqliteRunner(self.path)

    async def open(self) -> None:
        # Off the event loop: another process may hold the write lock for a while.
        await asyncio.to_thread(self._migrate)
        self._runner.start()

    def _migrate(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = connect(self.path)
        try:
            migrate(connection)
        finally:
            connection.close()

    async def close(self) -> None:
        # Off the event loop, so the writes close() drains can still settle on this loop.
        await asyncio.to_thread(self._runner.close)

    async def ping(self) -> dict[str, Any]:
        def query(connection: sqlite3.Connection) -> int:
            return connection.execute("PRAGMA user_version").fetchone()[0]

        version = await self._runner.read(query)
        return {"backend": self.backend, "schema_version": version, "latest": len(MIGRATIONS)}

    async def ingest_inbound(self, channel: str, inbound: InboundMessage) -> Ingested:
        def write(connection: sqlite3.Connection) -> InboundRows:
            # Inside the writer's transaction (BEGIN IMMEDIATE holds the write lock), so this
            # check and the insert below are one atomic step; a duplicate touches nothing.
            stored = stored_inbound(connection, channel, inbound.provider_message_id)
            if stored is not None:
                return stored
            now = format_timestamp(utcnow())
            contact = _upsert_contact(connection, channel, inbound.sender, inbound.sender_name, now)
            contact_id = contact[0]["id"]
            conversation_id = _upsert_conversation(
                connection, contact_id, channel, inbound.sender, now
            )
            metadata = dict(inbound.metadata)
            if inbound.sent_at is not None:
                metadata["sent_at"] = format_timestamp(inbound.sent_at)
            message_row = connection.execute(
                "INSERT INTO messages (id, conversation_id, contact_id, channel, direction,"
                " status, text, media, provider_message_id, metadata, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
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
            conversation_row = connection.execute(
                "UPDATE conversations SET unread_count = unread_count + 1,"
                " last_activity_at = ?, updated_at = ?,"
                " status = CASE status WHEN 'resolved' THEN 'open' ELSE status END"
                " WHERE id = ? RETURNING *",
                (now, now, conversation_id),
            ).fetchone()
            return message_row, contact, conversation_row, True

        return ingested_from_rows(await self._runner.write(write))

    async def resolve_recipient(
        self, channel: str, address: str, display_name: str | None = None
    ) -> tuple[Contact, Conversation]:
        def write(connection: sqlite3.Connection) -> tuple[Contact, Conversation]:
            now = format_timestamp(utcnow())
            contact = _upsert_contact(connection, channel, address, display_name, now)
            conversation_id = _upsert_conversation(
                connection, contact[0]["id"], channel, address, now
            )
            return contact_from_rows(contact), fetch_conversation(connection, conversation_id)

        return await self._runner.write(write)

    async def create_outbound(
        self,
        conversation_id: str,
        text: str | None,
        media: tuple[Media, ...],
        metadata: dict[str, Any],
        idempotency_key: str | None,
    ) -> tuple[Message, bool]:
        def write(connection: sqlite3.Connection) -> tuple[Message, bool]:
            if idempotency_key is not None:
                row = connection.execute(
                    "SELECT * FROM messages WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if row is not None:
                    return message_from_row(row), False
            conversation = fetch_conversation(connection, conversation_id)
            now = format_timestamp(utcnow())
            message_id = new_id("msg")
            connection.execute(
                "INSERT INTO messages (id, conversation_id, contact_id, channel, direction,"
                " status, text, media, idempotency_key, metadata, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    json.dumps(metadata, separators=(",", ":")),
                    now,
                    now,
                ),
            )
            connection.execute(
                "UPDATE conversations SET last_activity_at = ?, updated_at = ? WHERE id = ?",
                (now, now, conversation.id),
            )
            return fetch_message(connection, message_id), True

        return await self._runner.write(write)

    async def find_by_idempotency_key(self, idempotency_key: str) -> Message | None:
        def read(connection: sqlite3.Connection) -> Message | None:
            row = connection.execute(
                "SELECT * FROM messages WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
            return None if row is None else message_from_row(row)

        return await self._runner.read(read)

    async def advance_message(
        self,
        message_id: str,
        status: DeliveryStatus,
        provider_message_id: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> StatusApplied:
        def write(connection: sqlite3.Connection) -> StatusApplied:
            row = fetch_one(
                connection, "SELECT * FROM messages WHERE id = ?", (message_id,), "message"
            )
            return _advance(connection, row, status, provider_message_id, error_code, error_message)

        return await self._runner.write(write)

    async def apply_status(self, channel: str, update: StatusUpdate) -> StatusApplied:
        def write(connection: sqlite3.Connection) -> StatusApplied:
            row = connection.execute(
                "SELECT * FROM messages"
                " WHERE channel = ? AND direction = 'outbound' AND provider_message_id = ?",
                (channel, update.provider_message_id),
            ).fetchone()
            if row is None:
                return StatusApplied(None, changed=False)
            return _advance(
                connection, row, update.status, None, update.error_code, update.error_message
            )

        return await self._runner.write(write)

    async def get_message(self, message_id: str) -> Message:
        return await self._runner.read(lambda c: fetch_message(c, message_id))

    async def list_messages(self, conversation_id: str, cursor: str | None, limit: int) -> Page:
        if cursor:
            decode_cursor(cursor, 2)  # a bad cursor is the caller's error, raised here

        def read(connection: sqlite3.Connection) -> Page:
            fetch_conversation(connection, conversation_id)
            return keyset_page(
                connection,
                "SELECT * FROM messages WHERE conversation_id = ?",
                [conversation_id],
                cursor,
                ("created_at", "id"),
                descending=False,
                limit=limit,
                build=message_from_row,
            )

        return await self._runner.read(read)

    async def get_contact(self, contact_id: str) -> Contact:
        return await self._runner.read(lambda c: fetch_contact(c, contact_id))

    async def update_contact(
        self,
        contact_id: str,
        display_name: str | None = UNSET,
        tags: tuple[str, ...] = UNSET,
        attributes: dict[str, Any] = UNSET,
    ) -> Contact:
        def write(connection: sqlite3.Connection) -> Contact:
            contact = fetch_contact(connection, contact_id)
            name = contact.display_name if display_name is UNSET else display_name
            new_tags = contact.tags if tags is UNSET else tuple(tags)
            new_attributes = contact.attributes if attributes is UNSET else dict(attributes)
            addresses = [identity.address for identity in contact.identities]
            connection.execute(
                "UPDATE contacts SET display_name = ?, tags = ?, attributes = ?,"
                " search_terms = ?, updated_at = ? WHERE id = ?",
                (
                    name,
                    json.dumps(list(new_tags)),
                    json.dumps(new_attributes, separators=(",", ":")),
                    search_terms(name, addresses),
                    format_timestamp(utcnow()),
                    contact_id,
                ),
            )
            return fetch_contact(connection, contact_id)

        return await self._runner.write(write)

    async def list_contacts(self, search: str | None, cursor: str | None, limit: int) -> Page:
        if cursor:
            decode_cursor(cursor, 2)

        def read(connection: sqlite3.Connection) -> Page:
            select = "SELECT * FROM contacts WHERE 1 = 1"
            params: list[Any] = []
            if search:
                escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%")
                escaped = escaped.replace("_", "\\_")
                select += " AND search_terms LIKE ? ESCAPE '\\'"
                params.append(f"% {escaped}%")
            return keyset_page(
                connection,
                select,
                params,
                cursor,
                ("created_at", "id"),
                descending=True,
                limit=limit,
                build=lambda row: load_contact(connection, row),
            )

        return await self._runner.read(read)

    async def get_conversation(self, conversation_id: str) -> Conversation:
        return await self._runner.read(lambda c: fetch_conversation(c, conversation_id))

    async def update_conversation(
        self,
        conversation_id: str,
        status: ConversationStatus = UNSET,
        assignee: str | None = UNSET,
        unread_count: int = UNSET,
    ) -> Conversation:
        def write(connection: sqlite3.Connection) -> Conversation:
            current = fetch_conversation(connection, conversation_id)
            connection.execute(
                "UPDATE conversations SET status = ?, assignee = ?, unread_count = ?,"
                " updated_at = ? WHERE id = ?",
                (
                    current.status if status is UNSET else ConversationStatus(status),
                    current.assignee if assignee is UNSET else assignee,
                    current.unread_count if unread_count is UNSET else unread_count,
                    format_timestamp(utcnow()),
                    conversation_id,
                ),
            )
            return fetch_conversation(connection, conversation_id)

        return await self._runner.write(write)

    async def list_conversations(
        self,
        status: ConversationStatus | None,
        channel: str | None,
        assignee: str | None,
        cursor: str | None,
        limit: int,
    ) -> Page:
        if cursor:
            decode_cursor(cursor, 2)

        def read(connection: sqlite3.Connection) -> Page:
            select = "SELECT * FROM conversations WHERE 1 = 1"
            params: list[Any] = []
            for column, value in (("status", status), ("channel", channel), ("assignee", assignee)):
                if value is not None:
                    select += f" AND {column} = ?"
                    params.append(str(value))
            return keyset_page(
                connection,
                select,
                params,
                cursor,
                ("last_activity_at", "id"),
                descending=True,
                limit=limit,
                build=conversation_from_row,
            )

        return await self._runner.read(read)

"""The embedded default store: SQLite in WAL mode, zero set-up."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from omnichannel_core.access.records import (
    ApiKey,
    AuditEntry,
    Refreshed,
    Role,
    User,
    UserCredentials,
)
from omnichannel_core.errors import Conflict
from omnichannel_core.events.records import Event, EventType
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
from omnichannel_core.store import (
    PARKED_STATUS_TTL,
    UNSET,
    WATERMARK_BATCH,
    Ingested,
    StatusApplied,
)
from omnichannel_core.store import sqlite_access as access
from omnichannel_core.store import sqlite_events as events
from omnichannel_core.store.cursor import decode_cursor
from omnichannel_core.store.sqlite_contacts import (
    search_clause,
    search_text,
    upsert_contact,
    upsert_conversation,
)
from omnichannel_core.store.sqlite_file import create_private_file, unusable_store
from omnichannel_core.store.sqlite_ingest import ingest
from omnichannel_core.store.sqlite_rows import (
    InboundRows,
    contact_from_rows,
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
)
from omnichannel_core.store.sqlite_runner import SqliteRunner, connect, holding_writer_lock
from omnichannel_core.store.sqlite_schema import MIGRATIONS, migrate
from omnichannel_core.store.sqlite_status import advance, apply_status, apply_watermark


def _nobody_listens() -> None:
    pass


class SqliteStore:
    """The :class:`omnichannel_core.store.Store` contract on one SQLite file."""

    backend = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.parked_status_ttl = PARKED_STATUS_TTL
        self.watermark_batch = WATERMARK_BATCH
        self._runner = SqliteRunner(self.path)
        self._events_logged: Callable[[], None] = _nobody_listens

    def on_events_logged(self, listener: Callable[[], None]) -> None:
        self._events_logged = listener

    async def open(self) -> None:
        """Create (private) or migrate the file; a path that cannot be used raises
        ConfigError naming OMNICHANNEL_STORE and the reason."""
        # Off the event loop: another process may hold the write lock for a while.
        await asyncio.to_thread(self._migrate)
        self._runner.start()

    def _migrate(self) -> None:
        try:
            create_private_file(self.path)
            with holding_writer_lock(self.path):
                connection = connect(self.path)
                try:
                    migrate(connection)
                finally:
                    connection.close()
        except (OSError, sqlite3.Error) as error:
            raise unusable_store(self.path, error) from error

    async def close(self) -> None:
        await self._runner.close()

    async def ping(self) -> dict[str, Any]:
        def query(connection: sqlite3.Connection) -> int:
            return connection.execute("PRAGMA user_version").fetchone()[0]

        version = await self._runner.read(query)
        return {"backend": self.backend, "schema_version": version, "latest": len(MIGRATIONS)}

    async def ingest_inbound(self, channel: str, inbound: InboundMessage) -> Ingested:
        def write(connection: sqlite3.Connection) -> InboundRows:
            return ingest(connection, channel, inbound, format_timestamp(utcnow()))

        ingested = ingested_from_rows(await self._runner.write(write))
        if ingested.created:
            self._events_logged()
        return ingested

    async def resolve_recipient(
        self,
        channel: str,
        address: str,
        display_name: str | None = None,
        reply_to: str | None = None,
    ) -> tuple[Contact, Conversation]:
        def write(connection: sqlite3.Connection) -> tuple[Contact, Conversation]:
            now = format_timestamp(utcnow())
            contact = upsert_contact(connection, channel, address, display_name, now)
            conversation_id = upsert_conversation(
                connection, contact[0]["id"], channel, reply_to or address, now
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
        expected_assignee: str | None = UNSET,
    ) -> tuple[Message, bool]:
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
            events.append_event(
                connection,
                EventType.MESSAGE_CREATED,
                message_id,
                conversation.id,
                (conversation.assignee,),
                now,
            )
            return fetch_message(connection, message_id), True

        message, created = await self._runner.write(write)
        if created:
            self._events_logged()
        return message, created

    async def find_outbound_by_provider_id(
        self, channel: str, provider_message_id: str
    ) -> Message | None:
        def read(connection: sqlite3.Connection) -> Message | None:
            row = connection.execute(
                "SELECT * FROM messages WHERE channel = ? AND direction = 'outbound'"
                " AND provider_message_id = ?",
                (channel, provider_message_id),
            ).fetchone()
            return None if row is None else message_from_row(row)

        return await self._runner.read(read)

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
            return advance(
                connection,
                row,
                status,
                provider_message_id,
                error_code,
                error_message,
                self.parked_status_ttl,
            )

        return self._logged_if_changed(await self._runner.write(write))

    async def apply_status(self, channel: str, update: StatusUpdate) -> StatusApplied:
        ttl = self.parked_status_ttl
        applied = await self._runner.write(lambda c: apply_status(c, channel, update, ttl))
        return self._logged_if_changed(applied)

    async def apply_watermark(
        self, channel: str, recipient: str, status: DeliveryStatus, up_to: datetime
    ) -> list[Message]:
        status, until = DeliveryStatus(status), format_timestamp(up_to)
        ttl, limit = self.parked_status_ttl, self.watermark_batch
        moved: list[Message] = []
        while True:  # one batch per write: other writers get their turn between them
            batch = await self._runner.write(
                lambda c: apply_watermark(c, channel, recipient, status, until, ttl, limit)
            )
            if batch:
                self._events_logged()
            moved += batch
            if len(batch) < limit:
                return sorted(moved, key=lambda message: (message.created_at, message.id))

    def _logged_if_changed(self, applied: StatusApplied) -> StatusApplied:
        if applied.changed:
            self._events_logged()
        return applied

    async def get_message(self, message_id: str) -> Message:
        return await self._runner.read(lambda c: fetch_message(c, message_id))

    async def list_messages(self, conversation_id: str, cursor: str | None, limit: int) -> Page:
        after = decode_cursor(cursor, 2) if cursor else None  # a bad cursor: InvalidInput

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
            now = format_timestamp(utcnow())
            connection.execute(
                "UPDATE contacts SET display_name = ?, tags = ?, attributes = ?,"
                " search_terms = ?, updated_at = ? WHERE id = ?",
                (
                    name,
                    json.dumps(list(new_tags)),
                    json.dumps(new_attributes, separators=(",", ":")),
                    search_text(name, addresses),
                    now,
                    contact_id,
                ),
            )
            events.append_event(connection, EventType.CONTACT_UPDATED, contact_id, None, (), now)
            return fetch_contact(connection, contact_id)

        changed = await self._runner.write(write)
        self._events_logged()
        return changed

    async def list_contacts(self, search: str | None, cursor: str | None, limit: int) -> Page:
        after = decode_cursor(cursor, 2) if cursor else None

        def read(connection: sqlite3.Connection) -> Page:
            clause, params = search_clause(search)
            select = "SELECT * FROM contacts WHERE 1 = 1"
            select += clause  # one LIKE per token, values bound
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

        return await self._runner.read(read)

    async def get_conversation(self, conversation_id: str) -> Conversation:
        return await self._runner.read(lambda c: fetch_conversation(c, conversation_id))

    async def update_conversation(
        self,
        conversation_id: str,
        status: ConversationStatus = UNSET,
        assignee: str | None = UNSET,
        unread_count: int = UNSET,
        expected_assignee: str | None = UNSET,
        audit: AuditEntry | None = None,
    ) -> Conversation:
        def write(connection: sqlite3.Connection) -> Conversation:
            current = fetch_conversation(connection, conversation_id)
            if expected_assignee is not UNSET and current.assignee != expected_assignee:
                raise Conflict(
                    "the conversation's assignee changed meanwhile; read it again",
                    assignee=current.assignee,
                )
            if audit is not None:
                access.append_audit(connection, audit)
            now = format_timestamp(utcnow())
            new_assignee = current.assignee if assignee is UNSET else assignee
            connection.execute(
                "UPDATE conversations SET status = ?, assignee = ?, unread_count = ?,"
                " updated_at = ? WHERE id = ?",
                (
                    current.status if status is UNSET else ConversationStatus(status),
                    new_assignee,
                    current.unread_count if unread_count is UNSET else unread_count,
                    now,
                    conversation_id,
                ),
            )
            assignees = (new_assignee, current.assignee)
            events.append_event(
                connection,
                EventType.CONVERSATION_UPDATED,
                conversation_id,
                conversation_id,
                assignees if new_assignee != current.assignee else (new_assignee,),
                now,
            )
            return fetch_conversation(connection, conversation_id)

        changed = await self._runner.write(write)
        self._events_logged()
        return changed

    async def list_conversations(
        self,
        status: ConversationStatus | None,
        channel: str | None,
        assignee: str | None,
        cursor: str | None,
        limit: int,
        assigned_to_or_unassigned: str | None = None,
    ) -> Page:
        after = decode_cursor(cursor, 2) if cursor else None

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

        return await self._runner.read(read)

    # The event log: the SQL is in sqlite_events

    async def events_after(self, cursor: str | None, limit: int) -> list[Event]:
        return await self._runner.read(lambda c: events.events_after(c, cursor, limit))

    async def latest_event_cursor(self) -> str | None:
        return await self._runner.read(events.latest_event_cursor)

    async def prune_events(self, before: datetime) -> int:
        return await self._runner.write(lambda c: events.prune_events(c, before))

    # Access (omnichannel_core.store.access): the SQL is in sqlite_access

    async def create_user(
        self, email: str, display_name: str, role: Role, password_hash: str
    ) -> User:
        return await self._runner.write(
            lambda c: access.insert_user(c, email, display_name, role, password_hash)
        )

    async def get_user(self, user_id: str) -> User:
        return await self._runner.read(lambda c: access.fetch_user(c, user_id))

    async def user_credentials(self, email: str) -> UserCredentials | None:
        return await self._runner.read(lambda c: access.find_credentials(c, email))

    async def user_credentials_by_id(self, user_id: str) -> UserCredentials:
        return await self._runner.read(lambda c: access.fetch_credentials_by_id(c, user_id))

    async def has_active_admin(self) -> bool:
        return await self._runner.read(access.has_active_admin)

    async def list_users(self, cursor: str | None, limit: int) -> Page:
        after = decode_cursor(cursor, 2) if cursor else None
        return await self._runner.read(lambda c: access.list_users(c, after, limit))

    async def update_user(
        self,
        user_id: str,
        display_name: str = UNSET,
        role: Role = UNSET,
        active: bool = UNSET,
        password_hash: str = UNSET,
    ) -> User:
        return await self._runner.write(
            lambda c: access.update_user(c, user_id, display_name, role, active, password_hash)
        )

    async def create_session(
        self, user_id: str, refresh_token_hash: str, expires_at: datetime
    ) -> str:
        return await self._runner.write(
            lambda c: access.insert_session(c, user_id, refresh_token_hash, expires_at)
        )

    async def rotate_refresh_token(
        self, token_hash: str, new_token_hash: str, expires_at: datetime, now: datetime
    ) -> Refreshed:
        return await self._runner.write(
            lambda c: access.rotate(c, token_hash, new_token_hash, expires_at, now)
        )

    async def end_session(self, session_id: str) -> bool:
        now = format_timestamp(utcnow())
        return await self._runner.write(lambda c: access.end_session(c, session_id, now))

    async def end_user_sessions(self, user_id: str, except_session_id: str | None = None) -> int:
        now = format_timestamp(utcnow())
        return await self._runner.write(
            lambda c: access.end_user_sessions(c, user_id, except_session_id, now)
        )

    async def session_user(self, user_id: str, session_id: str) -> User | None:
        return await self._runner.read(lambda c: access.session_user(c, user_id, session_id))

    async def create_api_key(
        self,
        name: str,
        scopes: tuple[str, ...],
        prefix: str,
        key_hash: str,
        created_by: str | None,
    ) -> ApiKey:
        return await self._runner.write(
            lambda c: access.insert_api_key(c, name, scopes, prefix, key_hash, created_by)
        )

    async def get_api_key(self, key_id: str) -> ApiKey:
        return await self._runner.read(lambda c: access.fetch_api_key(c, key_id))

    async def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        return await self._runner.read(lambda c: access.find_api_key(c, key_hash))

    async def list_api_keys(self, cursor: str | None, limit: int) -> Page:
        after = decode_cursor(cursor, 2) if cursor else None
        return await self._runner.read(lambda c: access.list_api_keys(c, after, limit))

    async def revoke_api_key(self, key_id: str, at: datetime) -> ApiKey:
        return await self._runner.write(lambda c: access.revoke_api_key(c, key_id, at))

    async def touch_api_key(self, key_id: str, at: datetime) -> None:
        await self._runner.write(lambda c: access.touch_api_key(c, key_id, at))

    async def reserve_login_attempt(
        self, email: str, at: datetime, window: timedelta, limit: int
    ) -> datetime | None:
        return await self._runner.write(
            lambda c: access.reserve_login_attempt(c, email, at, window, limit)
        )

    async def clear_login_failures(self, email: str) -> None:
        await self._runner.write(lambda c: access.clear_login_failures(c, email))

    async def append_audit(self, entry: AuditEntry) -> None:
        await self._runner.write(lambda c: access.append_audit(c, entry))

    async def list_audit(self, action: str | None, cursor: str | None, limit: int) -> Page:
        after = decode_cursor(cursor, 2) if cursor else None
        return await self._runner.read(lambda c: access.list_audit(c, action, after, limit))

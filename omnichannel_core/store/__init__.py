"""The store: one interface a document database can implement.

Every query is answerable by one simple index (no joins); every write that must be atomic
(dedupe, forward-only status, idempotency) is one method, so each backend can make it one
transaction. `tests/store_contract.py` pins the contract for every backend.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from omnichannel_core.errors import ConfigError
from omnichannel_core.hooktypes import InboundMessage, StatusUpdate
from omnichannel_core.models import (
    Contact,
    Conversation,
    ConversationStatus,
    DeliveryStatus,
    Media,
    Message,
    Page,
)

UNSET: Any = attrs.NOTHING
"""Marks an update argument that was not given (``None`` means "clear it")."""


@attrs.frozen
class Ingested:
    """The result of storing an inbound message: the rows it touched and whether it is new."""

    message: Message
    contact: Contact
    conversation: Conversation
    created: bool


@attrs.frozen
class StatusApplied:
    """The result of a status update: the message (None if unknown) and whether it moved."""

    message: Message | None
    changed: bool


class Store(Protocol):
    """What every backend implements. All methods are coroutines."""

    async def open(self) -> None:
        """Create or migrate the schema; idempotent, safe from several processes at once."""

    async def close(self) -> None: ...

    async def ping(self) -> dict[str, Any]:
        """A cheap round trip; returns facts for the health report (backend, schema)."""

    async def ingest_inbound(self, channel: str, inbound: InboundMessage) -> Ingested:
        """Store an inbound message, upserting its contact and conversation, atomically.

        Dedupes on (channel, provider_message_id): a second call with the same pair changes
        nothing and answers ``created=False`` with the stored message.
        """

    async def resolve_recipient(
        self, channel: str, address: str, display_name: str | None = None
    ) -> tuple[Contact, Conversation]:
        """The contact and conversation for ``address`` on ``channel``, created if new."""

    async def create_outbound(
        self,
        conversation_id: str,
        text: str | None,
        media: tuple[Media, ...],
        metadata: dict[str, Any],
        idempotency_key: str | None,
    ) -> tuple[Message, bool]:
        """Store a queued outbound message; with an idempotency key already used, return the
        stored message and False instead."""

    async def find_by_idempotency_key(self, idempotency_key: str) -> Message | None:
        """The outbound message stored under this idempotency key, if any."""

    async def advance_message(
        self,
        message_id: str,
        status: DeliveryStatus,
        provider_message_id: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> StatusApplied:
        """Move an outbound message forward (never back); record its provider id if new."""

    async def apply_status(self, channel: str, update: StatusUpdate) -> StatusApplied:
        """Apply a provider status update to the outbound message with that provider id."""

    async def get_message(self, message_id: str) -> Message:
        """The message, or raise NotFound."""

    async def list_messages(self, conversation_id: str, cursor: str | None, limit: int) -> Page:
        """A conversation's messages, oldest first."""

    async def get_contact(self, contact_id: str) -> Contact:
        """The contact, or raise NotFound."""

    async def update_contact(
        self,
        contact_id: str,
        display_name: str | None = UNSET,
        tags: tuple[str, ...] = UNSET,
        attributes: dict[str, Any] = UNSET,
    ) -> Contact:
        """Change the given fields; raise NotFound for an unknown id."""

    async def list_contacts(self, search: str | None, cursor: str | None, limit: int) -> Page:
        """Contacts, newest first; ``search`` matches a case-insensitive prefix of any word
        of the display name or of any identity address."""

    async def get_conversation(self, conversation_id: str) -> Conversation:
        """The conversation, or raise NotFound."""

    async def update_conversation(
        self,
        conversation_id: str,
        status: ConversationStatus = UNSET,
        assignee: str | None = UNSET,
        unread_count: int = UNSET,
    ) -> Conversation:
        """Change the given fields; raise NotFound for an unknown id."""

    async def list_conversations(
        self,
        status: ConversationStatus | None,
        channel: str | None,
        assignee: str | None,
        cursor: str | None,
        limit: int,
    ) -> Page:
        """Conversations, most recent activity first, filtered by any given field."""


def open_store(url: str) -> Store:
    """Build the store named by ``OMNICHANNEL_STORE``: ``sqlite:///path`` or a bare path."""
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://").removeprefix("/")
        if url.startswith("sqlite:////"):
            path = "/" + path.lstrip("/")
    elif "://" in url:
        scheme = url.split("://", 1)[0]
        raise ConfigError(
            f"OMNICHANNEL_STORE: unsupported store {scheme!r}; use sqlite:///PATH",
            variable="OMNICHANNEL_STORE",
        )
    else:
        path = url
    if not path:
        raise ConfigError("OMNICHANNEL_STORE: no path given", variable="OMNICHANNEL_STORE")
    from omnichannel_core.store.sqlite import SqliteStore

    return SqliteStore(path)

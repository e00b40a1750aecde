"""The production store: Firestore (native mode) through the async client of firebase-admin's
google-cloud-firestore, one transaction per atomic write.

Layout. Every collection name takes the store's prefix (empty by default). Ids of records
are the project's own (`omnichannel_core.ids`); ids of unique keys are SHA-256 hex of the
key's parts (`firestore_documents.document_key`), so a key is found, and claimed, by id.

``contacts/{contact_id}``
    ``display_name``, ``identities`` (``[{channel, address}]``), ``tags``, ``opted_out``,
    ``attributes_json`` (free-form JSON as text: never indexed, stored exactly),
    ``search_words`` and ``search_prefixes`` (`firestore_search`), ``created_at``,
    ``updated_at``. Listed newest first by (``created_at``, id); searched with
    ``array_contains`` on ``search_prefixes``.
``identities/{key(channel, address)}``
    ``channel``, ``address``, ``contact_id``, ``conversation_id``: finds the sender of an
    inbound message by id, with its conversation on that channel, in the ingest's first
    read; creating it claims the address, so two first messages of a new sender make one
    contact. A contact gains identities only when it is made, so an identity and the
    conversation of (contact, channel) go together.
``conversations/{conversation_id}``
    ``contact_id``, ``channel``, ``address``, ``status``, ``assignee``, ``unread_count``,
    ``last_activity_at``, ``created_at``, ``updated_at``, ``last_inbound_at`` (absent from
    documents written before it existed: read as None until the next inbound message).
    Listed by (``last_activity_at``, id), most recent first, with equality filters on
    ``status``, ``channel``, ``assignee`` (an agent's view: ``assignee == me OR assignee ==
    null``); found by ``channel`` and ``address`` for a watermark.
``messages/{message_id}``
    the fields of `omnichannel_core.models.Message`, ``media_json`` and ``metadata_json`` as
    text (free-form, never indexed). Listed by ``conversation_id``, oldest first, by
    (``created_at``, id); a watermark reads a conversation's by ``status`` (``in``) and
    ``created_at`` (`firestore_watermarks`).
``message_keys/{key(...)}``
    ``message_id``, ``conversation_id``, ``contact_id``: the unique keys of messages, one
    document each, created in the transaction that stores what they guard. ``("provider",
    channel, direction, provider id)`` dedupes inbound messages and records an outbound
    message's provider id (so a clash is seen, and a status update finds its message, by
    id); ``("idempotency", key)`` makes outbound creates idempotent.
``parked_statuses/{key(channel, provider id, status)}``
    a status update that came before its message's provider id was recorded: ``channel``,
    ``provider_message_id``, ``status``, ``error_code``, ``error_message``, ``parked_at``,
    and ``expire_at`` for a TTL policy. One per status, so recording an id reads them all
    by id (no query) in the round trip that reads the key.
``events/{event_id}``
    ``type``, ``record_id``, ``conversation_id``, ``assignees``, ``at`` (server time): the
    event log, ordered by commit time; `firestore_events` has the ordering argument.
``meta/events``
    ``pruned_through_ns``, ``pruned_through_id``: the newest pruned event. ``meta/schema``
    holds ``version``, written by ``open``.

Access records (users, sessions, API keys, failed logins, audit log) are
`firestore_access.FirestoreAccess`'s, in the same database and prefix.

Indexes. The sorted, filtered lists need the composite indexes in ``firestore.indexes.json``
at the repository root (deploy with ``firebase deploy --only firestore:indexes``; with a
prefix, rename their collection groups): ``contacts`` (``search_prefixes`` contains,
``created_at`` desc), ``messages`` (``conversation_id``, ``created_at``; and
``conversation_id``, ``status``, ``created_at`` for watermarks), and ``conversations``, one
per combination of the ``status``, ``channel`` and ``assignee`` filters before
``last_activity_at`` desc. Every other query uses automatic single-field indexes (the
conversations at an address: equality on ``channel`` and ``address``, merged). Free-form
and large fields are exempt from indexing (fewer index writes), and ``expire_at`` of parked
statuses carries a TTL policy. The emulator needs no index, so the
tests cannot catch a missing one: a new query means a new entry there.

Round trips. A transaction's first read begins it and its commit ends it
(`firestore_transaction`), so each write costs its reads and one commit:

==========================  ============================  ==================================
write                       reads (round trips: docs)     commit writes
==========================  ============================  ==================================
ingest, known sender        2: identity + key, then       key, message, conversation, event
                            contact + conversation        (+ contact when name or consent)
ingest, new sender          1: identity + key             identity, contact, conversation,
                                                          key, message, event
ingest, duplicate           2: identity + key, then       nothing
                            message, contact, conversation
resolve_recipient           1 (new) or 2 (known)          3 (new), 0-2 (known)
create_outbound             1: conversation (+ key)       message, conversation, event (+key)
advance_message             2: message, then              message, event; with a provider
                            conversation (+ key and 6     id: its key, parked deletes
                            possible parked updates)
apply_status                2: key + parked, then         message, event; parked: 1 write
                            message + conversation
apply_watermark, per batch  query (conversations at the   message, event per message moved
of up to 200 messages       address, then the batch),
                            1: conversation + messages
update_contact/conversation 1                             the record, event (+ audit entry)
==========================  ============================  ==================================

Writers of one key in one process take turns (`firestore_transaction.TakingTurns`) instead
of aborting each other; across processes Firestore's transactions decide. Reads of the
event log cost one read of ``meta/events`` and a query page (`firestore_events`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from google.api_core.exceptions import AlreadyExists
from google.cloud.firestore_v1 import AsyncClient

from omnichannel_core.access.records import AuditEntry
from omnichannel_core.errors import Conflict
from omnichannel_core.events.records import Event
from omnichannel_core.hooktypes import InboundMessage, StatusUpdate
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
from omnichannel_core.store import (
    PARKED_STATUS_TTL,
    UNSET,
    WATERMARK_BATCH,
    Ingested,
    StatusApplied,
    statuses_behind,
)
from omnichannel_core.store import firestore_contacts as contacts
from omnichannel_core.store import firestore_conversations as conversations
from omnichannel_core.store import firestore_events as events
from omnichannel_core.store import firestore_watermarks as watermarks
from omnichannel_core.store.access import AccessStore
from omnichannel_core.store.firestore_access import FirestoreAccess
from omnichannel_core.store.firestore_client import (
    FirestoreSettings,
    connect,
    disconnect,
    load_credentials,
    settings_from_environment,
)
from omnichannel_core.store.firestore_documents import (
    Layout,
    read_contact,
    read_conversation,
    read_message,
)
from omnichannel_core.store.firestore_ingest import ingest, resolve_recipient
from omnichannel_core.store.firestore_outbound import advance, apply_status, create_outbound
from omnichannel_core.store.firestore_search import SCAN_LIMIT
from omnichannel_core.store.firestore_transaction import TakingTurns, Transaction, transact

SCHEMA_VERSION = 1
ACCESS_METHODS = frozenset(name for name in vars(AccessStore) if not name.startswith("_"))
"""The access methods, served by `firestore_access.FirestoreAccess`."""


def _nobody_listens() -> None:
    pass


class FirestoreStore:
    """The :class:`omnichannel_core.store.Store` contract on Firestore.

    The access methods (:data:`ACCESS_METHODS`) are those of the store's
    `firestore_access.FirestoreAccess`, made by :meth:`open` on the same client.
    """

    backend = "firestore"

    def __init__(
        self,
        project: str | None = None,
        *,
        prefix: str = "",
        settings: FirestoreSettings | None = None,
        event_commit_window: timedelta = events.COMMIT_WINDOW,
    ) -> None:
        """Credentials are read now (a bad one raises ConfigError naming its variable); the
        connection is made by :meth:`open`, on the event loop that will use it."""
        self.settings = settings or settings_from_environment(project)
        self.prefix = prefix
        self.parked_status_ttl = PARKED_STATUS_TTL
        self.watermark_batch = WATERMARK_BATCH
        self.event_commit_window = event_commit_window
        self.search_scan_limit = SCAN_LIMIT
        self._client: AsyncClient | None = None
        self._layout: Layout | None = None
        self._access: FirestoreAccess | None = None
        self._turns = TakingTurns()
        self._events_logged: Callable[[], None] = _nobody_listens

    def on_events_logged(self, listener: Callable[[], None]) -> None:
        self._events_logged = listener

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            raise RuntimeError("open() the Firestore store first")
        return self._layout

    def __getattr__(self, name: str) -> Any:
        access = self.__dict__.get("_access")
        if name in ACCESS_METHODS and access is not None:
            return getattr(access, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    async def open(self) -> None:
        """Connect, and write the schema marker if it is missing: Firestore has no schema to
        migrate, and indexes are deployed from ``firestore.indexes.json``. Idempotent, and
        safe from several processes at once (the first marker wins)."""
        if self._client is not None:
            return
        credentials = self.settings.credentials
        if credentials is None:  # Application Default: may ask the metadata server
            credentials = await asyncio.to_thread(load_credentials, self.settings)
            if self._client is not None:  # opened meanwhile
                return
        self._client = connect(self.settings, credentials)
        self._layout = Layout(self._client, self.prefix)
        self._access = FirestoreAccess(self._client, self.prefix)
        marker = self._layout.meta.document("schema")
        if not (await marker.get()).exists:
            with contextlib.suppress(AlreadyExists):  # another process was first
                await marker.create({"version": SCHEMA_VERSION, "created_at": utcnow()})

    async def close(self) -> None:
        client, self._client, self._layout, self._access = self._client, None, None, None
        if client is not None:
            await disconnect(client)

    async def ping(self) -> dict[str, Any]:
        snapshot = await self.layout.meta.document("schema").get()
        version = (snapshot.to_dict() or {}).get("version") if snapshot.exists else None
        return {"backend": self.backend, "schema_version": version, **self.settings.facts()}

    async def _transact(self, key: tuple[str, ...], body: Callable[[Transaction], Any]) -> Any:
        """Run ``body`` in a transaction, after this process's other writers of ``key``."""
        client = self._client
        if client is None:
            raise RuntimeError("open() the Firestore store first")
        window = self.event_commit_window
        async with self._turns.turn(*key):
            return await transact(client, body, committed=lambda t: events.check_commit(t, window))

    def _logged(self, result: Any, logged: bool = True) -> Any:
        """``result``, after telling the listener when the write logged events."""
        if logged:
            self._events_logged()
        return result

    # Inbound and outbound: firestore_ingest, firestore_outbound

    async def ingest_inbound(self, channel: str, inbound: InboundMessage) -> Ingested:
        layout = self.layout
        ingested = await self._transact(
            ("identity", channel, inbound.sender), lambda t: ingest(t, layout, channel, inbound)
        )
        return self._logged(ingested, ingested.created)

    async def resolve_recipient(
        self,
        channel: str,
        address: str,
        display_name: str | None = None,
        reply_to: str | None = None,
    ) -> tuple[Contact, Conversation]:
        layout = self.layout
        return await self._transact(
            ("identity", channel, address),
            lambda t: resolve_recipient(t, layout, channel, address, display_name, reply_to),
        )

    async def create_outbound(
        self,
        conversation_id: str,
        text: str | None,
        media: tuple[Media, ...],
        metadata: dict[str, Any],
        idempotency_key: str | None,
        expected_assignee: str | None = UNSET,
    ) -> tuple[Message, bool]:
        layout = self.layout
        message, created = await self._transact(
            ("conversation", conversation_id),
            lambda t: create_outbound(
                t,
                layout,
                conversation_id,
                text,
                media,
                metadata,
                idempotency_key,
                expected_assignee,
            ),
        )
        return self._logged((message, created), created)

    async def find_outbound_by_provider_id(
        self, channel: str, provider_message_id: str
    ) -> Message | None:
        key = self.layout.provider_key(channel, Direction.OUTBOUND, provider_message_id)
        return await self._message_of_key(await key.get())

    async def find_by_idempotency_key(self, idempotency_key: str) -> Message | None:
        return await self._message_of_key(await self.layout.idempotency_key(idempotency_key).get())

    async def _message_of_key(self, key: Any) -> Message | None:
        if not key.exists:
            return None
        return read_message(await self.layout.message(key.get("message_id")).get())

    async def advance_message(
        self,
        message_id: str,
        status: DeliveryStatus,
        provider_message_id: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> StatusApplied:
        layout, ttl = self.layout, self.parked_status_ttl

        async def write(transaction: Transaction) -> StatusApplied:
            [snapshot] = await transaction.get(layout.message(message_id))
            start = read_message(snapshot)
            return await advance(
                transaction,
                layout,
                start,
                status,
                provider_message_id,
                error_code,
                error_message,
                ttl,
            )

        applied = await self._transact(("message", message_id), write)
        return self._logged(applied, applied.changed)

    async def apply_status(self, channel: str, update: StatusUpdate) -> StatusApplied:
        layout, ttl = self.layout, self.parked_status_ttl
        key = ("provider", channel, update.provider_message_id)
        applied = await self._transact(key, lambda t: apply_status(t, layout, channel, update, ttl))
        return self._logged(applied, applied.changed)

    async def apply_watermark(
        self, channel: str, recipient: str, status: DeliveryStatus, up_to: datetime
    ) -> list[Message]:
        layout, ttl, limit = self.layout, self.parked_status_ttl, self.watermark_batch
        status = DeliveryStatus(status)
        moved: list[Message] = []
        if not statuses_behind(status):
            return moved
        async for conversation_id in watermarks.conversations_at(layout, channel, recipient, limit):
            after = None
            while True:
                batch = await watermarks.behind(
                    layout, conversation_id, status, up_to, limit, after
                )
                if not batch:
                    break
                move = functools.partial(
                    watermarks.move_batch,
                    layout=layout,
                    conversation_id=conversation_id,
                    message_ids=[snapshot.id for snapshot in batch],
                    status=status,
                    ttl=ttl,
                )
                changed = await self._transact(("watermark", conversation_id), move)
                moved += self._logged(changed, bool(changed))
                if len(batch) < limit:
                    break
                after = batch[-1]
        return sorted(moved, key=lambda message: (message.created_at, message.id))

    # Reads, changes and lists: firestore_contacts, firestore_conversations

    async def get_message(self, message_id: str) -> Message:
        return read_message(await self.layout.message(message_id).get())

    async def list_messages(self, conversation_id: str, cursor: str | None, limit: int) -> Page:
        return await conversations.list_messages(self.layout, conversation_id, cursor, limit)

    async def get_contact(self, contact_id: str) -> Contact:
        return read_contact(await self.layout.contact(contact_id).get())

    async def update_contact(
        self,
        contact_id: str,
        display_name: str | None = UNSET,
        tags: tuple[str, ...] = UNSET,
        attributes: dict[str, Any] = UNSET,
    ) -> Contact:
        layout = self.layout
        contact = await self._transact(
            ("contact", contact_id),
            lambda t: contacts.update_contact(
                t, layout, contact_id, display_name, tags, attributes
            ),
        )
        return self._logged(contact)

    async def list_contacts(self, search: str | None, cursor: str | None, limit: int) -> Page:
        return await contacts.list_contacts(
            self.layout, search, cursor, limit, self.search_scan_limit
        )

    async def get_conversation(self, conversation_id: str) -> Conversation:
        return read_conversation(await self.layout.conversation(conversation_id).get())

    async def update_conversation(
        self,
        conversation_id: str,
        status: ConversationStatus = UNSET,
        assignee: str | None = UNSET,
        unread_count: int = UNSET,
        expected_assignee: str | None = UNSET,
        audit: AuditEntry | None = None,
    ) -> Conversation:
        layout = self.layout
        assert self._access is not None
        audit_document = None if audit is None else self._access.audit_document(audit)
        try:
            conversation = await self._transact(
                ("conversation", conversation_id),
                lambda t: conversations.update_conversation(
                    t,
                    layout,
                    conversation_id,
                    status,
                    assignee,
                    unread_count,
                    expected_assignee,
                    audit_document,
                ),
            )
        except AlreadyExists:  # the one document it creates under a caller's id
            assert audit is not None
            raise Conflict(f"audit entry {audit.id!r} exists", id=audit.id) from None
        return self._logged(conversation)

    async def list_conversations(
        self,
        status: ConversationStatus | None,
        channel: str | None,
        assignee: str | None,
        cursor: str | None,
        limit: int,
        assigned_to_or_unassigned: str | None = None,
    ) -> Page:
        return await conversations.list_conversations(
            self.layout, status, channel, assignee, cursor, limit, assigned_to_or_unassigned
        )

    # The event log: firestore_events

    async def events_after(self, cursor: str | None, limit: int) -> list[Event]:
        return await events.events_after(self.layout, cursor, limit, self.event_commit_window)

    async def latest_event_cursor(self) -> str | None:
        return await events.latest_event_cursor(self.layout, self.event_commit_window)

    async def prune_events(self, before: datetime) -> int:
        return await events.prune_events(self.layout, before, self.event_commit_window)

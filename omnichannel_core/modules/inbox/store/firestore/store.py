"""The inbox on the Firestore database: one transaction per atomic write.

Layout. Every collection name takes the database's prefix (empty by default). Ids of records
are the project's own (`omnichannel_core.ids`); ids of unique keys are SHA-256 hex of the
key's parts (`firestore_documents.document_key`), so a key is found, and claimed, by id.

``contacts/{contact_id}``
    ``display_name``, ``identities`` (``[{channel, address}]``, by channel and address),
    ``tags``, ``opted_out``, ``attributes_json`` (free-form JSON as text: never indexed,
    stored exactly), ``emails``, ``phones``, ``company``, ``locale``, ``timezone``,
    ``avatar`` (absent before the CRM: read as empty), ``reach`` (`store.profiles`: what
    ``find_contacts`` matches, ``array_contains_any``), ``search_words`` and
    ``search_prefixes`` (`firestore_search`), ``created_at``, ``updated_at``. Listed newest
    first by (``created_at``, id); searched with ``array_contains`` on ``search_prefixes``;
    scanned by id. A contact merged away is a tombstone holding only ``merged_into`` (the
    survivor) and ``updated_at``: no list, search or lookup meets it, and every read by id
    follows it (`firestore_contact_book` has how a merge runs).
``identities/{key(channel, address)}``
    ``channel``, ``address``, ``contact_id``, ``conversation_id``: finds the sender of an
    inbound message by id, with its conversation on that channel, in the ingest's first
    read; creating it claims the address, so two first messages of a new sender make one
    contact. The conversation is the contact's most recently created on the channel (a
    thread each, or an agent's new one), the same for each of its identities there: the
    transaction that makes a conversation names it in every one of them, an identity added
    takes the one its siblings name (or, with none, the newest found by a query), and a
    merge points each at the newest of either contact's; None for a contact met only as a
    participant of another's thread.
``conversations/{conversation_id}``
    ``contact_id``, ``channel``, ``address``, ``status``, ``assignee``, ``unread_count``,
    ``last_activity_at``, ``created_at``, ``updated_at``, ``last_inbound_at`` (absent from
    documents written before it existed: read as None until the next inbound message),
    ``participants`` (the thread's other addresses; absent before threads: none).
    Listed by (``last_activity_at``, id), most recent first, with equality filters on
    ``status``, ``channel``, ``assignee`` (an agent's view: ``assignee == me OR assignee ==
    null``); found by ``channel`` and ``address`` for a watermark.
``messages/{message_id}``
    the fields of `omnichannel_core.models.Message`, ``media_json`` and ``metadata_json`` as
    text (free-form, never indexed). Listed by ``conversation_id``, oldest first, by
    (``created_at``, id); a watermark reads a conversation's by ``status`` (``in``) and
    ``created_at`` (`firestore_watermarks`).
``message_keys/{key(...)}``
    ``message_id``, ``conversation_id``, ``contact_id`` (a merge moves it: a duplicate's
    answer follows a tombstone meanwhile): the unique keys of messages, one
    document each, created in the transaction that stores what they guard. ``("provider",
    channel, direction, provider id)`` dedupes inbound messages and records an outbound
    message's provider id (so a clash is seen, and a status update finds its message, by
    id), and finds the conversation a threaded message answers (`store.threads`: each
    ref's two keys, outbound and inbound, read by id); ``("idempotency", key)`` makes
    outbound creates idempotent.
``outbox/{message_id}``
    a message not yet settled (`omnichannel_core.modules.inbox.store.outbox`): ``channel``,
    ``conversation_id``, ``state``, ``priority``, ``due_at``, ``first_due_at``, ``attempts``,
    ``lease_holder``, ``lease_until``, ``doubt_until``, ``resend``, ``last_error``,
    ``attempted`` (cleared by a claim, set before the send; missing reads as True); created
    with its message, deleted in the transaction that settles it. Due entries are found by
    (``state``, ``priority``, ``due_at``).
``send_paces/{key("pace", key)}``
    a shared send pace (`omnichannel_core.modules.inbox.pace`): ``next_free``,
    ``fraction``, ``slowed_at``. Runners reserve a second's worth of slots per write.
``parked_statuses/{key(channel, provider id, status)}``
    a status update that came before its message's provider id was recorded: ``channel``,
    ``provider_message_id``, ``status``, ``error_code``, ``error_message``, ``parked_at``,
    and ``expire_at`` for a TTL policy. One per status, so recording an id reads them all
    by id (no query) in the round trip that reads the key.

The event log (``events``, ``meta/events``) and the audit log (``audit_log``) are the
core's (`omnichannel_core.store.firestore`); access records (users, sessions, API keys,
failed logins) the access module's; all in the same database and prefix.

Indexes. The sorted, filtered lists need the composite indexes in ``firestore.indexes.json``
at the repository root (deploy with ``firebase deploy --only firestore:indexes``; with a
prefix, rename their collection groups): ``contacts`` (``search_prefixes`` contains,
``created_at`` desc; ``reach`` contains, ``created_at``), a contact's newest conversation
on a channel (``contact_id``, ``channel``, ``created_at`` desc), ``messages``
(``conversation_id``, ``created_at``; and ``conversation_id``, ``status``, ``created_at``
for watermarks), ``conversations``, one per combination of the ``status``, ``channel``
and ``assignee`` filters before ``last_activity_at`` desc, and ``outbox`` (``state``,
``priority``, ``due_at``; ``state``, ``due_at``; ``channel``, ``state``, ``priority``,
``due_at``; ``state``, ``lease_until``).
Every other query uses automatic single-field indexes (the conversations at an address:
equality on ``channel`` and ``address``, merged). Free-form and large fields are exempt
from indexing (fewer index writes), and ``expire_at`` of parked statuses carries a TTL
policy. The emulator needs no index, so the tests cannot catch a missing one: a new query
means a new entry there.

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
ingest, with a thread       as above, the first read      as above; a new conversation
                            adding 2 keys per ref, the    moves the identity to it
                            second the ref's conversation
resolve_recipient           1 (new) or 2 (known)          3 (new), 0-2 (known), 2-3 (a new
                                                          conversation asked: it, identity)
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
add_contact_attributes      1                             the contact, event (nothing when
                                                          it has every attribute)
log_typing                  1: conversation, before the   event
                            commit (no lock)
find_conversation           2, no transaction: identity,  nothing
                            then its conversation
==========================  ============================  ==================================

The CRM's writes of contacts (made, changed, identities added or removed, merged) and its
reads (lookups, scans, activity) are in `firestore_contact_book`, with what a merge costs.

Writers of one key in one process take turns (``FirestoreDatabase.transact``) instead of
aborting each other; across processes Firestore's transactions decide.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.api_core.exceptions import AlreadyExists

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
)
from omnichannel_core.module.firestore import FirestoreDatabase, Transaction
from omnichannel_core.modules.inbox.store import (
    PARKED_STATUS_TTL,
    WATERMARK_BATCH,
    Ingested,
    StatusApplied,
    statuses_behind,
)
from omnichannel_core.modules.inbox.store.firestore import contacts, conversations, watermarks
from omnichannel_core.modules.inbox.store.firestore.contact_book import FirestoreContacts
from omnichannel_core.modules.inbox.store.firestore.documents import (
    Layout,
    read_conversation,
    read_message,
)
from omnichannel_core.modules.inbox.store.firestore.ingest import ingest, resolve_recipient
from omnichannel_core.modules.inbox.store.firestore.media import replace_media
from omnichannel_core.modules.inbox.store.firestore.outbound import (
    advance,
    apply_status,
    create_outbound,
)
from omnichannel_core.modules.inbox.store.firestore.outbox import FirestoreOutbox
from omnichannel_core.modules.inbox.store.firestore.search import SCAN_LIMIT
from omnichannel_core.modules.inbox.store.outbox import REPLY


class FirestoreInboxStore(FirestoreContacts, FirestoreOutbox):
    """:class:`omnichannel_core.modules.inbox.store.InboxStore` on the Firestore database."""

    def __init__(self, database: FirestoreDatabase) -> None:
        self.database = database
        self.parked_status_ttl = PARKED_STATUS_TTL
        self.watermark_batch = WATERMARK_BATCH
        self.search_scan_limit = SCAN_LIMIT
        self._layout: Layout | None = None

    @property
    def layout(self) -> Layout:
        """The collections, made on first use (the database connects when the server
        starts)."""
        if self._layout is None or self._layout.client is not self.database.client:
            self._layout = Layout(self.database)
        return self._layout

    async def _transact(self, key: tuple[str, ...], body: Any) -> Any:
        """Run ``body`` in a transaction, after this process's other writers of ``key``."""
        return await self.database.transact(key, body)

    # Inbound and outbound: `ingest`, `outbound`

    async def ingest_inbound(self, channel: str, inbound: InboundMessage) -> Ingested:
        layout = self.layout
        return await self._transact(
            ("identity", channel, inbound.sender), lambda t: ingest(t, layout, channel, inbound)
        )

    async def resolve_recipient(
        self,
        channel: str,
        address: str,
        display_name: str | None = None,
        reply_to: str | None = None,
        new_conversation: bool = False,
    ) -> tuple[Contact, Conversation]:
        layout = self.layout
        return await self._transact(
            ("identity", channel, address),
            lambda t: resolve_recipient(
                t, layout, channel, address, display_name, reply_to, new_conversation
            ),
        )

    async def find_conversation(self, channel: str, address: str) -> Conversation | None:
        return await conversations.find_conversation(self.layout, channel, address)

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
        layout = self.layout
        return await self._transact(
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
                send_at,
                priority,
                author,
            ),
        )

    async def find_by_provider_id(
        self, channel: str, direction: Direction, provider_message_id: str
    ) -> Message | None:
        key = self.layout.provider_key(channel, direction, provider_message_id)
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
        settle: bool = False,
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
                settle=settle,
            )

        return await self._transact(("message", message_id), write)

    async def apply_status(self, channel: str, update: StatusUpdate) -> StatusApplied:
        layout, ttl = self.layout, self.parked_status_ttl
        key = ("provider", channel, update.provider_message_id)
        return await self._transact(key, lambda t: apply_status(t, layout, channel, update, ttl))

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
                moved += await self._transact(("watermark", conversation_id), move)
                if len(batch) < limit:
                    break
                after = batch[-1]
        return sorted(moved, key=lambda message: (message.created_at, message.id))

    # Reads, changes and lists: `contacts`, `conversations`

    async def get_message(self, message_id: str) -> Message:
        return read_message(await self.layout.message(message_id).get())

    async def list_messages(self, conversation_id: str, cursor: str | None, limit: int) -> Page:
        return await conversations.list_messages(self.layout, conversation_id, cursor, limit)

    async def replace_media(
        self, message_id: str, index: int, provider_url: str, media: Media
    ) -> Message | None:
        layout = self.layout
        return await self._transact(
            ("message", message_id),
            lambda t: replace_media(t, layout, message_id, index, provider_url, media),
        )

    async def add_contact_attributes(
        self, contact_id: str, attributes: Mapping[str, Any]
    ) -> Contact:
        layout, wanted = self.layout, dict(attributes)
        return await self._transact(
            ("contact", contact_id),
            lambda t: contacts.add_contact_attributes(t, layout, contact_id, wanted),
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
        by: Author | None = None,
    ) -> Conversation:
        layout = self.layout
        try:
            return await self._transact(
                ("conversation", conversation_id),
                lambda t: conversations.update_conversation(
                    t,
                    layout,
                    conversation_id,
                    status,
                    assignee,
                    unread_count,
                    expected_assignee,
                    audit,
                    by,
                ),
            )
        except AlreadyExists:  # the one document it creates under a caller's id
            assert audit is not None
            raise Conflict(f"audit entry {audit.id!r} exists", id=audit.id) from None

    async def conversation_changes(self, conversation_id: str) -> tuple[ConversationChange, ...]:
        return await conversations.conversation_changes(self.layout, conversation_id)

    async def list_changes(self, conversation_id: str, cursor: str | None, limit: int) -> Page:
        return await conversations.list_changes(self.layout, conversation_id, cursor, limit)

    async def scan_history(
        self, cursor: str | None, limit: int
    ) -> tuple[list[ConversationRecord], str | None]:
        return await conversations.scan_history(self.layout, cursor, limit)

    async def log_typing(
        self, conversation_id: str, by: str, user_id: str | None, until: datetime
    ) -> None:
        layout, conversation = self.layout, await self.get_conversation(conversation_id)
        await self._transact(
            ("typing", conversation_id),
            lambda t: conversations.log_typing(t, layout, conversation, by, user_id, until),
        )

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

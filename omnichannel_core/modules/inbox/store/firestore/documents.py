"""Where each of the inbox's records lives in Firestore, and the models made of its documents.

The layout itself (collections, ids, fields, and why) is described in
`omnichannel_core.modules.inbox.store.firestore.store`. Models are written whole from the
attrs model the write computed, so what a write returns is exactly what it stored, with no
read after it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from google.cloud.firestore_v1 import (
    AsyncClient,
    AsyncCollectionReference,
    AsyncDocumentReference,
    DocumentSnapshot,
)

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
)
from omnichannel_core.module.firestore import (
    FirestoreDatabase,
    Transaction,
    document,
    document_key,
    exact_time,
    existing,
    json_text,
    optional_time,
)
from omnichannel_core.modules.inbox.store.firestore.search import search_fields
from omnichannel_core.modules.inbox.store.history import author_fields, author_from
from omnichannel_core.modules.inbox.store.profiles import reach, search_addresses


class Layout:
    """References to the inbox's documents on the shared database (whose prefix every
    collection name takes)."""

    def __init__(self, database: FirestoreDatabase) -> None:
        self.database = database
        self.client: AsyncClient = database.client
        self.contacts = database.collection("contacts")
        self.identities = database.collection("identities")
        self.conversations = database.collection("conversations")
        self.messages = database.collection("messages")
        self.message_keys = database.collection("message_keys")
        self.parked_statuses = database.collection("parked_statuses")
        self.outbox_entries = database.collection("outbox")
        self.send_paces = database.collection("send_paces")

    def collection(self, name: str) -> AsyncCollectionReference:
        return self.database.collection(name)

    # A record's document, by an id that may come from a request: NotFound when no
    # document can have it (`firestore_documents.document`), as for any unknown id.

    def contact(self, contact_id: str) -> AsyncDocumentReference:
        return document(self.contacts, contact_id, "contact")

    def conversation(self, conversation_id: str) -> AsyncDocumentReference:
        return document(self.conversations, conversation_id, "conversation")

    def message(self, message_id: str) -> AsyncDocumentReference:
        return document(self.messages, message_id, "message")

    def changes(self, conversation_id: str) -> AsyncCollectionReference:
        """The conversation's history (`store.history`): a change of its status or
        assignee per document."""
        return self.conversation(conversation_id).collection("changes")

    def change(self, conversation_id: str, change_id: str) -> AsyncDocumentReference:
        return self.changes(conversation_id).document(change_id)

    def identity(self, channel: str, address: str) -> AsyncDocumentReference:
        return self.identities.document(document_key(channel, address))

    def provider_key(
        self, channel: str, direction: Direction | str, provider_message_id: str
    ) -> AsyncDocumentReference:
        """The key document of a provider id: one message per (channel, direction, id)."""
        return self.message_keys.document(
            document_key("provider", channel, str(direction), provider_message_id)
        )

    def outbox(self, message_id: str) -> AsyncDocumentReference:
        """A message's outbox entry (`omnichannel_core.modules.inbox.store.outbox`)."""
        return document(self.outbox_entries, message_id, "message")

    def send_pace(self, key: str) -> AsyncDocumentReference:
        return self.send_paces.document(document_key("pace", key))

    def idempotency_key(self, idempotency_key: str) -> AsyncDocumentReference:
        return self.message_keys.document(document_key("idempotency", idempotency_key))

    def parked(
        self, channel: str, provider_message_id: str, status: DeliveryStatus | str
    ) -> AsyncDocumentReference:
        return self.parked_statuses.document(
            document_key(channel, provider_message_id, str(status))
        )


def contact_fields(contact: Contact) -> dict[str, Any]:
    return {
        "display_name": contact.display_name,
        "identities": [
            {"channel": identity.channel, "address": identity.address}
            for identity in contact.identities
        ],
        "tags": list(contact.tags),
        "attributes_json": json_text(contact.attributes),
        "opted_out": list(contact.opted_out),
        "created_at": contact.created_at,
        "updated_at": contact.updated_at,
        "emails": list(contact.emails),
        "phones": list(contact.phones),
        "company": contact.company,
        "locale": contact.locale,
        "timezone": contact.timezone,
        "avatar": contact.avatar,
        "reach": reach(contact),
        **search_fields(contact.display_name, search_addresses(contact)),
    }


def contact_from(contact_id: str, data: dict[str, Any]) -> Contact:
    if data.get("erased_at") is not None:  # a duplicate webhook's answer: nothing is left
        at = exact_time(data["erased_at"])
        return Contact(
            id=contact_id, display_name=None, identities=(), created_at=at, updated_at=at
        )
    return Contact(
        id=contact_id,
        display_name=data["display_name"],
        identities=tuple(Identity(i["channel"], i["address"]) for i in data["identities"]),
        tags=tuple(data["tags"]),
        attributes=json.loads(data["attributes_json"]),
        opted_out=tuple(data["opted_out"]),
        created_at=exact_time(data["created_at"]),
        updated_at=exact_time(data["updated_at"]),
        # absent from contacts written before the CRM's profile fields
        emails=tuple(data.get("emails", ())),
        phones=tuple(data.get("phones", ())),
        company=data.get("company"),
        locale=data.get("locale"),
        timezone=data.get("timezone"),
        avatar=data.get("avatar"),
    )


def tombstone_fields(survivor_id: str, at: datetime) -> dict[str, Any]:
    """What is left of a contact merged into ``survivor_id``: a pointer. With no
    ``created_at``, ``search_prefixes`` nor ``reach``, no list, search or lookup of contacts
    (each ordered by, or filtered on, one of them) ever reads it."""
    return {"merged_into": survivor_id, "updated_at": at}


def erased_fields(at: datetime, media_ids: list[str], survivor_id: str | None) -> dict[str, Any]:
    """What is left of an erased contact (`store.erasure`): when it was erased, the media
    its erasure has still to forget, and, for one merged away, its pointer. Like a merge's
    tombstone, no list, search or lookup reads it."""
    fields: dict[str, Any] = {"erased_at": at, "updated_at": at, "erased_media": media_ids}
    if survivor_id is not None:
        fields["merged_into"] = survivor_id
    return fields


def is_erased(snapshot: DocumentSnapshot) -> bool:
    """Whether a contact's document is an erased contact's tombstone."""
    return snapshot.exists and (snapshot.to_dict() or {}).get("erased_at") is not None


def merged_into(snapshot: DocumentSnapshot) -> str | None:
    """The survivor a contact's document points to, None when it is a live contact (or
    missing)."""
    if not snapshot.exists:
        return None
    survivor = (snapshot.to_dict() or {}).get("merged_into")
    return survivor if isinstance(survivor, str) else None


# Conversations


def conversation_fields(conversation: Conversation) -> dict[str, Any]:
    return {
        "contact_id": conversation.contact_id,
        "channel": conversation.channel,
        "address": conversation.address,
        "status": str(conversation.status),
        "assignee": conversation.assignee,
        "unread_count": conversation.unread_count,
        "last_activity_at": conversation.last_activity_at,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "last_inbound_at": conversation.last_inbound_at,
        "participants": list(conversation.participants),
    }


def conversation_from(conversation_id: str, data: dict[str, Any]) -> Conversation:
    return Conversation(
        id=conversation_id,
        contact_id=data["contact_id"],
        channel=data["channel"],
        address=data["address"],
        status=ConversationStatus(data["status"]),
        assignee=data["assignee"],
        unread_count=data["unread_count"],
        last_activity_at=exact_time(data["last_activity_at"]),
        created_at=exact_time(data["created_at"]),
        updated_at=exact_time(data["updated_at"]),
        # absent from conversations written before the field existed
        last_inbound_at=optional_time(data.get("last_inbound_at")),
        participants=tuple(data.get("participants", ())),  # absent before threads
    )


# Messages


def message_fields(message: Message) -> dict[str, Any]:
    return {
        "conversation_id": message.conversation_id,
        "contact_id": message.contact_id,
        "channel": message.channel,
        "direction": str(message.direction),
        "status": str(message.status),
        "text": message.text,
        "media_json": json_text(message.media),
        "provider_message_id": message.provider_message_id,
        "idempotency_key": message.idempotency_key,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "metadata_json": json_text(message.metadata),
        "created_at": message.created_at,
        "updated_at": message.updated_at,
        "in_doubt": message.in_doubt,
        "send_at": message.send_at,
        "attempts": message.attempts,
        "error_details_json": json_text(message.error_details),
        "author": author_fields(message.author),
    }


def message_from(message_id: str, data: dict[str, Any]) -> Message:
    return Message(
        id=message_id,
        conversation_id=data["conversation_id"],
        contact_id=data["contact_id"],
        channel=data["channel"],
        direction=Direction(data["direction"]),
        status=DeliveryStatus(data["status"]),
        text=data["text"],
        media=tuple(Media(**item) for item in json.loads(data["media_json"])),
        provider_message_id=data["provider_message_id"],
        idempotency_key=data["idempotency_key"],
        error_code=data["error_code"],
        error_message=data["error_message"],
        metadata=json.loads(data["metadata_json"]),
        created_at=exact_time(data["created_at"]),
        updated_at=exact_time(data["updated_at"]),
        in_doubt=bool(data.get("in_doubt", False)),  # absent from messages before the outbox
        send_at=optional_time(data.get("send_at")),
        attempts=int(data.get("attempts", 0)),
        error_details=json.loads(data.get("error_details_json", "{}")),
        author=author_from(data.get("author")),  # absent from messages before issue 18
    )


def message_key_fields(message: Message) -> dict[str, Any]:
    """A key document: which message holds the key, and where it lives (so a duplicate's
    answer, or a status update, reads the message and its conversation in one round trip)."""
    return {
        "message_id": message.id,
        "conversation_id": message.conversation_id,
        "contact_id": message.contact_id,
    }


def read_contact(snapshot: DocumentSnapshot) -> Contact:
    return contact_from(snapshot.id, existing(snapshot, "contact"))


def read_conversation(snapshot: DocumentSnapshot) -> Conversation:
    return conversation_from(snapshot.id, existing(snapshot, "conversation"))


def read_message(snapshot: DocumentSnapshot) -> Message:
    return message_from(snapshot.id, existing(snapshot, "message"))


async def live_contact(layout: Layout, contact_id: str) -> DocumentSnapshot:
    """The contact's document, or the survivor's for a contact merged away (outside a
    transaction); NotFound for an unknown id."""
    snapshot = await layout.contact(contact_id).get()
    while (survivor := merged_into(snapshot)) is not None:
        snapshot = await layout.contact(survivor).get()
    existing(snapshot, "contact")
    if is_erased(snapshot):
        raise NotFound(f"contact {contact_id!r} not found (erased)", id=contact_id)
    return snapshot


async def live_contact_in(
    transaction: Transaction, layout: Layout, snapshot: DocumentSnapshot, erased: bool = False
) -> DocumentSnapshot:
    """``snapshot`` of a contact, or, read in ``transaction``, the survivor's when it is a
    tombstone; NotFound when missing, or erased (unless ``erased``: a duplicate's answer)."""
    while (survivor := merged_into(snapshot)) is not None:
        [snapshot] = await transaction.get(layout.contact(survivor))
    existing(snapshot, "contact")
    if is_erased(snapshot) and not erased:
        raise NotFound(f"contact {snapshot.id!r} not found (erased)", id=snapshot.id)
    return snapshot

"""Storing one inbound message in Firestore, in one transaction and as few round trips as it
allows.

A message from a known sender costs three round trips: one read of the sender's identity
and of the message's dedupe key (whose first read also begins the transaction), one read of
the contact and conversation the identity names, and the commit, which creates the key, the
message and the ``message.created`` event and updates the conversation. A new sender costs
two: the same first read finds nothing, and the commit creates the identity, contact and
conversation too. A duplicate (the key exists) reads the stored message, contact and
conversation and writes nothing.

The dedupe is the key document: it is read in the transaction and created by its commit, so
of two ingests of one provider id, one commits and the other is aborted, runs again, and
finds the key. An identity is claimed the same way, so two first messages of one new sender
make one contact.
"""

from __future__ import annotations

import attrs

from omnichannel_core.channel import InboundMessage
from omnichannel_core.module import (
    Consent,
    Contact,
    Conversation,
    ConversationStatus,
    DeliveryStatus,
    Direction,
    Identity,
    Message,
    format_timestamp,
    new_id,
    utcnow,
)
from omnichannel_core.module.firestore import Transaction, log_event
from omnichannel_core.modules.inbox import events
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.store import Ingested, wrote_at
from omnichannel_core.modules.inbox.store.firestore.documents import (
    Layout,
    contact_fields,
    conversation_fields,
    message_fields,
    message_key_fields,
    read_contact,
    read_conversation,
    read_message,
)


def _identity_fields(identity: Identity, contact_id: str, conversation_id: str) -> dict[str, str]:
    """An identity document: the contact at an address, and that contact's conversation on
    the channel (a contact gains identities only when it is made, so the two go together)."""
    return {
        "channel": identity.channel,
        "address": identity.address,
        "contact_id": contact_id,
        "conversation_id": conversation_id,
    }


def with_consent(contact: Contact, channel: str, consent: Consent | None) -> Contact:
    """The contact after an opt-out (``channel`` added to ``opted_out``) or an opt-in
    (removed); the same object when nothing changes."""
    if consent is Consent.OPT_OUT and channel not in contact.opted_out:
        return attrs.evolve(contact, opted_out=tuple(sorted([*contact.opted_out, channel])))
    if consent is Consent.OPT_IN and channel in contact.opted_out:
        kept = tuple(name for name in contact.opted_out if name != channel)
        return attrs.evolve(contact, opted_out=kept)
    return contact


def _new_message(
    channel: str, inbound: InboundMessage, contact_id: str, conversation_id: str
) -> Message:
    metadata = dict(inbound.metadata)
    if inbound.sent_at is not None:
        metadata["sent_at"] = format_timestamp(inbound.sent_at)
    now = utcnow()
    return Message(
        id=new_id("msg"),
        conversation_id=conversation_id,
        contact_id=contact_id,
        channel=channel,
        direction=Direction.INBOUND,
        status=DeliveryStatus.RECEIVED,
        text=inbound.text,
        media=inbound.media,
        provider_message_id=inbound.provider_message_id,
        metadata=metadata,
        created_at=now,
        updated_at=now,
    )


async def ingest(
    transaction: Transaction, layout: Layout, channel: str, inbound: InboundMessage
) -> Ingested:
    """Store ``inbound`` (deduped), creating or updating its contact and conversation."""
    identity_ref = layout.identity(channel, inbound.sender)
    key_ref = layout.provider_key(channel, Direction.INBOUND, inbound.provider_message_id)
    identity, key = await transaction.get(identity_ref, key_ref)
    if key.exists:  # a duplicate: nothing is written
        ids = key.to_dict() or {}
        stored = await transaction.get(
            layout.message(ids["message_id"]),
            layout.contact(ids["contact_id"]),
            layout.conversation(ids["conversation_id"]),
        )
        return Ingested.of(
            read_message(stored[0]),
            read_contact(stored[1]),
            read_conversation(stored[2]),
            created=False,
        )
    address = inbound.reply_to or inbound.sender
    if identity.exists:
        ids = identity.to_dict() or {}
        contact_ref = layout.contact(ids["contact_id"])
        conversation_ref = layout.conversation(ids["conversation_id"])
        contact_snapshot, conversation_snapshot = await transaction.get(
            contact_ref, conversation_ref
        )
        known = read_contact(contact_snapshot)
        contact = known
        if inbound.sender_name and known.display_name is None:
            contact = attrs.evolve(known, display_name=inbound.sender_name)
        contact = with_consent(contact, channel, inbound.consent)
        current = read_conversation(conversation_snapshot)
        message = _new_message(channel, inbound, contact.id, current.id)
        reopened = current.status is ConversationStatus.RESOLVED
        wrote = wrote_at(inbound, message.created_at)
        if current.last_inbound_at is not None:
            wrote = max(wrote, current.last_inbound_at)
        conversation = attrs.evolve(
            current,
            address=address,
            unread_count=current.unread_count + 1,
            last_activity_at=message.created_at,
            updated_at=message.created_at,
            status=ConversationStatus.OPEN if reopened else current.status,
            last_inbound_at=wrote,
        )
        if contact is not known:
            contact = attrs.evolve(contact, updated_at=message.created_at)
            transaction.set(contact_ref, contact_fields(contact))
        transaction.update(
            conversation_ref,
            {
                "address": conversation.address,
                "unread_count": conversation.unread_count,
                "last_activity_at": conversation.last_activity_at,
                "updated_at": conversation.updated_at,
                "status": str(conversation.status),
                "last_inbound_at": conversation.last_inbound_at,
            },
        )
        consented = contact.opted_out != known.opted_out
    else:
        contact_id, conversation_id = new_id("ct"), new_id("cv")
        message = _new_message(channel, inbound, contact_id, conversation_id)
        now = message.created_at
        plain = Contact(
            id=contact_id,
            display_name=inbound.sender_name,
            identities=(Identity(channel, inbound.sender),),
            created_at=now,
            updated_at=now,
        )
        contact = with_consent(plain, channel, inbound.consent)
        conversation = Conversation(
            id=conversation_id,
            contact_id=contact_id,
            channel=channel,
            address=address,
            status=ConversationStatus.OPEN,
            unread_count=1,
            last_activity_at=now,
            created_at=now,
            updated_at=now,
            last_inbound_at=wrote_at(inbound, now),
        )
        transaction.create(
            identity_ref,
            _identity_fields(contact.identities[0], contact_id, conversation_id),
        )
        transaction.create(layout.contact(contact_id), contact_fields(contact))
        transaction.create(layout.conversation(conversation_id), conversation_fields(conversation))
        consented = contact is not plain
    transaction.create(key_ref, message_key_fields(message))
    transaction.create(layout.message(message.id), message_fields(message))
    if consented:
        log_event(
            transaction,
            layout.database,
            InboxEvent.CONTACT_UPDATED,
            contact.id,
            data=events.contact_changes(["opted_out"]),
        )
    log_event(
        transaction,
        layout.database,
        InboxEvent.MESSAGE_CREATED,
        message.id,
        conversation.id,
        (conversation.assignee,),
        events.message_created(channel, Direction.INBOUND, contact.id),
    )
    return Ingested.of(message, contact, conversation, created=True)


async def resolve_recipient(
    transaction: Transaction,
    layout: Layout,
    channel: str,
    address: str,
    display_name: str | None,
    reply_to: str | None,
) -> tuple[Contact, Conversation]:
    """The contact at ``address`` on ``channel`` and its conversation there, made if new; a
    name given when the contact has none fills it in; the conversation answers to
    ``reply_to or address``."""
    answer_to = reply_to or address
    identity_ref = layout.identity(channel, address)
    [identity] = await transaction.get(identity_ref)
    now = utcnow()
    if not identity.exists:
        contact = Contact(
            id=new_id("ct"),
            display_name=display_name,
            identities=(Identity(channel, address),),
            created_at=now,
            updated_at=now,
        )
        conversation = Conversation(
            id=new_id("cv"),
            contact_id=contact.id,
            channel=channel,
            address=answer_to,
            last_activity_at=now,
            created_at=now,
            updated_at=now,
        )
        fields = _identity_fields(contact.identities[0], contact.id, conversation.id)
        transaction.create(identity_ref, fields)
        transaction.create(layout.contact(contact.id), contact_fields(contact))
        transaction.create(layout.conversation(conversation.id), conversation_fields(conversation))
        return contact, conversation
    ids = identity.to_dict() or {}
    contact_ref = layout.contact(ids["contact_id"])
    conversation_ref = layout.conversation(ids["conversation_id"])
    contact_snapshot, conversation_snapshot = await transaction.get(contact_ref, conversation_ref)
    contact = read_contact(contact_snapshot)
    if display_name and contact.display_name is None:
        contact = attrs.evolve(contact, display_name=display_name, updated_at=now)
        transaction.set(contact_ref, contact_fields(contact))
    conversation = read_conversation(conversation_snapshot)
    if conversation.address != answer_to:
        conversation = attrs.evolve(conversation, address=answer_to)
        transaction.update(conversation_ref, {"address": answer_to})
    return contact, conversation

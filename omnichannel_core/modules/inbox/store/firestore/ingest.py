"""Storing one inbound message in Firestore, in one transaction and as few round trips as it
allows.

A message from a known sender costs three round trips: one read of the sender's identity
and of the message's dedupe key (whose first read also begins the transaction), one read of
the contact and conversation the identity names, and the commit, which creates the key, the
message and the ``message.created`` event (and ``conversation.updated`` when the message
reopens a resolved conversation) and updates the conversation. A new sender costs
two: the same first read finds nothing, and the commit creates the identity, contact and
conversation too. A duplicate (the key exists) reads the stored message, contact and
conversation and writes nothing. A message that names a thread reads the provider keys of
its refs (both directions) in the first read, and the conversation of the first one known,
instead of the identity's, in the second (`omnichannel_core.modules.inbox.store.threads`).

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
    new_id,
    utcnow,
)
from omnichannel_core.module.firestore import Transaction, log_event
from omnichannel_core.modules.inbox import events
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.store import Ingested, stored_media, wrote_at
from omnichannel_core.modules.inbox.store.firestore.conversations import queue_change
from omnichannel_core.modules.inbox.store.firestore.documents import (
    Layout,
    contact_fields,
    conversation_fields,
    live_contact_in,
    message_fields,
    message_key_fields,
    read_contact,
    read_conversation,
    read_message,
)
from omnichannel_core.modules.inbox.store.history import reopened
from omnichannel_core.modules.inbox.store.profiles import sorted_identities
from omnichannel_core.modules.inbox.store.threads import (
    REF_DIRECTIONS,
    belongs,
    first_known,
    inbound_metadata,
    thread_message_ids,
    thread_refs,
    with_participants,
)


def identity_fields(
    identity: Identity, contact_id: str, conversation_id: str | None
) -> dict[str, str | None]:
    """An identity document: the contact at an address, and that contact's most recently
    created conversation on the channel, None while it has none (a participant of another
    contact's thread); every identity of a contact on one channel names the same one
    (:func:`point_identities`)."""
    return {
        "channel": identity.channel,
        "address": identity.address,
        "contact_id": contact_id,
        "conversation_id": conversation_id,
    }


def point_identities(
    transaction: Transaction,
    layout: Layout,
    contact: Contact,
    channel: str,
    conversation_id: str | None,
    through: Identity,
) -> None:
    """Make ``conversation_id`` (the contact's newest on ``channel``) the one each of the
    contact's identities on ``channel`` names, ``through`` (the identity the write came
    by) included: a contact's messages on a channel join its most recently created
    conversation there, through whichever of its identities they come
    (`InboxStore.add_identity`)."""
    for identity in sorted_identities([through, *contact.identities]):
        if identity.channel == channel:
            reference = layout.identity(identity.channel, identity.address)
            transaction.update(reference, {"conversation_id": conversation_id})


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
    channel: str, inbound: InboundMessage, contact_id: str, conversation_id: str, refused: bool
) -> Message:
    metadata = inbound_metadata(inbound, refused)
    now = utcnow()
    return Message(
        id=new_id("msg"),
        conversation_id=conversation_id,
        contact_id=contact_id,
        channel=channel,
        direction=Direction.INBOUND,
        status=DeliveryStatus.RECEIVED,
        text=inbound.text,
        media=stored_media(inbound),
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
    refs = thread_refs(inbound.thread)
    ours = thread_message_ids(inbound.thread)
    ref_keys = [(ref, direction) for ref in refs for direction in REF_DIRECTIONS]
    identity, key, *cited = await transaction.get(
        identity_ref,
        key_ref,
        *(layout.provider_key(channel, direction, ref) for ref, direction in ref_keys),
        *(layout.message(message_id) for message_id in ours),
    )
    ours_cited = cited[len(ref_keys) :]
    cited = cited[: len(ref_keys)]
    if key.exists:  # a duplicate: nothing is written
        ids = key.to_dict() or {}
        stored = await transaction.get(
            layout.message(ids["message_id"]),
            layout.contact(ids["contact_id"]),
            layout.conversation(ids["conversation_id"]),
        )
        # merged: the survivor; erased: its tombstone, as a contact with nothing
        sender = await live_contact_in(transaction, layout, stored[1], erased=True)
        return Ingested.of(
            read_message(stored[0]),
            read_contact(sender),
            read_conversation(stored[2]),
            created=False,
        )
    ids = (identity.to_dict() or {}) if identity.exists else {}
    if inbound.thread is None:
        target = ids.get("conversation_id")
    else:
        ours_known = (
            (message_id, Direction.OUTBOUND, snapshot.get("conversation_id"))
            for message_id, snapshot in zip(ours, ours_cited, strict=True)
            if snapshot.exists
            and snapshot.get("channel") == channel
            and snapshot.get("direction") == Direction.OUTBOUND
        )
        known = (
            (ref, direction, snapshot.get("conversation_id"))
            for (ref, direction), snapshot in zip(ref_keys, cited, strict=True)
            if snapshot.exists
        )
        target = first_known(ours_known, ours) or first_known(known, refs)
    reads = [layout.contact(ids["contact_id"])] if identity.exists else []
    if target is not None:
        reads.append(layout.conversation(target))
    snapshots = await transaction.get(*reads) if reads else []
    current = read_conversation(snapshots[-1]) if target is not None else None
    refused = False
    sender_contact_id = ids.get("contact_id")
    if (
        inbound.thread is not None
        and current is not None
        and not belongs(
            inbound.sender,
            sender_contact_id,
            (current.contact_id, current.address, current.participants),
        )
    ):
        current, refused = None, True  # a sender from elsewhere citing the thread
    if identity.exists:
        known_contact = read_contact(snapshots[0])
        contact = known_contact
        if inbound.sender_name and known_contact.display_name is None:
            contact = attrs.evolve(known_contact, display_name=inbound.sender_name)
    else:
        known_contact = None
        contact = Contact(
            id=new_id("ct"),
            display_name=inbound.sender_name,
            identities=(Identity(channel, inbound.sender),),
        )
    named = contact
    contact = with_consent(named, channel, inbound.consent)
    consented = contact.opted_out != named.opted_out
    message = _new_message(
        channel, inbound, contact.id, current.id if current else new_id("cv"), refused
    )
    now = message.created_at
    if current is None:
        conversation = _opened(inbound, contact.id, channel, message)
        transaction.create(layout.conversation(conversation.id), conversation_fields(conversation))
    else:
        conversation = _joined(inbound, current, contact.id, message)
        changes = {
            "address": conversation.address,
            "unread_count": conversation.unread_count,
            "last_activity_at": conversation.last_activity_at,
            "updated_at": conversation.updated_at,
            "status": str(conversation.status),
            "last_inbound_at": conversation.last_inbound_at,
        }
        if conversation.participants != current.participants:
            changes["participants"] = list(conversation.participants)
        transaction.update(layout.conversation(conversation.id), changes)
    # The identity names the contact's most recently created conversation on the channel
    # (None for a participant who has none yet); a new one is named by each of the
    # contact's identities on the channel.
    own = conversation.id if current is None else ids.get("conversation_id")
    if known_contact is None:
        contact = attrs.evolve(contact, created_at=now, updated_at=now)
        transaction.create(identity_ref, identity_fields(contact.identities[0], contact.id, own))
        transaction.create(layout.contact(contact.id), contact_fields(contact))
    elif own != ids.get("conversation_id"):
        point_identities(
            transaction, layout, contact, channel, own, Identity(channel, inbound.sender)
        )
    if known_contact is not None and contact is not known_contact:
        contact = attrs.evolve(contact, updated_at=now)
        transaction.set(layout.contact(contact.id), contact_fields(contact))
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
        events.message_created(
            channel, Direction.INBOUND, contact.id, message.created_at, automated=inbound.automated
        ),
    )
    if current is not None and conversation.status != current.status:  # reopened
        change = reopened(conversation.id, conversation.assignee, message.created_at)
        queue_change(transaction, layout, change)
        # Only then, and after the message as on SQLite; but the two events share the
        # commit's time, and the log orders those by id, random within a millisecond
        # (`omnichannel_core.store.firestore.events`): a reader may get them either way.
        log_event(
            transaction,
            layout.database,
            InboxEvent.CONVERSATION_UPDATED,
            conversation.id,
            conversation.id,
            (conversation.assignee,),
            events.conversation_changes(
                channel, {"status": current.status}, {"status": conversation.status}, change
            ),
        )
    return Ingested.of(message, contact, conversation, created=True)


def _opened(
    inbound: InboundMessage, contact_id: str, channel: str, message: Message
) -> Conversation:
    """The new conversation ``message`` opens for the sender's contact."""
    address = inbound.reply_to or inbound.sender
    now = message.created_at
    return Conversation(
        id=message.conversation_id,
        contact_id=contact_id,
        channel=channel,
        address=address,
        status=ConversationStatus.OPEN,
        unread_count=1,
        last_activity_at=now,
        created_at=now,
        updated_at=now,
        participants=with_participants((), inbound.thread, (address, inbound.sender)),
        last_inbound_at=wrote_at(inbound, now),
    )


def _joined(
    inbound: InboundMessage, current: Conversation, contact_id: str, message: Message
) -> Conversation:
    """``current`` once ``message`` joined it: one more unread, reopened, answering to where
    its contact last wrote from (a message joining a thread leaves the address: a Reply-To
    in a reply, forgeable like its From, joins the participants instead), the thread's
    participants added."""
    address = current.address
    if inbound.thread is None and current.contact_id == contact_id:
        address = inbound.reply_to or inbound.sender
    wrote = wrote_at(inbound, message.created_at)
    if current.last_inbound_at is not None:
        wrote = max(wrote, current.last_inbound_at)
    reopened = current.status is ConversationStatus.RESOLVED
    return attrs.evolve(
        current,
        address=address,
        unread_count=current.unread_count + 1,
        last_activity_at=message.created_at,
        updated_at=message.created_at,
        status=ConversationStatus.OPEN if reopened else current.status,
        last_inbound_at=wrote,
        participants=with_participants(
            current.participants, inbound.thread, (address, inbound.sender)
        ),
    )


async def resolve_recipient(
    transaction: Transaction,
    layout: Layout,
    channel: str,
    address: str,
    display_name: str | None,
    reply_to: str | None,
    new_conversation: bool = False,
) -> tuple[Contact, Conversation]:
    """The contact at ``address`` on ``channel`` and its conversation there (the one its
    identity names: the most recently created), made if new or when ``new_conversation``
    asks; a name given when the contact has none fills it in; the conversation answers to
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
        conversation = _new_conversation(contact.id, channel, answer_to)
        fields = identity_fields(contact.identities[0], contact.id, conversation.id)
        transaction.create(identity_ref, fields)
        transaction.create(layout.contact(contact.id), contact_fields(contact))
        transaction.create(layout.conversation(conversation.id), conversation_fields(conversation))
        return contact, conversation
    ids = identity.to_dict() or {}
    contact_ref = layout.contact(ids["contact_id"])
    current_id = None if new_conversation else ids.get("conversation_id")
    reads = [contact_ref] if current_id is None else [contact_ref, layout.conversation(current_id)]
    snapshots = await transaction.get(*reads)
    contact = read_contact(snapshots[0])
    if display_name and contact.display_name is None:
        contact = attrs.evolve(contact, display_name=display_name, updated_at=now)
        transaction.set(contact_ref, contact_fields(contact))
    if current_id is None:
        conversation = _new_conversation(contact.id, channel, answer_to)
        transaction.create(layout.conversation(conversation.id), conversation_fields(conversation))
        through = Identity(channel, address)
        point_identities(transaction, layout, contact, channel, conversation.id, through)
        return contact, conversation
    conversation = read_conversation(snapshots[1])
    if conversation.address != answer_to:
        conversation = attrs.evolve(conversation, address=answer_to)
        transaction.update(layout.conversation(current_id), {"address": answer_to})
    return contact, conversation


def _new_conversation(contact_id: str, channel: str, address: str) -> Conversation:
    """An open conversation with nothing in it yet, for an outbound message."""
    now = utcnow()
    return Conversation(
        id=new_id("cv"),
        contact_id=contact_id,
        channel=channel,
        address=address,
        last_activity_at=now,
        created_at=now,
        updated_at=now,
    )

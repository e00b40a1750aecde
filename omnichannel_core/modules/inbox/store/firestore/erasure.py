"""Erasing a contact on Firestore (`omnichannel_core.modules.inbox.store.erasure` says what
is erased), and the reads of everything stored about one (the per-contact export).

A transaction cannot query, and one commit takes at most 500 writes, so an erasure is
steps, each safe to repeat, which erasing again runs again:

0. the person's addresses leave the participants of others' conversations it wrote in
   (before the identities go: a repeat still knows the addresses);
1. one transaction reads the contact, those merged into it and its identity documents,
   deletes the identities, writes the tombstones (``erased_at``; no profile, no search
   fields, no reach), logs ``contact.erased`` and appends the audit entry. An ingest that
   read an identity conflicts with it, and runs again on a new contact;
2. sweeps, by queries: the conversations of the contacts, then their messages and the
   messages of those conversations, :data:`MESSAGES_PER_COMMIT` per transaction, each
   redacting what it reads (by reference, again: a writer meanwhile makes it run again),
   deleting the outbox entries, and adding the media ids the messages named to the
   tombstone's ``erased_media`` in the same commit.

The provider key documents (``message_keys``) stay: they are named by a SHA-256 and hold
ids only, so a retried webhook of an erased message is still answered as a duplicate.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from google.cloud.firestore_v1 import ArrayUnion, AsyncDocumentReference, FieldFilter

from omnichannel_core.module import (
    AuditEntry,
    Conflict,
    Contact,
    Conversation,
    ConversationStatus,
    DeliveryStatus,
    Message,
    utcnow,
)
from omnichannel_core.module.firestore import (
    Transaction,
    existing,
    json_text,
    log_event,
    queue_audit,
)
from omnichannel_core.modules.inbox import events
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.store.erasure import (
    ERASED_ADDRESS,
    ERASED_METADATA,
    Erasure,
    erased_key,
    is_erased_key,
    kept_media_ids,
    with_counts,
)
from omnichannel_core.modules.inbox.store.firestore.conversations import queue_change
from omnichannel_core.modules.inbox.store.firestore.documents import (
    Layout,
    erased_fields,
    is_erased,
    live_contact,
    merged_into,
    read_contact,
    read_conversation,
    read_message,
)
from omnichannel_core.modules.inbox.store.history import resolved_by_erasure

CONVERSATIONS_PER_COMMIT = 150
"""A conversation resolved by the erasure is three writes (its redaction, its history's
entry, its event): 450 at most per commit."""
MESSAGES_PER_COMMIT = 150
"""A message's redaction and its outbox entry's deletion are two writes; with the
tombstone's media ids, a commit of 150 messages is at most 301 writes."""

Transact = Callable[[tuple[str, ...], Callable[[Transaction], Awaitable[Any]]], Awaitable[Any]]


async def _merged_ids(layout: Layout, contact_id: str) -> list[str]:
    """``contact_id`` and every contact merged into it, directly or through another."""
    found = [contact_id]
    for known in found:
        query = layout.contacts.where(filter=FieldFilter("merged_into", "==", known))
        async for snapshot in query.select([]).stream():
            if snapshot.id not in found:
                found.append(snapshot.id)
    return found


async def _query_ids(query: Any) -> list[str]:
    return [snapshot.id async for snapshot in query.select([]).stream()]


async def _conversation_ids(layout: Layout, ids: list[str]) -> list[str]:
    found: list[str] = []
    for contact_id in ids:
        query = layout.conversations.where(filter=FieldFilter("contact_id", "==", contact_id))
        found += await _query_ids(query)
    return found


async def _message_ids(
    layout: Layout, ids: list[str], conversations: list[str]
) -> tuple[list[str], list[str]]:
    """The ids of the messages of the contacts ``ids`` and of ``conversations``, and the
    media ids they name."""
    found: dict[str, None] = {}
    media: dict[str, None] = {}
    for field, values in (("contact_id", ids), ("conversation_id", conversations)):
        for value in values:
            query = layout.messages.where(filter=FieldFilter(field, "==", value))
            async for snapshot in query.select(["media_json"]).stream():
                found[snapshot.id] = None
                media.update(dict.fromkeys(kept_media_ids(json.loads(snapshot.get("media_json")))))
    return list(found), list(media)


async def _leave_participants(
    transact: Transact, layout: Layout, ids: list[str], addresses: set[str], own: set[str]
) -> None:
    """Step 0: ``addresses`` leave the participants of the conversations not in ``own``
    that the contacts ``ids`` wrote in."""
    others: dict[str, None] = {}
    for contact_id in ids:
        query = layout.messages.where(filter=FieldFilter("contact_id", "==", contact_id))
        async for snapshot in query.select(["conversation_id"]).stream():
            if snapshot.get("conversation_id") not in own:
                others[snapshot.get("conversation_id")] = None

    async def leave(transaction: Transaction, reference: AsyncDocumentReference) -> None:
        [snapshot] = await transaction.get(reference)
        if not snapshot.exists:
            return
        participants = list(snapshot.get("participants") or [])
        kept = [address for address in participants if address not in addresses]
        if kept != participants:
            transaction.update(reference, {"participants": kept, "updated_at": utcnow()})

    for conversation_id in others:
        reference = layout.conversation(conversation_id)
        await transact(
            ("conversation", conversation_id), functools.partial(leave, reference=reference)
        )


async def _tombstones(
    transaction: Transaction,
    layout: Layout,
    contact_id: str,
    ids: list[str],
    audit: AuditEntry | None,
    counts: Erasure,
) -> int:
    """Step 1; how many identities it deleted (0 when the contact was erased already)."""
    snapshots = await transaction.get(*(layout.contact(i) for i in ids))
    main = snapshots[0]
    if is_erased(main):
        return 0
    identities = [
        layout.identity(identity.channel, identity.address)
        for snapshot in snapshots
        if snapshot.exists and not is_erased(snapshot) and merged_into(snapshot) is None
        for identity in read_contact(snapshot).identities
    ]
    held = await transaction.get(*identities) if identities else []
    deleted = 0
    for snapshot in held:
        if snapshot.exists and snapshot.get("contact_id") in ids:
            transaction.delete(snapshot.reference)
            deleted += 1
    now = utcnow()
    counts = attrs.evolve(counts, identities=deleted)
    avatar = read_contact(main).avatar
    kept = [avatar] if avatar and avatar in counts.media_ids else []
    transaction.set(main.reference, erased_fields(now, kept, None))
    for snapshot in snapshots[1:]:
        if snapshot.exists and not is_erased(snapshot):
            transaction.set(snapshot.reference, erased_fields(now, [], merged_into(snapshot)))
    log_event(transaction, layout.database, InboxEvent.CONTACT_ERASED, contact_id, data={})
    if audit is not None:
        queue_audit(transaction, layout.database, with_counts(audit, counts))
    return deleted


async def _avatar_shared(layout: Layout, avatar: str, contact_id: str) -> bool:
    """Whether another contact shows the same picture (then it stays in the media store).
    A query, so read before the transactions (which cannot query): a contact given that
    picture meanwhile would lose it, as a message attaching a shared upload would."""
    query = layout.contacts.where(filter=FieldFilter("avatar", "==", avatar)).limit(2)
    return any([snapshot.id != contact_id async for snapshot in query.stream()])


async def _redact_conversations(
    transaction: Transaction,
    references: list[AsyncDocumentReference],
    layout: Layout,
    audit: AuditEntry | None,
) -> int:
    redacted = 0
    for snapshot in await transaction.get(*references):
        if not snapshot.exists:
            continue
        data = snapshot.to_dict() or {}
        conversation = read_conversation(snapshot)
        change = resolved_by_erasure(conversation, utcnow(), audit)
        if change is not None:  # resolved by the erasure: kept in its history
            queue_change(transaction, layout, change)
            log_event(
                transaction,
                layout.database,
                InboxEvent.CONVERSATION_UPDATED,
                change.conversation_id,
                change.conversation_id,
                (change.assignee,),
                events.conversation_changes(
                    conversation.channel,
                    {"status": change.previous_status},
                    {"status": change.status},
                    change,
                ),
            )
        if (
            data.get("address") == ERASED_ADDRESS
            and not data.get("participants")
            and data.get("status") == ConversationStatus.RESOLVED
        ):
            continue
        changes = {
            "address": ERASED_ADDRESS,
            "participants": [],
            "status": str(ConversationStatus.RESOLVED),
            "unread_count": 0,
            "updated_at": utcnow(),
        }
        transaction.update(snapshot.reference, changes)
        redacted += 1
    return redacted


def _erased_value(data: dict[str, Any], field: str) -> str | None:
    value = data.get(field)
    if not isinstance(value, str) or is_erased_key(value):
        return value if isinstance(value, str) else None
    return erased_key(data["channel"], data["direction"], value)


async def _redact_messages(
    transaction: Transaction,
    layout: Layout,
    contact_id: str,
    message_ids: list[str],
) -> int:
    messages = [layout.message(message_id) for message_id in message_ids]
    entries = [layout.outbox(message_id) for message_id in message_ids]
    snapshots = await transaction.get(*messages, *entries)
    found, queued = snapshots[: len(messages)], snapshots[len(messages) :]
    media: list[str] = []
    redacted = 0
    now = utcnow()
    for snapshot, entry in zip(found, queued, strict=True):
        if not snapshot.exists:
            continue
        data = snapshot.to_dict() or {}
        media += kept_media_ids(read_message(snapshot).media)
        changes: dict[str, Any] = {}
        if entry.exists:
            transaction.delete(entry.reference)
            changes |= {"status": str(DeliveryStatus.CANCELLED), "in_doubt": False}
        if data.get("metadata_json") != json_text(ERASED_METADATA) or data.get("text"):
            changes |= {
                "text": None,
                "media_json": "[]",
                "metadata_json": json_text(ERASED_METADATA),
                "error_message": None,
                "error_details_json": "{}",
                "provider_message_id": _erased_value(data, "provider_message_id"),
                "idempotency_key": _erased_value(data, "idempotency_key"),
            }
            redacted += 1
        if changes:
            transaction.update(snapshot.reference, {**changes, "updated_at": now})
    if media:
        transaction.update(layout.contact(contact_id), {"erased_media": ArrayUnion(media)})
    return redacted


async def erase(
    transact: Transact, layout: Layout, contact_id: str, audit: AuditEntry | None
) -> Erasure:
    """Steps 0, 1 and 2 (the module's docstring), or those an interrupted erasure left."""
    main = await layout.contact(contact_id).get()
    existing(main, "contact")
    if not is_erased(main) and (survivor := merged_into(main)) is not None:
        raise Conflict(
            f"contact {contact_id!r} was merged into {survivor!r}: erase that one",
            contact_id=survivor,
        )
    ids = await _merged_ids(layout, contact_id)
    conversations = await _conversation_ids(layout, ids)
    if not is_erased(main):
        contact = read_contact(main)
        addresses = {i.address for i in contact.identities} | set(contact.emails)
        addresses |= set(contact.phones)
        for conversation_id in conversations:
            conversation = await layout.conversation(conversation_id).get()
            if conversation.exists:
                addresses.add(conversation.get("address"))
        await _leave_participants(transact, layout, ids, addresses, set(conversations))
    messages, media = await _message_ids(layout, ids, conversations)
    avatar = None if is_erased(main) else read_contact(main).avatar
    if avatar and not await _avatar_shared(layout, avatar, contact_id):
        media = [*media, avatar]
    counts = Erasure(
        contact_id,
        messages=len(messages),
        conversations=len(conversations),
        media_ids=tuple(media),
    )
    identities = await transact(
        ("contact", contact_id),
        lambda t: _tombstones(t, layout, contact_id, ids, audit, counts),
    )
    redacted_conversations = 0
    for start in range(0, len(conversations), CONVERSATIONS_PER_COMMIT):
        chunk = [
            layout.conversation(c) for c in conversations[start : start + CONVERSATIONS_PER_COMMIT]
        ]
        redacted_conversations += await transact(
            ("erase", contact_id),
            functools.partial(_redact_conversations, references=chunk, layout=layout, audit=audit),
        )
    redacted = 0
    for start in range(0, len(messages), MESSAGES_PER_COMMIT):
        chunk_ids = messages[start : start + MESSAGES_PER_COMMIT]
        redacted += await transact(
            ("erase", contact_id),
            functools.partial(
                _redact_messages, layout=layout, contact_id=contact_id, message_ids=chunk_ids
            ),
        )
    tombstone = await layout.contact(contact_id).get()
    return Erasure(
        contact_id,
        messages=redacted,
        conversations=redacted_conversations,
        identities=identities,
        media_ids=tuple(dict.fromkeys(tombstone.get("erased_media") or [])),
        message_ids=tuple(messages),
    )


async def finish(transact: Transact, layout: Layout, contact_id: str) -> None:
    """The media of the erasure were forgotten: the tombstone drops their ids."""

    async def body(transaction: Transaction) -> None:
        [snapshot] = await transaction.get(layout.contact(contact_id))
        if is_erased(snapshot):
            transaction.update(snapshot.reference, {"erased_media": []})

    await transact(("contact", contact_id), body)


async def records(
    layout: Layout, contact_id: str
) -> tuple[Contact, list[Conversation], list[Message]]:
    """The contact (the survivor, for one merged away), its conversations and their
    messages with those it sent in others', each oldest first."""
    contact = read_contact(await live_contact(layout, contact_id))
    ids = await _merged_ids(layout, contact.id)
    conversations: list[Conversation] = []
    for owner in ids:
        query = layout.conversations.where(filter=FieldFilter("contact_id", "==", owner))
        conversations += [read_conversation(s) async for s in query.stream()]
    conversations.sort(key=lambda c: (c.created_at, c.id))
    found: dict[str, Message] = {}
    for field, values in (("contact_id", ids), ("conversation_id", [c.id for c in conversations])):
        for value in values:
            query = layout.messages.where(filter=FieldFilter(field, "==", value))
            async for snapshot in query.stream():
                found[snapshot.id] = read_message(snapshot)
    messages = sorted(found.values(), key=lambda m: (m.created_at, m.id))
    return contact, conversations, messages

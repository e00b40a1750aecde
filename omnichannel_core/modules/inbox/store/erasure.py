"""Erasing a contact (the GDPR right to be forgotten): what both stores do, and what is
left of what they erase.

Erasure **redacts in place** and keeps ids, so nothing that names a record breaks (events,
audit entries, timeline entries, another contact's conversation):

- the contact, and every contact merged into it, stays as a tombstone (``erased_at``) with
  no profile, tags, attributes, opt-outs, search words nor reach: reading it is NotFound,
  and no list, scan, search or lookup shows it;
- its identities are deleted: the next message from one of its addresses makes a new
  contact, as for anyone never met;
- its conversations answer to :data:`ERASED_ADDRESS`, have no participants, and are
  resolved;
- every message of those conversations, and every message the person sent in another's
  conversation (an email thread's participant), has no text, media, error message nor error
  details; its metadata is :data:`ERASED_METADATA`; its provider id and idempotency key are
  replaced by :func:`erased_key` of them. The person's addresses leave the participants of
  those other conversations;
- the outbox entries of those messages go (they hold the address): a message not yet sent
  is never sent;
- the media ids the erased messages named (and the contact's avatar) are kept on the
  tombstone until the media store forgot them (:meth:`InboxStore.finish_erasure`), so an
  erasure interrupted before is finished by erasing again.

A retried webhook of an erased inbound message still finds it by :func:`erased_key` of its
provider id, and is answered as a duplicate (storing nothing).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import attrs

from omnichannel_core.module import AuditEntry, Media

ERASED_ADDRESS = "erased"
"""The address of an erased contact's conversation."""
ERASED_METADATA: dict[str, Any] = {"erased": True}
"""The metadata of an erased message."""
ERASED_KEY_PREFIX = "erased:"


def erased_key(channel: str, direction: str, value: str) -> str:
    """What replaces an erased message's provider id (or idempotency key) ``value``: a
    SHA-256 of it with its channel and direction. Provider ids carry random parts (a
    webchat client id, a Message-ID's left side, a provider's SID), so the digest cannot
    be turned back into an address by trying addresses; the dedupe of a retried webhook
    computes it again (``ingest_inbound``)."""
    digest = hashlib.sha256(json.dumps([channel, str(direction), value]).encode()).hexdigest()
    return f"{ERASED_KEY_PREFIX}{digest[:40]}"


def is_erased_key(value: str | None) -> bool:
    return value is not None and value.startswith(ERASED_KEY_PREFIX)


def kept_media_ids(media: Iterable[Media | dict[str, Any]]) -> list[str]:
    """The ids of the items of a message's media the media store keeps."""
    ids: list[str] = []
    for item in media:
        media_id = item.get("id") if isinstance(item, dict) else item.id
        if isinstance(media_id, str):
            ids.append(media_id)
    return ids


@attrs.frozen
class Erasure:
    """What :meth:`InboxStore.erase_contact` did (this call: a repeat counts what was left),
    and what the media store is still to forget."""

    contact_id: str
    messages: int = 0
    """Messages redacted."""
    conversations: int = 0
    """Conversations redacted (the contact's)."""
    identities: int = 0
    """Identities deleted."""
    media_ids: tuple[str, ...] = ()
    """Media ids the erased messages named, and the avatar: every one not yet forgotten
    (of this erasure and any interrupted before)."""
    message_ids: tuple[str, ...] = ()
    """Every erased message of this contact (the media store forgets their fetches)."""


def with_counts(audit: AuditEntry, erased: Erasure) -> AuditEntry:
    """``audit`` with the counts of ``erased`` added to its details (ids and numbers only:
    the audit log never holds a contact's personal data)."""
    counts = {
        "messages": erased.messages,
        "conversations": erased.conversations,
        "identities": erased.identities,
        "media_items": len(erased.media_ids),
    }
    return attrs.evolve(audit, details={**audit.details, **counts})

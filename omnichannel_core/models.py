"""The inbox's records: contacts, conversations, messages and delivery status.

Models are plain attrs classes; they are turned into JSON only at the edges, through the
one converter in `omnichannel_core.serialization`.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import attrs

from omnichannel_core.bodies.fields import field
from omnichannel_core.timestamps import utcnow


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class DeliveryStatus(enum.StrEnum):
    """Where a message is on its way to the customer.

    Outbound messages move forward only: queued < sending < sent < delivered < read.
    ``failed``, ``undelivered`` and ``cancelled`` (a scheduled message called off before it
    went) are terminal. Inbound messages are ``received``. An operator's retry of a
    ``failed`` message (``POST /api/messages/{id}/retry``) is the one move back: to
    ``queued``, audited. See docs/delivery.md.
    """

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    CANCELLED = "cancelled"
    RECEIVED = "received"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def rank(self) -> int:
        """Position in the forward-only order; terminal states rank above all others."""
        return STATUS_RANK[self]

    def can_move_to(self, new: DeliveryStatus) -> bool:
        """True when an update from this status to ``new`` moves the message forward."""
        if self.is_terminal or self is DeliveryStatus.RECEIVED:
            return False
        if new is DeliveryStatus.RECEIVED:
            return False
        if new is DeliveryStatus.CANCELLED:  # only what was never sent can be called off
            return self is DeliveryStatus.QUEUED
        return new.rank > self.rank


TERMINAL_STATUSES = frozenset(
    {DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERED, DeliveryStatus.CANCELLED}
)
STATUS_RANK: dict[DeliveryStatus, int] = {
    DeliveryStatus.RECEIVED: 0,
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENDING: 1,
    DeliveryStatus.SENT: 2,
    DeliveryStatus.DELIVERED: 3,
    DeliveryStatus.READ: 4,
    DeliveryStatus.FAILED: 5,
    DeliveryStatus.UNDELIVERED: 5,
    DeliveryStatus.CANCELLED: 5,
}


class Consent(enum.StrEnum):
    """A customer's word on receiving messages on a channel (e.g. SMS ``STOP``/``START``)."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"


class ConversationStatus(enum.StrEnum):
    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"


@attrs.frozen
class Media:
    """One attachment: where to fetch it and what it is."""

    url: str
    content_type: str | None = None
    filename: str | None = None


@attrs.frozen
class Identity:
    """How a contact is reached on one channel: a phone number, an email, a page-scoped id."""

    channel: str
    address: str


@attrs.frozen
class Contact:
    """A customer (the seed's "client"), reachable on one or more channels."""

    id: str
    display_name: str | None
    identities: tuple[Identity, ...]
    tags: tuple[str, ...] = ()
    attributes: dict[str, Any] = attrs.field(factory=dict)
    opted_out: tuple[str, ...] = ()
    """Channels on which the contact asked not to be messaged (bulk sends skip them there)."""
    created_at: datetime = attrs.field(factory=utcnow)
    updated_at: datetime = attrs.field(factory=utcnow)


@attrs.frozen
class Conversation:
    """The one thread between a contact and the business on one channel."""

    id: str
    contact_id: str
    channel: str
    address: str
    status: ConversationStatus = ConversationStatus.OPEN
    assignee: str | None = None
    unread_count: int = 0
    last_activity_at: datetime = attrs.field(factory=utcnow)
    created_at: datetime = attrs.field(factory=utcnow)
    updated_at: datetime = attrs.field(factory=utcnow)
    last_inbound_at: datetime | None = None
    """When the customer last wrote (the newest inbound message's ``sent_at``, or the time it
    was stored when the provider gave none or a later one); None until they write. Providers
    such as Messenger allow free-form replies only within a window after it."""


@attrs.frozen
class Message:
    """One message, in or out, with its delivery status."""

    id: str
    conversation_id: str
    contact_id: str
    channel: str
    direction: Direction
    status: DeliveryStatus
    text: str | None = None
    media: tuple[Media, ...] = ()
    provider_message_id: str | None = None
    idempotency_key: str | None = None
    error_code: str | None = field(
        default=None,
        description="Why it failed: the provider's code when it gave one, else"
        " send_rejected, provider_unavailable, channel_failed or channel_unavailable.",
    )
    error_message: str | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
    created_at: datetime = attrs.field(factory=utcnow)
    updated_at: datetime = attrs.field(factory=utcnow)
    in_doubt: bool = field(
        default=False,
        description="The send's outcome is unknown: the provider may have the message. Set"
        " while ``sending``; settled by the provider's callback or echo, else ``failed`` with"
        " ``not_confirmed`` after the channel's deadline (docs/delivery.md).",
    )
    send_at: datetime | None = field(
        default=None, description="Not sent before this time (a scheduled message)."
    )
    attempts: int = field(default=0, description="Send attempts made so far.")
    error_details: dict[str, Any] = field(
        factory=dict,
        description="What the channel said of the last failure beyond its code (e.g."
        " Graph's fbtrace_id), and whether it could be retried (``retryable``).",
    )

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


class AuthorKind(enum.StrEnum):
    """Who sent an outbound message (:class:`Author`)."""

    USER = "user"
    """A signed-in user: an agent, a supervisor or an admin."""
    API_KEY = "api_key"
    """A program, with an API key (a bot, an integration)."""
    AUTOMATION = "automation"
    """A module of this server acting on its own: a campaign, an away message."""
    SYSTEM = "system"
    """The command line, or the server's bootstrap key."""
    CHANNEL = "channel"
    """A channel's own work, with no caller (its route or job sending for itself)."""


@attrs.frozen
class Author:
    """Who sent an outbound message: a person, a program or an automation.

    The dashboard counts a first response only from a person or a program, never from an
    automation (docs/dashboard.md); inbound messages have none.
    """

    kind: AuthorKind = attrs.field(converter=AuthorKind)
    id: str | None = field(
        default=None,
        description="The user's or key's id; an automation's name (``campaign``,"
        " ``away_message``); the channel's name.",
    )
    name: str | None = field(default=None, description="Who it is, as people read it.")
    ref: str | None = field(
        default=None, description="What the automation acted for (a campaign's id)."
    )

    @property
    def automated(self) -> bool:
        return self.kind is AuthorKind.AUTOMATION


class MediaRole(enum.StrEnum):
    """What a media item is to its message."""

    ATTACHMENT = "attachment"
    INLINE = "inline"
    """Shown in the body (an email's inline image, named by its ``content_id``)."""
    ORIGINAL = "original"
    """The message exactly as the provider delivered it (an email's full MIME source)."""


@attrs.frozen
class Media:
    """One attachment: where to fetch it and what it is.

    Media the server keeps (every inbound attachment, once fetched; an agent's upload) has
    an ``id`` in the media store, and ``url`` is then the authenticated route that serves
    it. Until a provider's media is fetched into the store, ``id`` is None and ``url`` is
    the provider's.
    """

    url: str
    content_type: str | None = None
    filename: str | None = None
    id: str | None = field(
        default=None, description="The media store's id, once the server keeps it."
    )
    size: int | None = field(default=None, description="Bytes, once the server keeps it.")
    role: MediaRole = field(
        default=MediaRole.ATTACHMENT,
        description="attachment; inline (an email's inline image); original (the message's"
        " full source as the provider sent it, e.g. the email's MIME).",
    )
    content_id: str | None = field(
        default=None, description="An inline image's Content-ID, as its HTML names it."
    )


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
    emails: tuple[str, ...] = ()
    """The person's email addresses, lowercased (the profile's; an ``email`` identity is
    how the email channel reaches them, and is usually one of these too)."""
    phones: tuple[str, ...] = ()
    """The person's phone numbers, E.164 (``+`` and digits)."""
    company: str | None = None
    locale: str | None = None
    """A BCP 47 language tag: ``es``, ``pt-BR``."""
    timezone: str | None = None
    """An IANA time zone: ``Europe/Madrid``."""
    avatar: str | None = None
    """The id of the picture kept in the media store (GET /api/media/{id})."""


@attrs.frozen
class Conversation:
    """A thread between a contact and the business on one channel: the contact's one
    conversation there, or, on a channel that keeps one per thread (email), one of several
    (docs/hooks.md, ``Thread``)."""

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
    participants: tuple[str, ...] = field(
        default=(),
        description="Other addresses in this conversation's thread (an email's Cc) besides"
        " the contact's: a message from one of them that answers the thread joins it.",
    )
    last_inbound_at: datetime | None = None
    """When the customer last wrote (the newest inbound message's ``sent_at``, or the time it
    was stored when the provider gave none or a later one); None until they write. Providers
    such as Messenger allow free-form replies only within a window after it."""


MEDIA_ROUTE = "/api/messages/{message_id}/media/{index}"
"""The authenticated route that serves a message's media the server keeps (the media
module's): the ``url`` of every such item."""


def media_url(message_id: str, index: int) -> str:
    """The route that serves item ``index`` of message ``message_id``'s media."""
    return MEDIA_ROUTE.format(message_id=message_id, index=index)


def _with_served_urls(message_id: str, media: tuple[Media, ...]) -> tuple[Media, ...]:
    return tuple(
        attrs.evolve(item, url=media_url(message_id, index)) if item.id is not None else item
        for index, item in enumerate(media)
    )


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
    author: Author | None = field(
        default=None,
        description="Who sent an outbound message (a user, an API key, an automation...);"
        " None for an inbound one, and for outbound ones stored before it was recorded.",
    )

    def __attrs_post_init__(self) -> None:
        # A kept item's url is always the route that serves it: the message's id is only
        # known once the store made it, so it is named here rather than stored.
        if any(item.id is not None for item in self.media):
            object.__setattr__(self, "media", _with_served_urls(self.id, self.media))

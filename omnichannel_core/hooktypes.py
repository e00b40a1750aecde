"""What crosses the plugin boundary: the values hooks receive and return.

Channels build these; the core validates, stores and serves them. Every class is frozen
so a plugin cannot change what another plugin (or the core) sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO

import attrs

from omnichannel_core.models import Consent, DeliveryStatus, Media, MediaRole
from omnichannel_core.routes import RoutePolicy

MAX_ID_LENGTH = 512

_identifier = attrs.validators.and_(
    attrs.validators.instance_of(str),
    attrs.validators.min_len(1),
    attrs.validators.max_len(MAX_ID_LENGTH),
)
"""A provider message id or an address: a non-empty string of at most 512 characters.
An empty id would make every later message a "duplicate" of the first."""
_optional_text = attrs.validators.optional(attrs.validators.instance_of(str))


def _media_tuple(media: Iterable[Media]) -> tuple[Media, ...]:
    return tuple(media)


def _inbound_media_tuple(media: Iterable[Media | Attachment]) -> tuple[Media | Attachment, ...]:
    return tuple(media)


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen
class Attachment:
    """The bytes of an attachment that came inside the provider's request (an email's parts):
    the core keeps them in the media store before the provider gets its answer, and the
    stored message names them as :class:`Media` with an ``id``.

    :param content_type: as the sender declared it; the media store checks it against the
        bytes and its allowed types.
    :param role: ``MediaRole.INLINE`` for an image the body shows (with its
        ``content_id``), ``MediaRole.ORIGINAL`` for the message's full source.
    """

    content: bytes = attrs.field(validator=attrs.validators.instance_of(bytes))
    content_type: str = attrs.field(validator=attrs.validators.instance_of(str))
    filename: str | None = attrs.field(default=None, validator=_optional_text)
    role: MediaRole = attrs.field(default=MediaRole.ATTACHMENT, converter=MediaRole)
    content_id: str | None = attrs.field(default=None, validator=_optional_text)


@attrs.frozen
class Thread:
    """Where an inbound message goes on a channel that keeps one conversation per thread
    (email: as every mail client shows it) rather than one per contact and channel.

    The message joins the conversation of the first of ``message_ids``, then of ``refs``,
    the store knows (an outbound message of this channel with that id; a message of either
    direction on this channel with that provider id), when its sender belongs there: the
    conversation's contact, its address, or one of its ``participants``. Otherwise
    (no ref known, or a sender from elsewhere citing the thread, which is then flagged
    ``thread_refused`` in the message's metadata) it starts a new conversation for the
    sender's contact. docs/hooks.md states the rule.

    :param refs: provider message ids this message answers, nearest first (an email's
        ``In-Reply-To``, then its ``References`` from the last).
    :param participants: other addresses in the thread (an email's ``To`` and ``Cc``,
        less the business's own), added to the conversation's ``participants``.
    :param message_ids: the core's own ids of outbound messages among ``refs``, when the
        channel can tell them (our emails' ``Message-ID`` embeds the message id): found
        even when that message's provider id was never recorded (its send's answer was
        lost, so it is in doubt).
    """

    refs: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    participants: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    message_ids: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)


@attrs.frozen
class WebhookRequest:
    """An HTTP request a provider sent to a channel, framework-free.

    :param url: the URL as the server saw it (scheme, host, path and query).
    :param headers: header names in lower case.
    :param query: query parameters; a repeated parameter keeps its last value.
    :param body: the raw body, exactly as received (signatures are computed over it).
    """

    method: str
    url: str
    path: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    remote_addr: str | None = None
    body_file: BinaryIO | None = None
    """For a channel that declares ``webhook_body_limit``: the body, streamed to a file
    (seekable, at its start; ``body`` is then empty). Closed once ``receive`` returned."""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@attrs.frozen
class WebhookResponse:
    """What the provider gets back; defaults to an empty 200."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"


@attrs.frozen
class InboundMessage:
    """A customer's message as a channel understood it.

    :param provider_message_id: the provider's id; the store keeps one message per
        (channel, provider_message_id), so retried webhooks store once.
    :param sender: the customer's address on this channel (phone, email, page-scoped id):
        the identity the contact is found or created by.
    :param sender_name: the name the provider gave, if any.
    :param reply_to: where answers go, when not ``sender``: e.g. ``whatsapp:+15551234567``
        for a customer identified by ``+15551234567`` who wrote on WhatsApp. The contact's
        conversation on this channel answers to the address the customer last wrote from.
    :param consent: ``Consent.OPT_OUT`` when the message asks to stop messages on this
        channel (``STOP``), ``Consent.OPT_IN`` when it asks to resume (``START``).
    :param media: :class:`Media` the provider holds (its URL), which the core fetches into
        the media store in a job, through the channel's ``media_fetch`` hook; or
        :class:`Attachment` bytes that came with the request, kept before the answer.
    :param thread: for a channel with a conversation per thread (email), what the message
        answers (:class:`Thread`); None: the contact's one conversation on the channel.
    :param automated: sent by a machine, not a person (an email auto-reply, a bounce):
        stored with ``metadata["automated"] = True`` and never answered automatically, so
        two robots cannot loop.
    """

    provider_message_id: str = attrs.field(validator=_identifier)
    sender: str = attrs.field(validator=_identifier)
    text: str | None = attrs.field(default=None, validator=_optional_text)
    media: tuple[Media | Attachment, ...] = attrs.field(default=(), converter=_inbound_media_tuple)
    sender_name: str | None = attrs.field(default=None, validator=_optional_text)
    sent_at: datetime | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
    reply_to: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(_identifier)
    )
    consent: Consent | None = attrs.field(
        default=None, converter=attrs.converters.optional(Consent)
    )
    thread: Thread | None = None
    automated: bool = False


@attrs.frozen
class StatusUpdate:
    """A provider's word on an outbound message's delivery."""

    provider_message_id: str = attrs.field(validator=_identifier)
    status: DeliveryStatus = attrs.field(converter=DeliveryStatus)
    error_code: str | None = attrs.field(default=None, validator=_optional_text)
    error_message: str | None = attrs.field(default=None, validator=_optional_text)
    at: datetime | None = None
    message_id: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(_identifier)
    )
    """The core's message id, when the provider hands it back (e.g. in a status callback URL
    the channel set): it finds a message whose provider id was never recorded, such as one
    whose send timed out after the provider took it."""


WATERMARK_STATUSES = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.READ})
"""The statuses a watermark can report: what receipts say of a customer's device."""


def _watermark_status(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in WATERMARK_STATUSES:
        raise ValueError(f"a watermark's status is delivered or read, not {value!s}")


def _utc(value: datetime) -> datetime:
    """An aware datetime, in UTC: a naive one is refused, since its zone is a guess."""
    if not isinstance(value, datetime):
        raise TypeError(f"up_to must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("up_to must be timezone-aware")
    return value.astimezone(UTC)


@attrs.frozen
class StatusWatermark:
    """Every outbound message to ``recipient`` on this channel stored at or before
    ``up_to`` reached at least ``status`` (Messenger's delivery/read watermarks).

    Some providers report receipts by time instead of by message: "everything sent to this
    customer before T was delivered" (or read). The core moves each such message forward,
    never back, as it would for a :class:`StatusUpdate` naming it.

    :param recipient: the conversation's address (the customer's id on the channel: the
        ``to`` of the messages sent there).
    :param status: ``DeliveryStatus.DELIVERED`` or ``DeliveryStatus.READ``.
    :param up_to: the provider's watermark, timezone-aware (kept in UTC).
    """

    recipient: str = attrs.field(validator=_identifier)
    status: DeliveryStatus = attrs.field(converter=DeliveryStatus, validator=_watermark_status)
    up_to: datetime = attrs.field(converter=_utc)


def _watermark_tuple(watermarks: Iterable[StatusWatermark]) -> tuple[StatusWatermark, ...]:
    return tuple(watermarks)


@attrs.frozen
class WebhookResult:
    """What `receive` and `status` return: messages, status updates and watermarks to apply,
    and the response the provider expects."""

    messages: tuple[InboundMessage, ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()
    response: WebhookResponse = attrs.field(factory=WebhookResponse)
    watermarks: tuple[StatusWatermark, ...] = attrs.field(default=(), converter=_watermark_tuple)


@attrs.frozen
class OutboundMessage:
    """A stored, queued message the channel is asked to deliver.

    :param id: the core's message id; use it as the provider's idempotency key if it has one.
    :param to: the customer's address on this channel.
    :param last_inbound_at: when the customer last wrote in this conversation
        (`Conversation.last_inbound_at`), None if never: a channel whose provider allows
        free-form messages only within a window after that (Messenger: 24 hours) decides
        with it how to send, or refuses.
    """

    id: str
    conversation_id: str
    to: str
    text: str | None = None
    media: tuple[Media, ...] = ()
    metadata: dict[str, Any] = attrs.field(factory=dict)
    last_inbound_at: datetime | None = None


@attrs.frozen
class SendResult:
    """The provider took the message: its id for later status callbacks, and its status."""

    provider_message_id: str = attrs.field(validator=_identifier)
    status: DeliveryStatus = attrs.field(default=DeliveryStatus.SENT, converter=DeliveryStatus)


DEFAULT_SEND_RATE = 10.0
"""Messages per second on a channel that declares no ``send_policy``."""
DEFAULT_RETRY_SECONDS = 3600.0
DEFAULT_CONFIRM_SECONDS = 3600.0


@attrs.frozen
class Sender:
    """Who a message goes out from, when the provider limits each sender apart (a Twilio
    number; SMS and WhatsApp senders differ): its identity (a key of
    ``OMNICHANNEL_SEND_RATES`` after ``channel:``) and the provider's default rate for it."""

    identity: str = attrs.field(validator=_identifier)
    rate: float | None = None
    """Messages per second; None: the channel's rate."""


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be a number >= 0, not {value!r}")


@attrs.frozen
class Reach:
    """One way a channel reaches a contact in a mass send (a campaign's ``sender``): SMS or
    WhatsApp on Twilio. A campaign sends to ``prefix`` + the address of the contact's
    identity on the channel; the outbox paces it by the :class:`Sender` that the policy's
    ``sender`` gives for ``prefix`` alone.

    :param name: what a campaign names it by (``sms``, ``whatsapp``).
    :param prefix: put before the identity's address (``whatsapp:``).
    :param window_hours: free-form messages are allowed only within this many hours of the
        contact's last message from that address (WhatsApp's and Messenger's 24 hours);
        outside it a template is needed. None: no window.
    :param templates: the channel sends a template named by ``metadata["content_sid"]``
        with ``metadata["content_variables"]`` (Twilio's Content API).
    :param subject: the channel takes a subject as ``metadata["email"]["subject"]``
        (the email channel's).
    """

    name: str = attrs.field(validator=_identifier)
    prefix: str = ""
    window_hours: float | None = None
    templates: bool = False
    subject: bool = False


def _reach_tuple(reaches: Iterable[Reach]) -> tuple[Reach, ...]:
    return tuple(reaches)


DEFAULT_REACH = Reach("default")
"""The reach of a channel whose policy names none: the identity's address as it is."""


@attrs.frozen
class SendPolicy:
    """How the outbox sends on a channel (its ``send_policy`` hook), from the provider's
    published limits. ``OMNICHANNEL_SEND_RATES``, ``OMNICHANNEL_SEND_RETRY_SECONDS`` and
    ``OMNICHANNEL_SEND_CONFIRM_SECONDS`` override it.

    :param rate: messages per second, shared by every runner and server; 0: unpaced.
    :param sender: given a recipient's address (`Conversation.address`), the
        :class:`Sender` a message to it goes out from, when the rate is per sender (None, or
        a function answering None: one pace for the whole channel). Quick and pure: it runs
        for every message.
    :param retry_for: seconds after a message is due during which a retryable failure
        (:class:`~omnichannel_core.errors.SendFailed` ``retryable``) is retried.
    :param confirm_within: seconds a message in doubt waits for the provider's callback or
        echo before it is ``failed`` (``not_confirmed``).
    :param resend_safe: the provider dedupes on ``OutboundMessage.id`` (the generic HTTP
        channel's ``Idempotency-Key``): a message in doubt is sent again, same id, with
        backoff, until an answer comes or ``confirm_within`` passes. Never for a provider
        that would deliver it twice.
    :param reaches: the ways a mass send (a campaign) may reach a contact (:class:`Reach`),
        the first the default; none: :data:`DEFAULT_REACH`.
    """

    rate: float = attrs.field(default=DEFAULT_SEND_RATE, validator=_non_negative)
    sender: Callable[[str], Sender | None] | None = None
    retry_for: float = attrs.field(default=DEFAULT_RETRY_SECONDS, validator=_non_negative)
    confirm_within: float = attrs.field(default=DEFAULT_CONFIRM_SECONDS, validator=_non_negative)
    resend_safe: bool = False
    reaches: tuple[Reach, ...] = attrs.field(default=(), converter=_reach_tuple)

    def reach(self, name: str | None) -> Reach | None:
        """The reach named ``name`` (None: the first), or None when there is none such."""
        reaches = self.reaches or (DEFAULT_REACH,)
        if name is None:
            return reaches[0]
        return next((reach for reach in reaches if reach.name == name), None)


@attrs.frozen
class MediaFetch:
    """How the core fetches a provider's media into the media store (the channel's
    ``media_fetch`` hook): the URL, the headers to send (credentials), and the hosts it may
    be fetched from. A redirect is followed only to one of ``hosts`` (credentials are sent
    to the first URL's host only), never to a private, loopback or link-local address
    unless ``OMNICHANNEL_MEDIA_FETCH_PRIVATE`` allows it (tests).

    :param hosts: host names, or ``*.example.com`` for any of its subdomains.
    """

    url: str
    hosts: tuple[str, ...] = attrs.field(converter=_str_tuple)
    headers: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class ChannelHealth:
    """A channel's own report: ready to send and receive, and why not."""

    ok: bool
    detail: str = ""
    checks: dict[str, Any] = attrs.field(factory=dict)


SETTING_NAME = r"^[A-Z][A-Z0-9_]{0,127}$"
"""A setting's name: an environment variable's, upper case (``TWILIO_AUTH_TOKEN``)."""


@attrs.frozen
class Setting:
    """A variable a channel reads (its ``settings`` hook declares each): the settings module
    lets admins store a value for it through the API, beneath the environment's.

    :param name: the variable, as in the environment (``TWILIO_AUTH_TOKEN``); name the
        channel's variables after it (``ACME_...``).
    :param description: one line saying what it is, for the admins who set it.
    :param secret: a token, password or key: stored encrypted, never shown whole.
    :param required: the channel cannot work without it (its health names it missing).
    :param storable: False for what decides where the channel connects, and so where its
        credentials and the customers' messages go: an endpoint or API base URL, a host, a
        port, a TLS mode, a file or folder on the server. Such a variable comes from the
        environment only: the settings API shows it (and where its value comes from) but
        refuses to store it, so an admin key cannot aim the credentials the environment pins
        at a server of its choosing.
    """

    name: str = attrs.field(validator=attrs.validators.matches_re(SETTING_NAME))
    description: str = attrs.field(
        validator=attrs.validators.and_(
            attrs.validators.instance_of(str), attrs.validators.min_len(1)
        )
    )
    secret: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    required: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    storable: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))


@attrs.frozen
class ChannelRoute:
    """An extra route a channel serves under ``/api/channels/{name}/``.

    :param path: relative to the channel's prefix, e.g. ``"webhook"`` or ``"send/sms"``;
        may hold Falcon field templates such as ``"message/{id}/status"``.
    :param resource: a Falcon ASGI resource (``on_get``, ``on_post``, ``on_websocket``...;
        not ``on_options``, which the core answers for CORS preflights). It may declare
        ``operations``, one :class:`~omnichannel_core.routes.Operation` per upper-case
        method, as a module route's resource does: the core reads and checks the declared
        body, query and headers into ``req.context`` and documents the method in the OpenAPI
        document under the channel's own path. Who may call is this route's ``public`` or
        ``permission``, which a declared operation need not repeat (and may repeat only
        unchanged); a method without an operation is served as is, undocumented.
    :param public: True when providers call it without credentials; the channel must then
        authenticate the request itself (a signature, a verify token).
    :param permission: required for a route that is not public: the permission every
        method of it needs (a registered name, see ``docs/access.md``, e.g.
        ``"messages:send"``), WebSocket connections included. The caller is in
        ``req.context.principal``; a route that hands out messages must also check them with
        ``inbox.check_visible(principal, message)``, since agents see only their own or
        unassigned conversations.
    :param policy: for a route browsers call (a visitor's chat widget, a script other sites
        load): how its responses are protected, as a module route's
        (:class:`~omnichannel_core.routes.RoutePolicy`): its security headers, and the
        origins that may call it from a browser (CORS) and open its WebSockets (a
        handshake from another site's page is refused with 3403), e.g.
        ``RoutePolicy(cors=CorsPolicy(origins=OriginsSetting("WEBCHAT_ALLOWED_ORIGINS")))``.
        With a policy, the route's public methods are rate limited per client address
        (and per credential, when one is presented), as a module's public route is. None
        (the default): the agents' API's policy (``API_POLICY``: its strict headers, the
        ``OMNICHANNEL_CORS_ORIGINS``), and public methods are a provider's callbacks, not
        counted, since providers burst from many addresses. Not on a path the core serves
        for every channel (``webhook``, ``status``, ``messages``, ``health``).
    """

    path: str
    resource: object
    public: bool = False
    permission: str | None = None
    policy: RoutePolicy | None = None

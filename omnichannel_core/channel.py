"""Everything a channel author needs, and the only module of the core a channel imports
(besides ``from omnichannel_core import hookimpl``, and ``omnichannel_core.testing`` in its
tests). What is not here is private to the core and may change in any release; an import
contract test keeps the built-in channels, the template and the channel distributions of
this repository to it.

- The values hooks receive and return: :class:`WebhookRequest`, :class:`WebhookResult`
  (:class:`InboundMessage` with its :class:`Attachment` and :class:`Thread`,
  :class:`StatusUpdate`, :class:`StatusWatermark`, :class:`WebhookResponse`),
  :class:`OutboundMessage`, :class:`SendResult`, :class:`MediaFetch`,
  :class:`SendPolicy` (:class:`Sender`),
  :class:`ChannelHealth`, :class:`ChannelRoute`; the records they name (:class:`Message`,
  :class:`Conversation`, :class:`Media` (:class:`MediaRole`), :class:`DeliveryStatus`,
  :class:`Consent`).
- The errors a hook raises: :class:`WebhookRejected` (403), :class:`InvalidInput` (400),
  :class:`UnsupportedMediaType` (415: a webhook body in a format it does not take),
  :class:`SendFailed`, :class:`SendOutcomeUnknown`, :class:`ChannelUnavailable`, and
  for a channel route :class:`NotFound`, :class:`Unauthenticated` (401: a route that
  checks a credential of its own, such as a chat visitor's token), :class:`Forbidden`
  (403) and :class:`RateLimited` (429).
- Settings and health: :class:`Setting` (what the ``settings`` hook declares),
  :class:`ChannelSettings`, :func:`settings_for` (parses ``config.settings``, a
  :class:`SettingValues`: the environment over the values admins stored),
  :class:`CredentialChecker`, :func:`credentials_health` and the outcomes.
- A channel's own routes: :class:`ChannelInbox` (what ``channel_routes`` is given: store,
  read and send on this channel only; what ``receive`` stored, :class:`Received` with its
  :class:`RefusedMedia`; ``follow``, a :class:`ConversationFeed` of
  :class:`ConversationEvent`, or :class:`EventsExpired`), :class:`OutboundRequest`; the
  declaration of what a route's methods take and answer, as a module route's
  (:class:`Operation`,
  :class:`Response`, :class:`PageOf`, bodies as attrs classes with :func:`field`,
  :class:`IdempotencyHeaders`, :func:`send_at_field` and :func:`send_at_of` for a
  scheduled send), from which the core checks the request and documents the
  route; how a route browsers call is protected (:class:`RoutePolicy` with its
  :class:`CorsPolicy`, :class:`OriginsSetting`, :data:`SECURITY_HEADERS`, :data:`API_POLICY`,
  :class:`RateLimit`); and the helpers to read a request by hand as the core does
  (:func:`read_json_object`, :func:`idempotency_key`, :func:`read_media`) and answer it
  (:func:`to_json`); a route that sends declares :data:`SEND_ANSWERS` and answers with
  :func:`prefer_wait` and :func:`answer_sent`.
- A channel's own limits and keys: :class:`TokenBuckets` (a rate limit per key, e.g. per
  visitor; :func:`address_key` counts an IPv6 client by its /64), and
  :func:`derived_secret` (a key of the channel's own derived from the server's signing
  secret, the same on every server); :func:`caller_address`, the client's address as the
  core's limits count it (behind ``OMNICHANNEL_TRUST_PROXY`` proxies);
  :func:`presented_bearer`, the token of ``Authorization: Bearer``, read as the core reads
  it; :func:`close_reason`, a message cut to fit a WebSocket close frame.
"""

from __future__ import annotations

from omnichannel_core import hookimpl
from omnichannel_core.bodies.common import (
    MAX_URL,
    IdempotencyHeaders,
    read_media,
    send_at_field,
    send_at_of,
)
from omnichannel_core.bodies.fields import field
from omnichannel_core.bodies.schema import PageOf
from omnichannel_core.channel_settings import ChannelSettings, SettingValues, settings_for
from omnichannel_core.config import Config
from omnichannel_core.credential_check import (
    ACCEPTED,
    CHECKING,
    MISSING,
    REJECTED,
    UNREACHABLE,
    CredentialCheck,
    CredentialChecker,
    credentials_health,
)
from omnichannel_core.errors import (
    ChannelUnavailable,
    EventsExpired,
    Forbidden,
    InvalidInput,
    NotFound,
    OmnichannelError,
    RateLimited,
    SendFailed,
    SendOutcomeUnknown,
    Unauthenticated,
    UnsupportedMediaType,
    WebhookRejected,
)
from omnichannel_core.hooktypes import (
    MAX_ID_LENGTH,
    Attachment,
    ChannelHealth,
    ChannelRoute,
    InboundMessage,
    MediaFetch,
    OutboundMessage,
    Reach,
    Sender,
    SendPolicy,
    SendResult,
    Setting,
    StatusUpdate,
    StatusWatermark,
    Thread,
    WebhookRequest,
    WebhookResponse,
    WebhookResult,
)
from omnichannel_core.models import (
    Consent,
    Conversation,
    DeliveryStatus,
    Media,
    MediaRole,
    Message,
)
from omnichannel_core.plugins.channels import HEALTH_TIMEOUT_SECONDS
from omnichannel_core.plugins.dispatch import HOOK_THREADS_PER_CHANNEL
from omnichannel_core.routes import (
    API_POLICY,
    SECURITY_HEADERS,
    CorsPolicy,
    Operation,
    OriginsSetting,
    RateLimit,
    Response,
    RoutePolicy,
)
from omnichannel_core.serialization import parse_json, to_json
from omnichannel_core.server_secrets import derived_secret
from omnichannel_core.services import (
    ChannelInbox,
    ConversationEvent,
    ConversationFeed,
    OutboundRequest,
    Received,
    RefusedMedia,
)
from omnichannel_core.timestamps import format_timestamp, parse_timestamp, utcnow
from omnichannel_core.web.body import idempotency_key, read_json_object
from omnichannel_core.web.client_address import caller_address
from omnichannel_core.web.errors import close_reason
from omnichannel_core.web.middleware import presented_bearer
from omnichannel_core.web.prefer import SEND_ANSWERS, SEND_NOTES, answer_sent, prefer_wait
from omnichannel_core.web.protection import TokenBuckets, address_key

__all__ = [
    "ACCEPTED",
    "API_POLICY",
    "CHECKING",
    "HEALTH_TIMEOUT_SECONDS",
    "HOOK_THREADS_PER_CHANNEL",
    "MAX_ID_LENGTH",
    "MAX_URL",
    "MISSING",
    "REJECTED",
    "SECURITY_HEADERS",
    "SEND_ANSWERS",
    "SEND_NOTES",
    "UNREACHABLE",
    "Attachment",
    "ChannelHealth",
    "ChannelInbox",
    "ChannelRoute",
    "ChannelSettings",
    "ChannelUnavailable",
    "Config",
    "Consent",
    "Conversation",
    "ConversationEvent",
    "ConversationFeed",
    "CorsPolicy",
    "CredentialCheck",
    "CredentialChecker",
    "DeliveryStatus",
    "EventsExpired",
    "Forbidden",
    "IdempotencyHeaders",
    "InboundMessage",
    "InvalidInput",
    "Media",
    "MediaFetch",
    "MediaRole",
    "Message",
    "NotFound",
    "OmnichannelError",
    "Operation",
    "OriginsSetting",
    "OutboundMessage",
    "OutboundRequest",
    "PageOf",
    "RateLimit",
    "RateLimited",
    "Reach",
    "Received",
    "RefusedMedia",
    "Response",
    "RoutePolicy",
    "SendFailed",
    "SendOutcomeUnknown",
    "SendPolicy",
    "SendResult",
    "Sender",
    "Setting",
    "SettingValues",
    "StatusUpdate",
    "StatusWatermark",
    "Thread",
    "TokenBuckets",
    "Unauthenticated",
    "UnsupportedMediaType",
    "WebhookRejected",
    "WebhookRequest",
    "WebhookResponse",
    "WebhookResult",
    "address_key",
    "answer_sent",
    "caller_address",
    "close_reason",
    "credentials_health",
    "derived_secret",
    "field",
    "format_timestamp",
    "hookimpl",
    "idempotency_key",
    "parse_json",
    "parse_timestamp",
    "prefer_wait",
    "presented_bearer",
    "read_json_object",
    "read_media",
    "send_at_field",
    "send_at_of",
    "settings_for",
    "to_json",
    "utcnow",
]

"""Everything a module author needs, and the only module of the core a module imports
(besides ``from omnichannel_core import hookimpl``; its stores add
`omnichannel_core.module.sqlite` and `omnichannel_core.module.firestore`; its tests
``omnichannel_core.testing``). What is not here is private to the core and may change in any
release; an import contract test keeps the built-in modules to it. docs/writing-a-module.md
walks through a whole module.

A module is a plugin (entry point group ``omnichannel.modules``) implementing some of the
module hooks (`omnichannel_core.hookspecs`): ``register_permissions``,
``register_stores``, ``register_services``, ``register_event_types``,
``register_authenticators``, ``register_routes``, ``register_subscribers``,
``register_jobs``, ``register_commands``. Each gets the module's :class:`ModuleContext`.

- **Routes**: :class:`Route` of a resource whose ``operations`` map each method to an
  :class:`Operation` (permission or ``public``, body/query/headers classes, responses);
  :class:`Response`, :class:`Parameter`, :class:`RoutePolicy`, :class:`CorsPolicy`,
  :class:`RateLimit`. Bodies are attrs classes with :func:`field`; :class:`PageOf` a page
  of a class; :class:`PageQuery`, :class:`IdempotencyHeaders`, :class:`MediaInput`
  shared pieces; :data:`UNSET` a field left out.
- **Permissions**: :class:`PermissionSpec`, :class:`Role`; the caller is a
  :class:`Principal` (``req.context.principal``); :func:`check_grant`.
- **Storage**: :class:`StoreSpec` (with :func:`lazy` factories); :func:`compact_json` for
  a JSON column; lists as :class:`Page`
  with :func:`encode_cursor` / :func:`decode_list_cursor` (a list's (timestamp, id) key,
  forged ones refused) or :func:`decode_cursor` (a key of your own shape).
- **Events**: :class:`EventTypeSpec`, :class:`Event`; **background work**: :class:`Job`,
  :class:`JobControl`, :class:`JobReport`, :class:`Subscriber`; a task of your own is stopped with
  :func:`cancel_and_wait`, and an event waited on with :func:`wait_until` (not
  ``asyncio.wait_for``, which can lose a cancellation on Python 3.11).
- **Records and services** of other modules: :class:`Contact`, :class:`Conversation`,
  :class:`Message`... and :class:`InboxReader`, :class:`UserDirectory`;
  :class:`ContactBook` (the inbox's contacts, as the CRM works them), :class:`Audiences`
  (the CRM's segments' members), :class:`BulkSends` (the inbox's mass sends through the
  outbox, to a :class:`BulkTarget` by a channel's :class:`Reach`);
  :class:`ChannelInboxes` (the inbox's), behind ``context.channel_inbox()``, which a
  channel's own jobs use (:class:`Received`, :class:`RefusedMedia`: what ``receive``
  stored; :class:`ConversationFeed` of :class:`ConversationEvent`: what ``follow``
  yields), drawing on the events module's :class:`LiveEvents`; the media store,
  :class:`MediaKeeper` (and the inbox's :class:`InboxMedia`); :func:`media_url`, the
  route of a kept item.
- **Audit**: :class:`AuditEntry`, :func:`audit_entry`.
- **Channel settings**: :class:`Setting` (what a channel's ``settings`` hook declares),
  ``config.stored_settings`` (a :class:`StoredSettings`, whose ``replace`` the settings
  module calls) beneath the environment in ``config.settings`` (a :class:`SettingValues`);
  :class:`SecretBox` seals the secrets kept in a store (:class:`SecretUnreadable`,
  :class:`UnknownSecretKey`, :class:`SecretKeyRequired`), :func:`mask` shows them.
- Errors (mapped to HTTP in one place): :class:`InvalidInput` (400),
  :class:`Unauthenticated` (401), :class:`Forbidden` (403), :class:`NotFound` (404),
  :class:`Conflict` (409)...
"""

from __future__ import annotations

from omnichannel_core import hookimpl
from omnichannel_core.audit import AuditEntry, audit_entry
from omnichannel_core.bodies.common import (
    IdempotencyHeaders,
    MediaInput,
    MediaItems,
    PageQuery,
    media_field,
    media_of,
    send_at_field,
    send_at_of,
)
from omnichannel_core.bodies.fields import field
from omnichannel_core.bodies.schema import PageOf
from omnichannel_core.bus.news import News
from omnichannel_core.business import (
    DAY_END,
    DEFAULT_SLA_MINUTES,
    WEEKDAYS,
    Business,
    minutes_of,
)
from omnichannel_core.commands import Command
from omnichannel_core.config import Config
from omnichannel_core.errors import (
    ChannelFailed,
    ChannelUnavailable,
    ConfigError,
    Conflict,
    DeliveryFailed,
    EventsExpired,
    Forbidden,
    HookNotImplemented,
    InvalidInput,
    NotFound,
    OmnichannelError,
    PluginLoadError,
    RateLimited,
    RecipientOptedOut,
    SendFailed,
    SendOutcomeUnknown,
    Unauthenticated,
)
from omnichannel_core.events.records import Event, EventTypeSpec
from omnichannel_core.hooktypes import Reach, Setting
from omnichannel_core.ids import new_id
from omnichannel_core.jobs.specs import Job, JobControl, JobReport, Subscriber
from omnichannel_core.models import (
    Author,
    AuthorKind,
    Consent,
    Contact,
    Conversation,
    ConversationStatus,
    DeliveryStatus,
    Direction,
    Identity,
    Media,
    Message,
    media_url,
)
from omnichannel_core.paging import Page, decode_cursor, decode_list_cursor, encode_cursor
from omnichannel_core.plugins.channels import Channels
from omnichannel_core.plugins.context import Authenticator, EventReader, ModuleContext
from omnichannel_core.policy import PermissionSpec, Policy, Principal, Role, check_grant
from omnichannel_core.route_checks import RouteProblem, check_route
from omnichannel_core.routes import (
    API_POLICY,
    SECURITY_HEADERS,
    CorsPolicy,
    Operation,
    OriginsSetting,
    Parameter,
    RateLimit,
    Response,
    Route,
    RoutePolicy,
)
from omnichannel_core.secret_box import (
    SecretBox,
    SecretKeyRequired,
    SecretUnreadable,
    UnknownSecretKey,
    mask,
)
from omnichannel_core.serialization import compact_json, from_json, parse_json, to_json
from omnichannel_core.server_secrets import ApiKeys, bootstrap_keys, signing_secret
from omnichannel_core.services import (
    Audiences,
    AutomatedReplies,
    BulkSends,
    BulkTarget,
    BusinessSettings,
    CampaignActivity,
    ChannelInbox,
    ChannelInboxes,
    ContactActivity,
    ContactBook,
    ConversationChange,
    ConversationEvent,
    ConversationFeed,
    ConversationRecord,
    InboxHistory,
    InboxMedia,
    InboxReader,
    LiveEvents,
    MediaKeeper,
    OutboundRequest,
    Presence,
    PresentUser,
    Received,
    RefusedMedia,
    RunningCampaign,
    UserDirectory,
    UserSummary,
    author_of,
)
from omnichannel_core.setting_values import SettingValues, StoredSettings
from omnichannel_core.spreadsheets import safe_cell
from omnichannel_core.store import lazy
from omnichannel_core.store.protocols import AuditLog, SubscriberState
from omnichannel_core.store.specs import StoreSpec
from omnichannel_core.tasks import cancel_and_wait, wait_until
from omnichannel_core.timestamps import format_timestamp, parse_timestamp, utcnow
from omnichannel_core.unset import UNSET
from omnichannel_core.web.body import read_json_object, webhook_head, webhook_request
from omnichannel_core.web.client_address import caller_address
from omnichannel_core.web.prefer import SEND_ANSWERS, SEND_NOTES, answer_sent, prefer_wait

__all__ = [
    "API_POLICY",
    "DAY_END",
    "DEFAULT_SLA_MINUTES",
    "SECURITY_HEADERS",
    "SEND_ANSWERS",
    "SEND_NOTES",
    "UNSET",
    "WEEKDAYS",
    "ApiKeys",
    "Audiences",
    "AuditEntry",
    "AuditLog",
    "Authenticator",
    "Author",
    "AuthorKind",
    "AutomatedReplies",
    "BulkSends",
    "BulkTarget",
    "Business",
    "BusinessSettings",
    "CampaignActivity",
    "ChannelFailed",
    "ChannelInbox",
    "ChannelInboxes",
    "ChannelUnavailable",
    "Channels",
    "Command",
    "Config",
    "ConfigError",
    "Conflict",
    "Consent",
    "Contact",
    "ContactActivity",
    "ContactBook",
    "Conversation",
    "ConversationChange",
    "ConversationEvent",
    "ConversationFeed",
    "ConversationRecord",
    "ConversationStatus",
    "CorsPolicy",
    "DeliveryFailed",
    "DeliveryStatus",
    "Direction",
    "Event",
    "EventReader",
    "EventTypeSpec",
    "EventsExpired",
    "Forbidden",
    "HookNotImplemented",
    "IdempotencyHeaders",
    "Identity",
    "InboxHistory",
    "InboxMedia",
    "InboxReader",
    "InvalidInput",
    "Job",
    "JobControl",
    "JobReport",
    "LiveEvents",
    "Media",
    "MediaInput",
    "MediaItems",
    "MediaKeeper",
    "Message",
    "ModuleContext",
    "News",
    "NotFound",
    "OmnichannelError",
    "Operation",
    "OriginsSetting",
    "OutboundRequest",
    "Page",
    "PageOf",
    "PageQuery",
    "Parameter",
    "PermissionSpec",
    "PluginLoadError",
    "Policy",
    "Presence",
    "PresentUser",
    "Principal",
    "RateLimit",
    "RateLimited",
    "Reach",
    "Received",
    "RecipientOptedOut",
    "RefusedMedia",
    "Response",
    "Role",
    "Route",
    "RoutePolicy",
    "RouteProblem",
    "RunningCampaign",
    "SecretBox",
    "SecretKeyRequired",
    "SecretUnreadable",
    "SendFailed",
    "SendOutcomeUnknown",
    "Setting",
    "SettingValues",
    "StoreSpec",
    "StoredSettings",
    "Subscriber",
    "SubscriberState",
    "Unauthenticated",
    "UnknownSecretKey",
    "UserDirectory",
    "UserSummary",
    "answer_sent",
    "audit_entry",
    "author_of",
    "bootstrap_keys",
    "caller_address",
    "cancel_and_wait",
    "check_grant",
    "check_route",
    "compact_json",
    "decode_cursor",
    "decode_list_cursor",
    "encode_cursor",
    "field",
    "format_timestamp",
    "from_json",
    "hookimpl",
    "lazy",
    "mask",
    "media_field",
    "media_of",
    "media_url",
    "minutes_of",
    "new_id",
    "parse_json",
    "parse_timestamp",
    "prefer_wait",
    "read_json_object",
    "safe_cell",
    "send_at_field",
    "send_at_of",
    "signing_secret",
    "to_json",
    "utcnow",
    "wait_until",
    "webhook_head",
    "webhook_request",
]

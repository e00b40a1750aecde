"""Every hook: the channel hooks, and the module hooks.

**Channel hooks** (``receive``, ``status``, ``send``, ``send_policy``,
``normalize_address``, ``media_fetch``, ``webhook_body_limit``, ``health``, ``settings``,
``channel_routes``) receive
``channel``, the name of the channel they are called for: the core dispatches per channel,
so a channel's implementation only ever runs for its own name, while a cross-cutting
plugin's ``wrapper=True`` implementation runs around every channel's. They may be plain
functions, which run in a worker thread of the channel's own pool (a blocking SDK call never
stalls the event loop), or coroutine functions, which run on the loop and must not block.

**Module hooks** (``register_*``) are how any plugin (a module, a channel, a local plugin)
adds a feature: permissions, storage, services, event types, authenticators, routes, event
subscribers, background jobs and commands. Each is called once at start-up, for each plugin on its
own, in the order of this file, with the plugin's own :class:`ModuleContext`; each returns
a list (or mapping) of declarations, which the core checks: a plugin whose hook raises or
returns something invalid is unloaded and reported, and the others start. They must be
plain functions (work at start-up is declared, and runs later).

Arguments are opt-in: declare only those you use. Specs may gain arguments; none is ever
renamed or removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from omnichannel_core import hookspec

if TYPE_CHECKING:
    from omnichannel_core.commands import Command
    from omnichannel_core.config import Config
    from omnichannel_core.events.records import EventTypeSpec
    from omnichannel_core.hooktypes import (
        ChannelHealth,
        ChannelRoute,
        MediaFetch,
        OutboundMessage,
        SendPolicy,
        SendResult,
        Setting,
        WebhookRequest,
        WebhookResult,
    )
    from omnichannel_core.jobs.specs import Job, Subscriber
    from omnichannel_core.models import Media
    from omnichannel_core.plugins.context import Authenticator, ModuleContext
    from omnichannel_core.policy import PermissionSpec
    from omnichannel_core.routes import Route
    from omnichannel_core.services import ChannelInbox
    from omnichannel_core.store.specs import StoreSpec


@hookspec(firstresult=True)
def receive(channel: str, request: WebhookRequest, config: Config) -> WebhookResult | None:
    """Turn a provider's webhook into inbound messages (and any status updates it carries).

    Called for ``POST /api/channels/{channel}/webhook``. Authenticate the request first
    (signature, token) and raise :class:`omnichannel_core.errors.WebhookRejected` when it
    fails: the provider gets 403 and nothing is stored. The core stores every message before
    the provider gets ``result.response``.

    :param channel: the channel's name (its entry point name).
    :param request: the request, with its raw body.
    :param config: the server's configuration; ``config.settings`` holds the channel's
        variables (the environment's, over those admins stored).
    :returns: a :class:`WebhookResult`. Stops at first non-None result.
    """


@hookspec(firstresult=True)
def status(channel: str, request: WebhookRequest, config: Config) -> WebhookResult | None:
    """Turn a provider's delivery-status callback into status updates.

    Called for ``POST /api/channels/{channel}/status``. Authenticate as in :func:`receive`.
    The core applies each update forward-only; an update for an unknown message is
    acknowledged and logged, not stored.

    :param channel: the channel's name.
    :param request: the request, with its raw body.
    :param config: the server's configuration.
    :returns: a :class:`WebhookResult` whose ``statuses`` are applied. Stops at first
        non-None result.
    """


@hookspec(firstresult=True)
def send(
    channel: str, message: OutboundMessage, config: Config, inbox: ChannelInbox
) -> SendResult | None:
    """Deliver a stored, queued outbound message through the provider.

    Called by the outbox's delivery job (never inside an API request), once per attempt, at
    the channel's pace. Make one attempt and say how it went; the outbox retries:

    - return a :class:`SendResult` when the provider took it;
    - raise :class:`omnichannel_core.errors.SendFailed` when it did not: ``retryable=True``
      when it provably did not take it and may later (429 with ``throttled=True`` and
      ``retry_after``, 5xx, no connection made), else with the provider's error code;
    - raise :class:`omnichannel_core.errors.SendOutcomeUnknown` when the request went out and
      the answer was lost (a timeout after writing, a connection closed after the body):
      the message is then in doubt, never sent again blindly (``resend_safe=True`` only
      when the provider dedupes on ``message.id``);
    - raise :class:`omnichannel_core.errors.ChannelUnavailable` when it is not configured.

    :param channel: the channel's name.
    :param message: what to send and to whom; ``message.id`` is stable across retries.
    :param config: the server's configuration.
    :param inbox: the channel's view of the inbox: the conversation's earlier messages
        (email threads its answer on them), the bytes of ``message.media``.
    :returns: a :class:`SendResult` with the provider's message id. Stops at first
        non-None result.
    """


@hookspec(firstresult=True)
def normalize_address(channel: str, address: str, config: Config) -> str | None:
    """The canonical form of a customer's address on this channel, for an address a caller
    sends to (a send's ``to`` and ``reply_to``): the contact is found by it, so it must be
    the form ``receive`` gives as ``sender`` (email: lower case), else the customer's
    answer would open a second contact.

    Called by the inbox before a send to an address stores anything. Raise
    :class:`omnichannel_core.errors.InvalidInput` for an address the channel can never send
    to (the caller gets 400, and no contact is made). Optional: without it the address is
    taken as given. Quick and pure.

    :param channel: the channel's name.
    :param address: the address as the caller gave it, stripped.
    :param config: the server's configuration.
    :returns: the address to use. Stops at first non-None result.
    """


@hookspec(firstresult=True)
def media_fetch(channel: str, media: Media, config: Config) -> MediaFetch | None:
    """Say how to fetch a provider's media, which ``receive`` named by URL, into the media
    store: the URL, its credentials and the provider's hosts (:class:`MediaFetch`).

    Called by the core's media job, after the webhook was answered; the core fetches, with
    the SSRF rules, and keeps the bytes. Without it (or when it returns None) the media
    stays a link to the provider.

    :param channel: the channel's name.
    :param media: the item as ``receive`` gave it (``url``, ``content_type``).
    :param config: the server's configuration.
    :returns: a :class:`MediaFetch`. Stops at first non-None result.
    """


@hookspec(firstresult=True)
def webhook_body_limit(channel: str, request: WebhookRequest, config: Config) -> int | None:
    """The largest body, in bytes, this webhook (or status callback) may have, when it is
    not ``OMNICHANNEL_MAX_BODY_BYTES`` (an email with its attachments: 25 MB). Asked for
    each request before a byte of its body is read, so a channel that authenticates its
    provider by a header (a secret, not a signature of the body) refuses a stranger here,
    by raising :class:`WebhookRejected` (or :class:`ChannelUnavailable`), before the body is
    streamed.

    A channel that answers a number gets the body streamed to ``request.body_file`` (in
    memory up to 1 MiB, then a temporary file), never read whole into memory, and
    ``request.body`` empty; a larger body is refused with 413 before ``receive``.

    :param channel: the channel's name.
    :param request: the request's method, URL, headers and query; ``body`` is still empty.
    :param config: the server's configuration.
    :returns: bytes, or None for the usual plain body. Stops at first non-None result.
    """


@hookspec(firstresult=True)
def send_policy(channel: str, config: Config) -> SendPolicy | None:
    """How the outbox paces and retries this channel's sends: the provider's published rate
    (per sender where it limits each number apart), and how long to retry and to wait for a
    message in doubt to be confirmed. Optional: without it a channel gets
    :class:`SendPolicy`'s defaults. Read once in a while, not per message.

    :param channel: the channel's name.
    :param config: the server's configuration.
    :returns: a :class:`SendPolicy`. Stops at first non-None result.
    """


@hookspec(firstresult=True)
def health(channel: str, config: Config) -> ChannelHealth | None:
    """Report whether the channel can work: configuration present, credentials accepted.

    Called for ``GET /api/channels/{channel}/health`` and ``GET /health``. Keep it fast;
    cache any check against the provider's API.

    :param channel: the channel's name.
    :param config: the server's configuration.
    :returns: a :class:`ChannelHealth`. Stops at first non-None result.
    """


@hookspec(firstresult=True)
def settings(channel: str, config: Config) -> list[Setting] | None:
    """The variables this channel reads; the settings module lets admins store them.

    Called whenever the settings module lists or changes a channel's settings (not per
    message). Declare every variable the channel reads from ``config.settings``, with a
    one-line description, ``secret=True`` for tokens, passwords and keys (stored encrypted,
    never shown whole), ``required=True`` for those it cannot work without. Only declared
    variables can be stored through the API; the environment still wins over what is
    stored. Optional: without it the channel is configured through the environment only.
    Quick and pure, the same list every time.

    :param channel: the channel's name.
    :param config: the server's configuration.
    :returns: a list of :class:`Setting`, each name once. Stops at first non-None result.
    """


@hookspec
def channel_routes(channel: str, config: Config, inbox: ChannelInbox) -> list[ChannelRoute] | None:
    """Contribute extra routes under ``/api/channels/{channel}/``.

    Called once at start-up. Use it for verification GETs, WebSockets, inbound-parse
    endpoints or channel-specific send routes. A route may share its path with a generic
    route (``webhook``, ``status``, ``messages``, ``health``) as long as it only adds
    methods the generic route does not serve; anything else (or an exception raised here)
    unloads the channel, reported as a failed plugin. A route's resource may declare its
    ``operations`` as a module route's does: the core then checks each declared body, query
    and headers and documents the route under the channel's own path.

    :param channel: the channel's name.
    :param config: the server's configuration.
    :param inbox: the channel's own view of the inbox (:class:`ChannelInbox`): store and read
        this channel's messages and conversations, send on it.
    :returns: a list of :class:`ChannelRoute`. Results of all implementations are joined.
    """


# Module hooks -----------------------------------------------------------------------------


@hookspec
def register_permissions(context: ModuleContext) -> list[PermissionSpec] | None:
    """Contribute permissions to the policy matrix.

    Called first, at start-up. A route, a channel route or a stream names the permission it
    needs; the name must be one some plugin contributed.

    :param context: the plugin's context (its ``policy`` is not built yet).
    :returns: a list of :class:`PermissionSpec`, each naming the roles that hold it (admins
        hold every permission) and the API key scope presets that include it. A name
        contributed twice unloads the second plugin.
    """


@hookspec
def register_stores(context: ModuleContext) -> list[StoreSpec] | None:
    """Declare the plugin's own storage.

    Called at start-up, after the permissions. The core applies each store's migrations for
    the configured backend (SQLite or Firestore) with its own, then builds the store with
    the factory for that backend; ``context.store(Interface)`` returns it, to this plugin
    only.

    :param context: the plugin's context.
    :returns: a list of :class:`StoreSpec`. A store without a factory for the configured
        backend unloads the plugin, saying so.
    """


@hookspec
def register_services(context: ModuleContext) -> Mapping[type, Any] | None:
    """Offer services to the other plugins.

    Called at start-up, after the stores (``context.store`` works). Another plugin gets a
    service with ``context.service(Interface)``, at start-up or later.

    :param context: the plugin's context.
    :returns: ``{Interface: implementation}``; an interface offered twice unloads the second
        plugin.
    """


@hookspec
def register_event_types(context: ModuleContext) -> list[EventTypeSpec] | None:
    """Declare the event types the plugin logs.

    Called at start-up. The realtime stream tells a reader of an event only when the reader
    holds the type's permission (and, for an event about a conversation, may see it), and
    sends the record the event names, loaded by the type's ``load``.

    :param context: the plugin's context.
    :returns: a list of :class:`EventTypeSpec`; a name declared twice unloads the second
        plugin.
    """


@hookspec
def register_authenticators(context: ModuleContext) -> list[Authenticator] | None:
    """Contribute ways to tell who is calling.

    Called at start-up. For each request that is not public, the core asks each
    authenticator in turn with the bearer token presented; the first that answers a
    :class:`Principal` wins. One that raises Unauthenticated ends the search (a token it
    recognises but refuses). When none answers, the request is refused with 401.

    :param context: the plugin's context.
    :returns: a list of ``async def authenticate(token: str) -> Principal | None``.
    """


@hookspec
def register_routes(context: ModuleContext) -> list[Route] | None:
    """Contribute HTTP routes: API routes under ``/api/``, pages and assets elsewhere, and
    routes for callers who are not agents (a visitor's widget).

    Called at start-up, after the services. Each route's resource declares, per method, an
    :class:`Operation`: the permission it needs (or ``public``), its request and response
    bodies (attrs classes, which the core checks and documents in ``/api/openapi.json``),
    and the route a :class:`RoutePolicy` (security headers, CORS). The core checks every
    declaration: an unknown permission, a responder without an operation (or the other way
    round), a path another plugin serves, each unloads the plugin, saying why.

    :param context: the plugin's context.
    :returns: a list of :class:`Route`.
    """


@hookspec
def register_subscribers(context: ModuleContext) -> list[Subscriber] | None:
    """Subscribe to the event log.

    Called at start-up. The job runner hands each subscriber every event of the types it
    wants, in log order, at least once, from a cursor of its own kept in the store; a
    handler that raises is retried with backoff and holds up no other subscriber. Each
    subscriber's lag is in ``/health``.

    :param context: the plugin's context.
    :returns: a list of :class:`Subscriber`; a name used twice unloads the second plugin.
    """


@hookspec
def register_jobs(context: ModuleContext) -> list[Job] | None:
    """Contribute background jobs, periodic or continuous.

    Called at start-up. The job runner (``omnichannel worker``, or the one
    ``omnichannel serve`` starts) runs them; a singleton job holds a lease in the store, so
    it runs once across every server.

    :param context: the plugin's context.
    :returns: a list of :class:`Job`; a name used twice unloads the second plugin.
    """


@hookspec
def register_commands(context: ModuleContext) -> list[Command] | None:
    """Add commands to the ``omnichannel`` program, run on the server's machine:
    ``omnichannel <group> <name>``.

    Called when the program builds its commands (a command of the core, such as ``serve``,
    loads no plugin). A command runs with every store open.

    :param context: the plugin's context.
    :returns: a list of :class:`Command`; a (group, name) used twice unloads the second
        plugin.
    """
